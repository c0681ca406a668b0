"""restic's ways to choose what a backup takes and a restore writes, through the real CLI:
--files-from, --files-from-verbatim, --files-from-raw, --iexclude, --iexclude-file,
--exclude-larger-than, and restore's --iinclude and --iexclude."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def src(fogvault, tmp_path):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    src = tmp_path / "src"
    (src / "Docs").mkdir(parents=True)
    (src / "Docs" / "Report.PDF").write_bytes(b"r" * 100)
    (src / "Docs" / "notes.txt").write_bytes(b"n" * 100)
    (src / "big.iso").write_bytes(b"b" * 5000)
    (src / "Cache").mkdir()
    (src / "Cache" / "blob").write_bytes(b"c")
    (src / "line\nbreak").write_bytes(b"l")
    (src / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 name")
    return src


def _backed_up(fogvault, src) -> set[str]:
    """The files (not folders) of the latest snapshot, relative to ``src``."""
    done = fogvault("ls", "-r", "repo", "latest", "--recursive", "--json")
    assert done.returncode == 0, done.stderr
    prefix = f"{src}/"
    return {os.fsdecode(os.fsencode(e["path"]))[len(prefix):] for e in json.loads(done.stdout)
            if e["type"] == "file" and e["path"].startswith(prefix)}


def _backup(fogvault, *args, input=None):
    done = fogvault("backup", "-r", "repo", *args, input=input)
    assert done.returncode == 0, done.stderr
    return done


def test_files_from_takes_one_path_a_line_skipping_comments(fogvault, src, tmp_path):
    (tmp_path / "list").write_text(f"# what to keep\n{src}/Docs/notes.txt\n\n{src}/big.iso\r\n")
    _backup(fogvault, "--files-from", "list")
    assert _backed_up(fogvault, src) == {"Docs/notes.txt", "big.iso"}
    snaps = json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)
    assert snaps[-1]["paths"] == [f"{src}/Docs/notes.txt", f"{src}/big.iso"]


def test_files_from_expands_wildcards_and_trims_lines_as_restic_does(fogvault, src, tmp_path):
    (src / "Docs" / ".hidden.txt").write_bytes(b"h")
    (tmp_path / "list").write_text(f"  {src}/Docs/*.txt \n\t# {src}/big.iso\n{src}/C?che\n")
    _backup(fogvault, "--files-from", "list")
    assert _backed_up(fogvault, src) == {"Docs/.hidden.txt", "Docs/notes.txt", "Cache/blob"}
    snaps = json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)
    assert snaps[-1]["paths"] == [f"{src}/Cache", f"{src}/Docs/.hidden.txt",
                                  f"{src}/Docs/notes.txt"]


def test_a_pattern_that_matches_nothing_is_reported_and_the_rest_backed_up(fogvault, src,
                                                                          tmp_path):
    (tmp_path / "list").write_text(f"{src}/*.zip\n{src}/big.iso\n")
    done = fogvault("backup", "-r", "repo", "--files-from", "list")
    assert done.returncode == 3
    assert f"{src}/*.zip: cannot back up: No such file or directory" in done.stderr.decode()
    assert _backed_up(fogvault, src) == {"big.iso"}


def test_files_from_verbatim_takes_each_line_as_it_is(fogvault, src, tmp_path):
    for name in (" spaced ", "#hash", "star*", "[x]"):
        (src / name).write_bytes(b"v")
    (src / "x").write_bytes(b"matched by [x] as a pattern, not verbatim")
    lines = [f"{src}/{name}" for name in (" spaced ", "[x]")] + ["", f"{src}/star*"]
    (tmp_path / "#top").write_bytes(b"a name that a --files-from list takes as a comment")
    (tmp_path / "list").write_text("\n".join(lines) + f"\r\n{src}/#hash\n#top\n")
    _backup(fogvault, "--files-from-verbatim", "list")
    assert _backed_up(fogvault, src) == {" spaced ", "#hash", "star*", "[x]"}
    assert "/#top" in fogvault("ls", "-r", "repo", "latest", "--recursive").stdout.decode()


def test_files_from_raw_takes_any_name_and_adds_to_the_arguments(fogvault, src, tmp_path):
    names = [os.fsencode(src / "line\nbreak"), os.fsencode(src) + b"/caf\xe9"]
    _backup(fogvault, "--files-from-raw", "-", f"{src}/Docs", input=b"\0".join(names) + b"\0")
    assert _backed_up(fogvault, src) == {"line\nbreak", os.fsdecode(b"caf\xe9"),
                                         "Docs/Report.PDF", "Docs/notes.txt"}


def test_no_paths_at_all_is_a_usage_error(fogvault, src, tmp_path):
    (tmp_path / "empty").write_text("# nothing\n")
    done = fogvault("backup", "-r", "repo", "--files-from", "empty")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: nothing to back up: give paths or a --files-from list"]
    missing = fogvault("backup", "-r", "repo", "--files-from", "nope")
    assert missing.returncode == 2
    assert missing.stderr.decode().splitlines() == [
        "error: cannot read path list nope: No such file or directory"]


def test_iexclude_ignores_case_and_exclude_does_not(fogvault, src, tmp_path):
    _backup(fogvault, "src", "--exclude", "*.pdf", "--exclude", "cache")
    assert {"Docs/Report.PDF", "Cache/blob"} <= _backed_up(fogvault, src)
    (tmp_path / "patterns").write_text("# folders\ncache\n")
    _backup(fogvault, "src", "--iexclude", "*.pdf", "--iexclude-file", "patterns")
    kept = _backed_up(fogvault, src)
    assert "Docs/Report.PDF" not in kept and "Cache/blob" not in kept
    assert "Docs/notes.txt" in kept


def test_exclude_larger_than_skips_big_files_unless_named(fogvault, src):
    _backup(fogvault, "src", "--exclude-larger-than", "1K")
    kept = _backed_up(fogvault, src)
    assert "big.iso" not in kept and {"Docs/notes.txt", "Cache/blob"} <= kept
    _backup(fogvault, "src", f"{src}/big.iso", "--exclude-larger-than", "1K")
    assert "big.iso" in _backed_up(fogvault, src)  # a path given is never excluded
    done = fogvault("backup", "-r", "repo", "src", "--exclude-larger-than", "lots")
    assert done.returncode == 2
    assert "not a size: 'lots'" in done.stderr.decode()


def test_restore_iinclude_and_iexclude_ignore_case(fogvault, src, tmp_path):
    _backup(fogvault, "src")
    done = fogvault("restore", "-r", "repo", "latest", "-t", "out", "--iinclude", "docs")
    assert done.returncode == 0, done.stderr
    restored = tmp_path / "out" / str(src).lstrip("/")
    assert sorted(p.name for p in restored.rglob("*") if p.is_file()) == [
        "Report.PDF", "notes.txt"]
    done = fogvault("restore", "-r", "repo", "latest", "-t", "out2", "--iinclude", "docs",
                    "--iexclude", "*.pdf")
    assert done.returncode == 0, done.stderr
    restored = tmp_path / "out2" / str(src).lstrip("/")
    assert [p.name for p in restored.rglob("*") if p.is_file()] == ["notes.txt"]
    unmatched = fogvault("restore", "-r", "repo", "latest", "-t", "out3", "--include", "docs")
    assert unmatched.returncode == 3  # case matters without the i: nothing matched


def test_a_comment_line_that_names_a_file_is_warned_about(fogvault, src, tmp_path):
    (tmp_path / "#draft#").write_text("emacs autosave")
    (tmp_path / "list").write_text(f"#draft#\n{src}/big.iso\n")
    done = _backup(fogvault, "--files-from", "list")
    assert "line '#draft#' is a comment, but names a file, which is not backed up" in (
        done.stderr.decode())
    assert _backed_up(fogvault, src) == {"big.iso"}


def test_a_pattern_line_that_names_a_file_but_matches_others_is_warned_about(fogvault, src,
                                                                             tmp_path):
    (src / "file[1]").write_bytes(b"brackets in the name")
    (src / "file1").write_bytes(b"what the pattern matches")
    (tmp_path / "list").write_text(f"{src}/file[1]\n")
    done = _backup(fogvault, "--files-from", "list")
    assert "names a file, but is a pattern that matches others" in done.stderr.decode()
    assert _backed_up(fogvault, src) == {"file1"}
    _backup(fogvault, "--files-from-verbatim", "list")
    assert _backed_up(fogvault, src) == {"file[1]"}
