"""Exclude rules and the pattern language: restic's '!' negation, and warnings for patterns
written in another tool's syntax, which would quietly match nothing."""

from __future__ import annotations

import os

import pytest

from fogvault.backup.excludes import ExcludeRules
from fogvault.patterns import PathPatterns, pattern_warnings


def _excluded(patterns: list[str], *paths: str) -> list[str]:
    rules = ExcludeRules(patterns)
    return [p for p in paths if rules.excludes_path(os.fsencode(p))]


def test_a_negated_pattern_takes_back_an_earlier_match():
    assert _excluded(["*.tmp", "!keep.tmp"], "/a/x.tmp", "/a/keep.tmp") == ["/a/x.tmp"]


def test_the_last_matching_pattern_decides():
    patterns = ["*.tmp", "!keep.tmp", "/a/keep.tmp"]
    assert _excluded(patterns, "/a/keep.tmp", "/b/keep.tmp") == ["/a/keep.tmp"]


def test_restics_example_keeps_a_selection_of_home_folders():
    """restic's manual: exclude every folder of $HOME, then take some back."""
    patterns = ["/home/ann/*", "!/home/ann/Documents", "!/home/ann/code", "*.o"]
    assert _excluded(patterns, "/home/ann/Music", "/home/ann/Documents", "/home/ann/code/x.c",
                     "/home/ann/code/x.o") == ["/home/ann/Music", "/home/ann/code/x.o"]


def test_a_negation_alone_matches_nothing():
    assert not PathPatterns(["!x"]).matches("/a/x")


def test_a_name_that_starts_with_an_exclamation_mark_can_still_be_matched():
    assert PathPatterns(["**/!important"]).matches("/a/!important")


@pytest.mark.parametrize(("pattern", "says"), [
    ("sh:**/cache", "no borg-style 'sh:' prefix (did you mean '**/cache'?)"),
    ("fm:*.tmp", "no borg-style 'fm:' prefix (did you mean '*.tmp'?)"),
    ("pp:/abs/path", "no borg-style 'pp:' prefix (did you mean '/abs/path'?)"),
    ("pf:/abs/file", "no borg-style 'pf:' prefix (did you mean '/abs/file'?)"),
    (r"re:\.tmp$", "FogVault has no regular expressions (borg's 're:')"),
    ("./data/sub", "hold no '.' or '..' (did you mean '{cwd}/data/sub'?)"),
    ("!./data/sub", "hold no '.' or '..' (did you mean '{cwd}/data/sub'?)"),
])
def test_patterns_in_another_tools_syntax_are_warned_about(pattern, says, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    [line] = pattern_warnings(["*.bak", pattern])
    assert line.startswith(f"pattern '{pattern}' is matched literally: ")
    assert says.format(cwd=tmp_path) in line


def test_a_leading_negation_is_warned_about():
    assert pattern_warnings(["!keep.tmp", "*.tmp"]) == [
        "pattern '!keep.tmp' has no effect: a '!' pattern only takes back a match of a pattern "
        "before it (a name that starts with '!' is matched by '**/!keep.tmp')"]


def test_an_empty_pattern_is_warned_about():
    """--exclude "$UNSET" excluded nothing, silently."""
    assert pattern_warnings(["*.tmp", "", "!", " "]) == [  # patterns are taken stripped
        "pattern '' is empty: it matches nothing", "pattern '!' is empty: it matches nothing",
        "pattern ' ' is empty: it matches nothing"]


def test_a_bracket_that_opens_no_set_is_warned_about():
    """fnmatch takes a '[' with no ']' after it in its name as itself: 'find "["' and
    '--exclude "*.[ch"' said nothing, where restic refuses such a pattern."""
    said = pattern_warnings(["[", "*.[ch", "x[y/z]", "[!]", "/a/[b"])
    assert said == [f"pattern '{p}' has a '[' with no ']' after it in the same name: it opens "
                    "no set and matches itself (write '[[]' to say so)"
                    for p in ("[", "*.[ch", "x[y/z]", "[!]", "/a/[b")]
    assert PathPatterns(["*.[ch"]).matches("/src/x.[ch")  # as said: the '[' is itself


@pytest.mark.parametrize(("pattern", "matched", "not_matched"), [
    ("[^a].txt", "b.txt", "a.txt"),  # restic's (Go's) negation: '^' was a member of the set
    ("[!a].txt", "b.txt", "a.txt"),  # the shell's, kept
    ("star\\*.txt", "star*.txt", "starx.txt"),  # an escaped wildcard is itself
    ("q\\?", "q?", "qx"),
    ("\\[abc\\]", "[abc]", "a"),
    ("[\\]x]", "]", "\\"),  # escapes inside a set
    ("back\\\\slash", "back\\slash", "backslash"),  # '\\' is one backslash
    ("[z-a]x", None, "zx"),  # an empty range matches nothing
    ("*a*a*a*a*a*a*a*b", "ab" * 3 + "a" * 5 + "b", "a" * 250),  # no exponential backtracking
])
def test_wildcards_as_restic_reads_them(pattern, matched, not_matched):
    patterns = PathPatterns([pattern])
    if matched is not None:
        assert patterns.matches(f"/d/{matched}")
    assert not patterns.matches(f"/d/{not_matched}")


def test_a_backslash_that_escapes_nothing_is_warned_about():
    """restic refuses such a pattern; it matches a backslash here."""
    assert pattern_warnings(["a\\", "x\\/y", "a\\\\"]) == [
        f"pattern '{p}' has a backslash that escapes nothing at the end of a name: it matches "
        "a backslash (write '\\\\' to say so)" for p in ("a\\", "x\\/y")]
    assert PathPatterns(["a\\"]).matches("/d/a\\")


def test_fogvault_patterns_get_no_warning():
    assert pattern_warnings(["*.tmp", "!keep.tmp", "/home/*/.cache", "**/node_modules",
                             "cache/*", "~/tmp", "re", "data.sh:x", "*.[ch]", "[]]", "[!]x]",
                             "[[]", "a[!b]c", "[^a]", "\\[x", "a\\*"]) == []


def test_folded_patterns_ignore_case_and_come_after_the_others():
    rules = ExcludeRules(["*.tmp", "/Data/Keep"], folded=["*.ISO", "!keep.TMP"])
    assert [p for p in ("/a/x.iso", "/a/X.Iso", "/a/keep.tmp", "/a/y.TMP", "/data/keep",
                        "/Data/Keep")
            if rules.excludes_path(os.fsencode(p))] == ["/a/x.iso", "/a/X.Iso", "/Data/Keep"]


def test_exclude_larger_than_is_strictly_larger():
    rules = ExcludeRules(larger_than=1000)
    assert [rules.excludes_size(n) for n in (0, 1000, 1001)] == [False, False, True]
    assert not ExcludeRules().excludes_size(10**15)


def test_an_exclude_file_holds_one_pattern_per_line_split_at_newlines_only(tmp_path):
    """Names may hold characters str.splitlines splits at (\\x1c, U+2028): such a line was
    taken as two patterns, which excluded other files and not the one named."""
    listed = tmp_path / "excludes"
    listed.write_bytes("keep\u2028me\r\na\x1cb\n# a comment\n\n".encode())
    assert ExcludeRules.read_files([str(listed)]) == ["keep\u2028me", "a\x1cb"]
