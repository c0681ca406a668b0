"""Reading a TOML document with every problem collected and located: typed access to tables
(:class:`TableReader`), problems with the file's line numbers (:class:`Problem`,
:class:`ConfigError`). Knows none of the jobs config's keys (fogvault/jobs/config.py).

``tomllib`` gives no positions, so the line of a key is found by scanning the text for table
headers and ``key =`` lines (:class:`KeyLines`). That is right for ordinary files; a key inside
an inline table or a multi-line value is reported at the nearest enclosing table's line.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fogvault.errors import UsageError

# ---- problems --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    file: Path
    line: int | None
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        key = f" {self.key}:" if self.key else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}:{key} {self.message}{hint}"


class ConfigError(UsageError):
    """One or more problems in the config file (exit code 2)."""

    def __init__(self, problems: list[Problem]) -> None:
        problems = sorted(problems, key=lambda p: p.line if p.line is not None else 1 << 30)
        self.problems = problems
        more = len(problems) - 1
        suffix = f" (and {more} more; see 'fogvault config check')" if more else ""
        super().__init__(f"{problems[0]}{suffix}")


# ---- key positions ---------------------------------------------------------------------------

_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?")
_ASSIGN = re.compile(rf"\s*({_DOTTED})\s*=")


class KeyLines:
    """Line numbers of table headers and keys, found by scanning the text (see module doc)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        in_string = False
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string:
                in_string = _toggles_multiline(line, in_string)
                continue
            if header := _HEADER.fullmatch(line):
                table = _split_dotted(header.group(1))
                self.lines.setdefault(table, number)
            elif assign := _ASSIGN.match(line):
                self.lines.setdefault(table + _split_dotted(assign.group(1)), number)
            in_string = _toggles_multiline(line, in_string)

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """The line of ``path``, else of its nearest enclosing table that has one, else of
        its first sub-table or key (``[a.b]`` defines ``a`` without naming it)."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        inner = [line for key, line in self.lines.items() if key[:len(path)] == path]
        return min(inner, default=None)


def _toggles_multiline(line: str, inside: bool) -> bool:
    for quote in ('"""', "'''"):
        if line.count(quote) % 2:
            inside = not inside
    return inside


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(_KEY, text)
    return tuple(_unquote(p) for p in parts)


def _unquote(part: str) -> str:
    if part.startswith('"'):
        return str(json.loads(part))
    return part.strip("'")


def dotted(path: Iterable[str]) -> str:
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p) for p in path)


# ---- typed reading with problem collection ---------------------------------------------------

MISSING: Any = object()
#: No file name, command or variable can hold it: a value with one passed the check and
#: failed the run with ValueError ("embedded null byte") from the first system call.
NUL = "\0"
NUL_PROBLEM = "holds a NUL character (\\u0000), which no file name or command can"


@dataclass(slots=True)
class ReadContext:
    path: Path
    lines: KeyLines
    problems: list[Problem] = field(default_factory=list)

    def report(self, path: tuple[str, ...], message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.path, self.lines.line_of(path), dotted(path),
                                     message, hint))


class TableReader:
    """Typed access to one TOML table; a bad value is reported and its default returned."""

    def __init__(self, ctx: ReadContext, path: tuple[str, ...], data: dict[str, Any]) -> None:
        self.ctx, self.path, self.data = ctx, path, data
        self.known: set[str] = set()

    def key_path(self, key: str) -> tuple[str, ...]:
        return (*self.path, key)

    def problem(self, key: str, message: str, hint: str = "") -> None:
        self.ctx.report(self.key_path(key) if key else self.path, message, hint)

    def raw(self, key: str) -> Any:
        self.known.add(key)
        return self.data.get(key, MISSING)

    def has(self, key: str) -> bool:
        self.known.add(key)
        return key in self.data

    def required(self, key: str, what: str) -> bool:
        if key in self.data:
            return True
        self.ctx.report(self.path, f"missing required key {key!r}", f"add {key} = {what}")
        return False

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key)
        if value is MISSING:
            return default
        if not isinstance(value, str) or not value:
            self.problem(key, f"expected a non-empty string, got {describe(value)}")
            return default
        if NUL in value:
            self.problem(key, NUL_PROBLEM)
            return default
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.raw(key)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {describe(value)}")
            return default
        return value

    def integer(self, key: str, default: int, low: int, high: int | None = None,
                hint: str = "") -> int:
        value = self.raw(key)
        if value is MISSING:
            return default
        bad_type = isinstance(value, bool) or not isinstance(value, int)
        if bad_type or value < low or (high is not None and value > high):
            limits = f"{low}-{high}" if high is not None else f">= {low}"
            self.problem(key, f"expected a whole number {limits}, got {describe(value)}", hint)
            return default
        return int(value)

    def seconds(self, key: str, default: float, high: float) -> float:
        """A number of seconds in (0, high]: inf and nan are refused, they break timeouts."""
        value = self.raw(key)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
            self.problem(key, f"expected a number of seconds > 0 and at most {high:g}, got "
                              f"{describe(value)}")
            return default
        return float(value)

    def strings(self, key: str) -> list[str]:
        """A string or a list of strings (a single string counts as a list of one)."""
        value = self.raw(key)
        if value is MISSING:
            return []
        if isinstance(value, str) and value:
            value = [value]
        if not isinstance(value, list):  # an empty string, a number, a table...
            self.problem(key, f"expected a list of non-empty strings, got {describe(value)}")
            return []
        for item in value:
            if not (isinstance(item, str) and item):
                self.problem(key, f"expected a list of non-empty strings, got a list holding "
                                  f"{describe(item)}")
                return []
        if any(NUL in item for item in value):
            self.problem(key, NUL_PROBLEM)
            return []
        return value

    def table(self, key: str) -> TableReader | None:
        value = self.raw(key)
        if value is MISSING:
            return None
        if not isinstance(value, dict):
            self.problem(key, f"expected a table, got {describe(value)}",
                         f"write it as [{dotted(self.key_path(key))}] with keys below it")
            return None
        return TableReader(self.ctx, self.key_path(key), value)

    def tables(self) -> Iterator[tuple[str, TableReader]]:
        """Every sub-table (for ``[repositories.NAME]``, ``[jobs.NAME]``)."""
        for key in list(self.data):
            sub = self.table(key)
            if sub is not None:
                yield key, sub

    def finish(self) -> None:
        """Report every key that was not read, with a typo hint."""
        for key in self.data:
            if key in self.known:
                continue
            close = difflib.get_close_matches(key, sorted(self.known), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"known keys here: {', '.join(sorted(self.known))}")
            self.problem(key, "unknown key", hint)


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}" if value else "an empty string"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def syntax_problem(path: Path, exc: tomllib.TOMLDecodeError) -> Problem:
    message = str(exc)
    found = re.search(r"\(at line (\d+), column \d+\)", message)
    line = int(found.group(1)) if found else None
    message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
    return Problem(path, line, "", f"TOML syntax error: {message}",
                   "see https://toml.io; strings need quotes, tables need [brackets]")
