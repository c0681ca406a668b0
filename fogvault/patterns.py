"""Path patterns shared by backup excludes and restore includes/excludes.

A pattern is split at ``/`` and each part is matched with shell wildcards (``*``, ``?``,
``[...]``, negated by ``[!...]`` or ``[^...]``; ``\\`` takes the next character literally, as
restic's Go patterns read both) against one path component; ``**`` matches any number of
components. A pattern
that starts with ``/`` must match the whole absolute path; any other pattern matches any tail
of the path (``*.tmp`` matches ``/a/b/x.tmp``; ``cache/*`` matches ``/home/u/cache/x``).
``~`` and ``$VARS`` are expanded. A pattern that starts with ``!`` is a negation, as in restic:
the last pattern that matches a path decides, so ``!keep.tmp`` after ``*.tmp`` cancels that
match for ``keep.tmp`` (an excluded folder is not entered, so nothing below it comes back).
Patterns given as ``folded`` (restic's ``--iexclude`` and ``--iinclude``) ignore case, and
come after the others in that order.

Patterns in another tool's syntax (borg's ``re:``, ``sh:``...; ``./`` for the current folder)
are matched literally, which is not an error, as a name may start so: :func:`pattern_warnings`
says what they would match.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_STAR = ""  # a star among a pattern's pieces (no other piece is empty)
#: borg's pattern styles that FogVault's own patterns already cover, once the prefix is dropped
_BORG_PREFIXES = ("sh:", "fm:", "pp:", "pf:")


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and _matcher(head)(parts[0]) is not None and _match(rest, parts[1:])


@functools.lru_cache(maxsize=4096)
def _matcher(pattern: str) -> Callable[[str], re.Match[str] | None]:
    """One name's pattern as a regular expression's ``fullmatch``: ``*``, ``?``, sets, and
    ``\\`` for the next character as it is. A ``[`` whose set never closes is itself."""
    regex: list[str] = []  # each piece an expression, or _STAR
    i = 0
    while i < len(pattern):
        char = pattern[i]
        i += 1
        if char == "\\" and i < len(pattern):
            regex.append(re.escape(pattern[i]))
            i += 1
        elif char == "*":
            if not regex or regex[-1] != _STAR:
                regex.append(_STAR)
        elif char == "?":
            regex.append(".")
        elif char == "[" and (end := _set_end(pattern, i)) >= 0:
            regex.append(_set(pattern[i:end]))
            i = end + 1
        else:
            regex.append(re.escape(char))
    return re.compile(_joined(regex), re.DOTALL).fullmatch


def _joined(regex: list[str]) -> str:
    """The pieces as one expression, the stars as fnmatch writes them: each but the last an
    atomic lazy group, so that a pattern of many stars never backtracks exponentially."""
    stars = [i for i, piece in enumerate(regex) if piece == _STAR]
    if not stars:
        return "".join(regex)
    out = "".join(regex[:stars[0]])
    for star, after in zip(stars, [*stars[1:], None], strict=True):
        fixed = "".join(regex[star + 1:after])
        out += f".*{fixed}" if after is None else f"(?>.*?{fixed})"
    return out


def _set_end(pattern: str, start: int) -> int:
    """Where the set opened just before ``start`` closes: its first ``]`` after its first
    character (which may follow ``!`` or ``^``) that no ``\\`` escapes; -1 if none does."""
    i = start + (pattern[start:start + 1] in ("!", "^"))
    i += pattern[i:i + 1] == "]"
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
        elif pattern[i] == "]":
            return i
        else:
            i += 1
    return -1


def _set(body: str) -> str:
    """A set's body (between the brackets) as a regular expression: ranges ``a-z`` (an empty
    one, ``z-a``, matches nothing), escapes resolved."""
    negated = body[:1] in ("!", "^")
    items, i, body = [], 0, body[negated:]
    while i < len(body):  # (character, whether it is a range's dash)
        escaped = body[i] == "\\" and i + 1 < len(body)
        items.append((body[i + escaped], body[i] == "-"))
        i += 1 + escaped
    parts, i = [], 0
    while i < len(items):
        if i + 2 < len(items) and items[i + 1][1] and not items[i][1] and not items[i + 2][1]:
            low, high = items[i][0], items[i + 2][0]
            if low <= high:
                parts.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 3
        else:
            parts.append(re.escape(items[i][0]))
            i += 1
    if not parts:
        return "." if negated else "(?!)"
    return f"[{'^' if negated else ''}{''.join(parts)}]"


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str  # as given
    negated: bool
    anchored: bool
    parts: list[str]  # lower case if folded
    folded: bool

    def matches(self, parts: list[str], lowered: list[str]) -> bool:
        """Whether the pattern matches the path of ``parts`` (``lowered``: the same in lower
        case, for a folded pattern)."""
        if self.folded:
            parts = lowered
        starts = [0] if self.anchored else range(len(parts))
        return any(_match(self.parts, parts[i:]) for i in starts)


class PathPatterns:
    def __init__(self, patterns: Iterable[str], folded: Iterable[str] = ()) -> None:
        self._compiled: list[_Pattern] = []
        for fold, given in ((False, patterns), (True, folded)):
            for raw in given:
                negated, text = _split_negation(raw)
                pattern = os.path.expandvars(os.path.expanduser(text))
                if fold:
                    pattern = pattern.lower()
                # An empty one (an unset variable) is kept: it matches nothing, and as an
                # include it still means "restore only what the includes match".
                self._compiled.append(_Pattern(raw.strip(), negated, pattern.startswith("/"),
                                               _components(pattern), fold))
        self._folds = any(p.folded for p in self._compiled)

    def _parts(self, path: bytes | str) -> tuple[list[str], list[str]]:
        """The components of ``path``, and the same in lower case if a pattern ignores case."""
        parts = _components(os.fsdecode(path))
        return parts, [p.lower() for p in parts] if self._folds else parts

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def matches(self, path: bytes | str) -> bool:
        return self.decide(path) is True

    def decide(self, path: bytes | str) -> bool | None:
        """True if the last pattern that matches ``path`` is a plain one, False if it is a
        ``!`` pattern, None if none matches (a caller may then go by a folder above it)."""
        parts = self._parts(path)
        for pattern in reversed(self._compiled):
            if pattern.matches(*parts):
                return not pattern.negated
        return None

    @property
    def negates(self) -> bool:
        """Whether any pattern is a ``!`` pattern."""
        return any(p.negated for p in self._compiled)

    def matching(self, path: bytes | str) -> set[str]:
        """The patterns that are not negations and match ``path`` on their own, as given."""
        parts = self._parts(path)
        return {p.text for p in self._compiled if not p.negated and p.matches(*parts)}

    def plain(self) -> list[str]:
        """The patterns that are not negations, as given."""
        return [p.text for p in self._compiled if not p.negated]


def _split_negation(raw: str) -> tuple[bool, str]:
    text = raw.strip()
    return text.startswith("!"), text.removeprefix("!")


def pattern_warnings(patterns: Iterable[str]) -> list[str]:
    """One line for each pattern that would quietly do nothing: an empty one, one written in
    borg's or restic's syntax that FogVault takes literally, one with a '[' that opens no set,
    or a ``!`` pattern with no pattern before it whose match it could cancel."""
    lines = []
    excluding = False  # has a plain pattern come yet
    for raw in patterns:
        negated, text = _split_negation(raw)
        if not text:  # an unset variable: --exclude "$DIR"
            lines.append(f"pattern {raw!r} is empty: it matches nothing")
            continue
        if hint := _foreign_syntax_hint(text):
            lines.append(f"pattern '{raw.strip()}' is matched literally: {hint}")
        if any(_has_unclosed_set(part) for part in _components(text)):  # restic refuses it
            lines.append(f"pattern '{raw.strip()}' has a '[' with no ']' after it in the same "
                         "name: it opens no set and matches itself (write '[[]' to say so)")
        if any(_ends_escaping(part) for part in _components(text)):  # restic refuses it
            lines.append(f"pattern '{raw.strip()}' has a backslash that escapes nothing at the "
                         "end of a name: it matches a backslash (write '\\\\' to say so)")
        if negated and not excluding:
            lines.append(f"pattern '{raw.strip()}' has no effect: a '!' pattern only takes "
                         "back a match of a pattern before it (a name that starts with '!' "
                         f"is matched by '**/{raw.strip()}')")
        excluding = excluding or not negated
    return lines


def _foreign_syntax_hint(pattern: str) -> str | None:
    if pattern.startswith(_BORG_PREFIXES):
        return (f"FogVault has no borg-style '{pattern[:3]}' prefix "
                f"(did you mean '{pattern[3:]}'?)")
    if pattern.startswith("re:"):
        return ("FogVault has no regular expressions (borg's 're:'); use shell wildcards: "
                "'*', '?', '[...]' and '**' for any number of folders")
    if {".", ".."} & set(pattern.split("/")):
        return (f"patterns match absolute paths, which hold no '.' or '..' "
                f"(did you mean '{os.path.abspath(pattern)}'?)")
    return None


def _ends_escaping(name: str) -> bool:
    """Whether ``name`` ends in a backslash that escapes nothing (an odd run of them)."""
    return (len(name) - len(name.rstrip("\\"))) % 2 == 1


def _has_unclosed_set(name: str) -> bool:
    """Whether ``name`` holds a '[' (not escaped) that opens no set, and so matches itself."""
    i = 0
    while i < len(name):
        if name[i] == "\\":
            i += 2
        elif name[i] == "[":
            end = _set_end(name, i + 1)
            if end < 0:
                return True
            i = end + 1
        else:
            i += 1
    return False
