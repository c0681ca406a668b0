"""Path patterns shared by backup excludes and restore includes/excludes.

A pattern is split at ``/`` and each part is matched with shell wildcards (``*``, ``?``,
``[...]``) against one path component; ``**`` matches any number of components. A pattern
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

import os
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

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
    return bool(parts) and fnmatchcase(parts[0], head) and _match(rest, parts[1:])


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


def _has_unclosed_set(name: str) -> bool:
    """Whether ``name`` holds a '[' that fnmatch takes literally: a set runs to the first ']'
    after its first character (which may be '!' and then ']'), and one that never closes is
    no set."""
    i = 0
    while (i := name.find("[", i)) >= 0:
        j = i + 1
        if name[j:j + 1] == "!":
            j += 1
        if name[j:j + 1] == "]":
            j += 1
        end = name.find("]", j)
        if end < 0:
            return True
        i = end + 1
    return False
