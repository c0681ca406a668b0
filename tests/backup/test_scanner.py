"""The background count behind the progress bar's total: what the backup will read, with the
same excludes, down to entries deeper than PATH_MAX."""

from __future__ import annotations

import os

from fogvault.backup.excludes import ExcludeRules
from fogvault.backup.scanner import Scanner
from tests.backup.test_deep_trees import nested


def _count(paths, excludes: ExcludeRules) -> list[tuple[int, int]]:
    totals: list[tuple[int, int]] = []
    Scanner([str(p) for p in paths], excludes, lambda files, size: totals.append((files, size))
            ).run()
    return totals


def test_the_total_counts_what_the_backup_reads(tmp_path):
    src = tmp_path / "src"
    for folder in ("a/b", "skipped", "cache"):
        (src / folder).mkdir(parents=True)
    (src / "a" / "one").write_bytes(b"1" * 10)
    (src / "a" / "b" / "two").write_bytes(b"2" * 20)
    (src / "a" / "big").write_bytes(b"3" * 5000)  # larger than allowed
    (src / "skipped" / "x").write_bytes(b"x" * 40)
    (src / "cache" / "CACHEDIR.TAG").write_bytes(b"Signature: 8a477f597d28d172789f06886806bc55")
    (src / "cache" / "y").write_bytes(b"y" * 80)
    os.symlink("a/one", src / "link")
    excludes = ExcludeRules(["skipped"], exclude_caches=True, larger_than=1000)
    assert _count([src], excludes)[-1] == (2, 30)
    assert _count([src], ExcludeRules())[-1] == (6, 10 + 20 + 5000 + 40 + 43 + 80)


def test_the_total_counts_files_deeper_than_path_max(tmp_path):
    depth = 2500  # 5,000 bytes of path
    with nested(tmp_path / "src", depth):  # one file of 13 bytes at the bottom
        (tmp_path / "src" / "top").write_bytes(b"t" * 7)
        try:
            assert _count([tmp_path / "src"], ExcludeRules())[-1] == (2, 20)
        finally:
            (tmp_path / "src" / "top").unlink()  # what nested() removes is its own


def test_paths_given_below_other_given_paths_are_counted_once(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a").write_bytes(b"a" * 10)
    (src / "b").write_bytes(b"b" * 5)
    given = [src, src / "d", src / "d" / "a", f"{src}/d/", src / "b"]
    assert _count(given, ExcludeRules())[-1] == (2, 15)
