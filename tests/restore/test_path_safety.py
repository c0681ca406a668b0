"""Restoring hostile snapshots: nothing may ever be written outside the target folder.

Every repository here is built by hand (``crafted.py``): authentic, decryptable tree blobs
whose *contents* are malicious, the way a compromised writer or a buggy client could store
them. For each one, restore must either refuse with a FogVaultError, or restore safely; in
both cases the sentinel folder next to the target, and anything an absolute name could reach,
must be exactly as before (same entries, types, modes, times, inodes, link counts, contents).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from outputs import one_error_line

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for crafted.py
from crafted import (
    DATA,
    TREE,
    dir_node,
    fifo_node,
    file_node,
    save_snapshot,
    store,
    store_tree,
    symlink_node,
    tree_bytes,
)

from fogvault.errors import IntegrityError, MalformedObject, UnsafePath
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.repo.tree import Tree
from fogvault.restore.restorer import RestoreOptions, Restorer, RestoreSummary

PAYLOAD = b"written by a hostile snapshot\n"
PRECIOUS = b"precious data that must never change\n"
#: An absolute path a hostile name or symlink could aim at, outside any test folder.
ABSOLUTE_ESCAPE = "/fogvault-path-safety-escape"


# ---- the arena: a target folder and a sentinel folder next to it -------------------------


def tree_state(root: Path, skip: set[Path] = frozenset()) -> dict[bytes, tuple[Any, ...]]:
    """Everything observable about the entries below ``root`` (symlinks are not followed)."""
    state: dict[bytes, tuple[Any, ...]] = {}
    stack = [os.fsencode(root)]
    skipped = {os.fsencode(p) for p in skip}
    while stack:
        folder = stack.pop()
        for entry in os.scandir(folder):
            path = entry.path
            if path in skipped:
                continue
            st = os.lstat(path)
            extra: Any = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    extra = f.read()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                stack.append(path)
            rel = os.path.relpath(path, os.fsencode(root))
            state[rel] = (st.st_mode, st.st_ino, st.st_nlink, st.st_size, st.st_mtime_ns,
                          st.st_uid, st.st_gid, extra)
    return state


@dataclass
class Arena:
    root: Path
    target: Path  # restores go below here
    outside: Path  # the sentinel folder: must never change
    victim: Path  # a precious file in it

    def state(self) -> dict[bytes, tuple[Any, ...]]:
        return tree_state(self.root, skip={self.target})

    @contextlib.contextmanager
    def contained(self) -> Iterator[None]:
        """Assert that the body changes nothing outside the target folder."""
        before = self.state()
        escape_existed = os.path.lexists(ABSOLUTE_ESCAPE)
        try:
            yield
        finally:
            assert self.state() == before, "restore changed something outside its target"
            assert os.path.lexists(ABSOLUTE_ESCAPE) == escape_existed
            assert self.victim.read_bytes() == PRECIOUS
            assert os.lstat(self.victim).st_nlink == 1


@pytest.fixture
def arena(tmp_path: Path) -> Arena:
    root = tmp_path / "arena"
    outside = root / "outside"
    (outside / "sub").mkdir(parents=True)
    victim = outside / "victim"
    victim.write_bytes(PRECIOUS)
    (outside / "sub" / "other").write_bytes(PRECIOUS)
    target = root / "target"
    target.mkdir()
    return Arena(root, target, outside, victim)


def restore(repo: Repository, snapshot: Snapshot, target: Path, **options: Any) -> RestoreSummary:
    return Restorer(repo, snapshot, RestoreOptions(target=str(target), **options)).run()


@pytest.fixture
def repo(make_repo: Callable[..., Repository]) -> Repository:
    return make_repo()


def payload_file(repo: Repository, name: str | bytes, **extra: Any) -> dict[str, Any]:
    return {**file_node(name, [store(repo, DATA, PAYLOAD)], len(PAYLOAD)), **extra}


def in_home(repo: Repository, nodes: list[dict[str, Any]]) -> Snapshot:
    """A snapshot of ``/home`` holding ``nodes``."""
    return save_snapshot(repo, store_tree(repo, [dir_node("home", store_tree(repo, nodes))]))


# ---- names that address something other than one child of their folder ------------------

BAD_NAMES: list[str | bytes] = [
    "..",
    ".",
    "",
    "a/b",
    "../outside/victim",
    "../../outside/victim",
    ABSOLUTE_ESCAPE,
    "a\x00b",
    "\x00",
    b"..",  # the same, spelled as name_b64
    b"../outside/victim",
    b"/fogvault-path-safety-escape",
    b"x\x00/../..",
]


def hostile_nodes(repo: Repository, name: str | bytes) -> dict[str, dict[str, Any]]:
    """One node of every kind, all called ``name``."""
    empty = store_tree(repo, [])
    return {
        "file": payload_file(repo, name),
        "dir": dir_node(name, store_tree(repo, [payload_file(repo, "pwned")])),
        "empty-dir": dir_node(name, empty),
        "symlink": symlink_node(name, "../outside"),
        "fifo": fifo_node(name),
    }


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_decoder_refuses_unsafe_names(repo: Repository, name: str | bytes) -> None:
    for node in hostile_nodes(repo, name).values():
        with pytest.raises(UnsafePath):
            Tree.decode(tree_bytes([node]))


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_restore_refuses_unsafe_names(repo: Repository, arena: Arena, name: str | bytes) -> None:
    for kind, node in hostile_nodes(repo, name).items():
        # At the top of the snapshot, and one level down (below a folder restored first).
        for where, snapshot in [
            ("top", save_snapshot(repo, store_tree(repo, [node]))),
            ("home", in_home(repo, [payload_file(repo, "fine"), node])),
        ]:
            target = arena.target / f"{kind}-{where}"
            with arena.contained(), pytest.raises(UnsafePath):
                restore(repo, snapshot, target)
            # Nothing named after the hostile entry exists anywhere below the target either.
            assert not list(target.rglob("pwned"))
            for path in target.rglob("*"):
                assert path.name != "victim"


def test_unsafe_name_deep_in_an_otherwise_fine_snapshot(repo: Repository, arena: Arena) -> None:
    """The refusal happens when the bad tree is reached (folders planned before it exist,
    below the target; files with content do not: they are created with their first blob,
    after planning); the sentinel is untouched."""
    bad = store_tree(repo, [payload_file(repo, "../../../outside/victim")])
    deep = store_tree(repo, [dir_node("c", bad)])
    root = store_tree(repo, [payload_file(repo, "a"), dir_node("b", deep)])
    snapshot = save_snapshot(repo, root)
    with arena.contained(), pytest.raises(UnsafePath, match="unsafe file name"):
        restore(repo, snapshot, arena.target)
    assert not (arena.target / "a").exists()
    assert (arena.target / "b" / "c").is_dir()
    assert list((arena.target / "b" / "c").iterdir()) == []


# ---- a symlink, then something that would be written through it ---------------------------


@pytest.mark.parametrize("link_target", [
    "ABS_OUTSIDE", "../outside", "../../outside", "../../../arena/outside", "/",
])
def test_duplicate_name_symlink_then_folder_is_refused(
    repo: Repository, arena: Arena, link_target: str
) -> None:
    """``evil -> outside`` and a folder ``evil/`` holding ``victim``: written in the decoder's
    sorted order and in the opposite order, both with and without a folder in between."""
    if link_target == "ABS_OUTSIDE":
        link_target = str(arena.outside)
    link = symlink_node("evil", link_target)
    folder = dir_node("evil", store_tree(repo, [payload_file(repo, "victim")]))
    for order, nodes in [("link-first", [link, folder]), ("dir-first", [folder, link])]:
        data = tree_bytes(nodes, sort=False)
        with pytest.raises(MalformedObject, match="duplicate"):
            Tree.decode(data)
        for where, snapshot in [
            ("top", save_snapshot(repo, store(repo, TREE, data))),
            ("home", save_snapshot(repo, store_tree(repo, [
                dir_node("home", store(repo, TREE, data))]))),
        ]:
            with arena.contained(), pytest.raises(MalformedObject):
                restore(repo, snapshot, arena.target / f"{order}-{where}")


def test_symlinks_pointing_outside_are_restored_as_links_only(
    repo: Repository, arena: Arena
) -> None:
    """Absolute and relative symlinks out of the target are data: restored as they were,
    never followed, and the folder next to them gets its own entries."""
    targets = {
        "abs-dir": str(arena.outside),
        "abs-file": str(arena.victim),
        "rel-dir": "../../outside",
        "rel-file": "../../outside/victim",
        "root": "/",
        "dangling": ABSOLUTE_ESCAPE,
        "dotdot": "..",
    }
    home = [symlink_node(name, link) for name, link in targets.items()]
    home.append(dir_node("evil", store_tree(repo, [payload_file(repo, "victim")])))
    snapshot = in_home(repo, home)
    with arena.contained():
        summary = restore(repo, snapshot, arena.target, verify=True)
    assert summary.links == len(targets)
    assert summary.warnings == []
    restored = arena.target / "home"
    for name, link in targets.items():
        assert os.readlink(restored / name) == link
    assert (restored / "evil" / "victim").read_bytes() == PAYLOAD
    assert not (restored / "evil").is_symlink()


@pytest.mark.parametrize("overwrite", ["always", "if-changed", "never"])
@pytest.mark.parametrize("link_target", ["ABS_OUTSIDE", "../outside"])
def test_target_already_holds_a_symlinked_folder(
    repo: Repository, arena: Arena, overwrite: str, link_target: str
) -> None:
    """The target contains ``home -> <outside>`` before the restore of ``/home/user/victim``:
    the link is replaced (always) or the restore refuses; it is never followed."""
    os.symlink(str(arena.outside) if link_target == "ABS_OUTSIDE" else link_target,
               arena.target / "home")
    user = store_tree(repo, [payload_file(repo, "victim"), payload_file(repo, "new")])
    snapshot = in_home(repo, [dir_node("user", user), payload_file(repo, "victim")])
    with arena.contained():
        if overwrite == "always":
            restore(repo, snapshot, arena.target, overwrite=overwrite)
        else:
            with pytest.raises(UnsafePath, match="not a folder"):
                restore(repo, snapshot, arena.target, overwrite=overwrite)
    home = arena.target / "home"
    if overwrite == "always":
        assert not home.is_symlink() and home.is_dir()
        assert (home / "victim").read_bytes() == PAYLOAD
        assert (home / "user" / "new").read_bytes() == PAYLOAD
    else:
        assert home.is_symlink()  # left alone


@pytest.mark.parametrize("overwrite", ["always", "if-changed", "never"])
def test_target_holds_a_symlink_deeper_down(
    repo: Repository, arena: Arena, overwrite: str
) -> None:
    """A real ``home`` folder, but ``home/user -> outside`` inside it."""
    (arena.target / "home").mkdir()
    os.symlink(arena.outside, arena.target / "home" / "user")
    user = store_tree(repo, [payload_file(repo, "victim"), fifo_node("fifo"),
                             symlink_node("sub", "x"), dir_node("other", store_tree(repo, []))])
    snapshot = in_home(repo, [dir_node("user", user)])
    with arena.contained():
        if overwrite == "always":
            restore(repo, snapshot, arena.target, overwrite=overwrite)
            assert (arena.target / "home" / "user" / "victim").read_bytes() == PAYLOAD
        else:
            with pytest.raises(UnsafePath):
                restore(repo, snapshot, arena.target, overwrite=overwrite)


def test_include_below_a_symlinked_folder_in_the_target_is_refused(
    repo: Repository, arena: Arena
) -> None:
    """With --include, the folders above the selected file are not restored themselves, only
    passed through: a symlink there must stop the restore, not be followed."""
    os.symlink(arena.outside, arena.target / "home")
    snapshot = in_home(repo, [payload_file(repo, "victim"), payload_file(repo, "other")])
    for overwrite in ("always", "if-changed", "never"):
        with arena.contained(), pytest.raises(UnsafePath, match="symlink"):
            restore(repo, snapshot, arena.target, includes=["/home/victim"], overwrite=overwrite)
    assert (arena.target / "home").is_symlink()


@pytest.mark.parametrize("overwrite", ["always", "if-changed", "never"])
def test_target_file_is_a_symlink_or_hardlink_to_outside(
    repo: Repository, arena: Arena, overwrite: str
) -> None:
    """Existing *files* in the target that lead outside: symlinks to sentinel files and a
    hardlink of one. Restoring over them must replace the entry, never write into (or
    truncate) what it leads to, whatever the overwrite mode."""
    home = arena.target / "home"
    home.mkdir()
    same_size = arena.outside / "sub" / "other"
    linked = arena.outside / "sub" / "linked"
    linked.write_bytes(PRECIOUS)
    os.symlink(arena.victim, home / "via-symlink")
    os.symlink(same_size, home / "via-symlink-same-size")
    os.link(linked, home / "via-hardlink")
    snapshot = in_home(repo, [
        payload_file(repo, "via-symlink"),
        # Same size and mtime as the file the symlink points at: "if-changed" must judge the
        # link itself, not what it points at.
        file_node("via-symlink-same-size", [store(repo, DATA, b"X" * len(PRECIOUS))],
                  len(PRECIOUS), mtime_ns=os.stat(same_size).st_mtime_ns),
        payload_file(repo, "via-hardlink"),
    ])
    linked_before = os.lstat(linked)
    before = arena.state()
    summary = restore(repo, snapshot, arena.target, overwrite=overwrite)
    after = arena.state()
    # The only change allowed outside: the hardlink count of `linked`, when the target's
    # link to it was replaced.
    rel = os.path.relpath(os.fsencode(linked), os.fsencode(arena.root))
    nlink = 2 if overwrite == "never" else 1
    assert after[rel][2] == nlink
    after[rel] = before[rel]
    assert after == before
    assert linked.read_bytes() == PRECIOUS and arena.victim.read_bytes() == PRECIOUS
    assert os.lstat(linked).st_mtime_ns == linked_before.st_mtime_ns
    if overwrite == "never":
        assert summary.skipped == 3
        assert (home / "via-symlink").is_symlink()
        assert os.lstat(home / "via-hardlink").st_ino == linked_before.st_ino
    else:
        assert summary.skipped == 0
        assert not (home / "via-symlink").is_symlink()
        assert (home / "via-symlink").read_bytes() == PAYLOAD
        assert (home / "via-symlink-same-size").read_bytes() == b"X" * len(PRECIOUS)
        assert (home / "via-hardlink").read_bytes() == PAYLOAD
        assert os.lstat(home / "via-hardlink").st_ino != linked_before.st_ino


# ---- hardlinks ---------------------------------------------------------------------------


def test_hardlink_entries_never_link_to_files_outside(repo: Repository, arena: Arena) -> None:
    """Hardlinks are recorded as (dev, ino, nlink). A snapshot naming the *real* device and
    inode of a file outside the target must not make restore link to it; members of a group
    are linked to each other only, and a symlink in a group is not a link source."""
    victim = os.lstat(arena.victim)
    outside_key = {"dev": victim.st_dev, "ino": victim.st_ino, "nlink": 2}
    group = {"dev": 7, "ino": 1234, "nlink": 3}
    mixed = {"dev": 7, "ino": 99, "nlink": 2}
    data = [store(repo, DATA, PAYLOAD)]
    snapshot = in_home(repo, [
        file_node("alone", data, len(PAYLOAD), **outside_key),
        file_node("g1", data, len(PAYLOAD), **group),
        dir_node("sub", store_tree(repo, [file_node("g2", data, len(PAYLOAD), **group)])),
        file_node("g3", data, len(PAYLOAD), **group),
        symlink_node("m1-link", str(arena.victim), **mixed),
        file_node("m2-file", data, len(PAYLOAD), **mixed),
    ])
    with arena.contained():
        summary = restore(repo, snapshot, arena.target, verify=True)
    assert summary.warnings == []
    home = arena.target / "home"
    alone = os.lstat(home / "alone")
    assert alone.st_ino != victim.st_ino and alone.st_nlink == 1
    assert (home / "alone").read_bytes() == PAYLOAD
    inodes = {os.lstat(p).st_ino for p in (home / "g1", home / "sub" / "g2", home / "g3")}
    assert len(inodes) == 1
    assert os.lstat(home / "g1").st_nlink == 3
    assert (home / "sub" / "g2").read_bytes() == PAYLOAD
    assert os.readlink(home / "m1-link") == str(arena.victim)
    assert stat.S_ISREG(os.lstat(home / "m2-file").st_mode)
    assert (home / "m2-file").read_bytes() == PAYLOAD


# ---- content and metadata a hostile writer controls ---------------------------------------


def test_missing_data_blob_costs_its_file_with_a_clear_warning(repo: Repository, arena: Arena
                                                               ) -> None:
    missing = bytes(range(32))
    snapshot = in_home(repo, [file_node("broken", [missing], 10),
                              payload_file(repo, "fine")])
    with arena.contained():
        summary = restore(repo, snapshot, arena.target)
    assert summary.warnings == [f"{arena.target}/home/broken: not restored: its blob "
                                f"{missing.hex()[:16]} is "
                                "in no index; run 'fogvault check'"]
    assert (arena.target / "home" / "fine").read_bytes() == PAYLOAD


def test_file_the_file_system_refuses_is_a_warning(repo: Repository, arena: Arena) -> None:
    """A name longer than the file system allows (ENAMETOOLONG) fails when the file is
    created, with its first blob: that file is reported and skipped, the rest restored."""
    long_name = "n" * 300
    snapshot = in_home(repo, [payload_file(repo, long_name), payload_file(repo, "z-fine")])
    with arena.contained():
        summary = restore(repo, snapshot, arena.target, verify=True)
    assert [w for w in summary.warnings if "cannot restore" in w and long_name in w]
    assert (arena.target / "home" / "z-fine").read_bytes() == PAYLOAD
    assert os.listdir(arena.target / "home") == ["z-fine"]
    assert summary.verified == 1


def test_missing_subtree_costs_its_contents_with_a_clear_warning(repo: Repository,
                                                                  arena: Arena) -> None:
    snapshot = in_home(repo, [dir_node("gone", bytes(range(32))), payload_file(repo, "fine")])
    with arena.contained():
        summary = restore(repo, snapshot, arena.target)
    [warning] = summary.warnings
    assert warning.startswith(f"{arena.target}/home/gone: its contents cannot be restored: ")
    assert "not in the index" in warning
    assert (arena.target / "home" / "fine").read_bytes() == PAYLOAD


def test_missing_root_tree_is_a_clear_error(repo: Repository, arena: Arena) -> None:
    snapshot = save_snapshot(repo, bytes(range(32)))
    with arena.contained(), pytest.raises(IntegrityError, match="not in the index"):
        restore(repo, snapshot, arena.target)


def test_subtree_that_is_not_a_tree(repo: Repository, arena: Arena) -> None:
    """A folder whose subtree id names a data blob (refused as the wrong blob type, or as
    a tree that does not parse; MalformedObject is an IntegrityError)."""
    snapshot = in_home(repo, [dir_node("data", store(repo, DATA, PAYLOAD))])
    with arena.contained(), pytest.raises(IntegrityError):
        restore(repo, snapshot, arena.target)


HOSTILE_VALUES: dict[str, Callable[[Repository], dict[str, Any]]] = {
    "nul-in-symlink-target": lambda r: symlink_node("link", "../outside\x00/victim"),
    "nul-in-xattr-name": lambda r: payload_file(r, "f", xattrs=[["dXNlcgB4", "dg=="]]),
    "huge-mode": lambda r: payload_file(r, "f", mode=2**40),
    "huge-fifo-mode": lambda r: fifo_node("p", mode=2**40),
    "huge-uid": lambda r: payload_file(r, "f", uid=2**40, gid=2**40),
    "huge-size": lambda r: payload_file(r, "f", size=2**70),
    "huge-mtime": lambda r: payload_file(r, "f", mtime_ns=2**100),
    "huge-dir-mode": lambda r: dir_node("d", store_tree(r, []), mode=2**40),
    "huge-rdev": lambda r: {"type": "chardev", "name": "c", "mode": 0o600, "rdev": 2**70},
}


@pytest.mark.parametrize("case", list(HOSTILE_VALUES))
def test_impossible_metadata_is_refused_or_warned_about(
    repo: Repository, arena: Arena, case: str
) -> None:
    """Numbers and strings no file system could have produced: the decoder only checks that
    they are non-negative integers and strings. Restore must report them as a FogVaultError
    (MalformedObject, naming the entry), skip them with a warning, or restore what the file
    system accepts; never crash with a Python error (ValueError, OverflowError...)."""
    snapshot = in_home(repo, [HOSTILE_VALUES[case](repo), payload_file(repo, "z-fine")])
    with arena.contained():
        try:
            restore(repo, snapshot, arena.target)
        except MalformedObject as exc:
            assert "home/" in str(exc)
        else:
            assert (arena.target / "home" / "z-fine").read_bytes() == PAYLOAD


# ---- the same through the real CLI --------------------------------------------------------


def cli_restore(fogvault: Callable[..., Any], repo: Repository, snapshot: Snapshot,
                target: Path, *extra: str) -> Any:
    return fogvault("-r", repo.targets.urls[0], "restore", "--version", snapshot.uid,
                    "--target", str(target), *extra)


def assert_one_line_error(result: Any, *fragments: str) -> None:
    line = one_error_line(result)
    assert result.returncode == 1, line
    for fragment in fragments:
        assert fragment in line, line


def test_cli_refuses_dotdot_name(
    repo: Repository, arena: Arena, fogvault: Callable[..., Any]
) -> None:
    snapshot = in_home(repo, [payload_file(repo, "../../outside/victim")])
    with arena.contained():
        result = cli_restore(fogvault, repo, snapshot, arena.target)
    assert_one_line_error(result, "unsafe file name")


def test_cli_refuses_symlinked_folder_in_target(
    repo: Repository, arena: Arena, fogvault: Callable[..., Any]
) -> None:
    os.symlink(arena.outside, arena.target / "home")
    snapshot = in_home(repo, [payload_file(repo, "victim")])
    with arena.contained():
        result = cli_restore(fogvault, repo, snapshot, arena.target, "--overwrite", "never")
    assert_one_line_error(result, "not a folder")


def test_cli_refuses_duplicate_names_and_missing_blobs(
    repo: Repository, arena: Arena, fogvault: Callable[..., Any]
) -> None:
    duplicate = tree_bytes([symlink_node("evil", str(arena.outside)),
                            dir_node("evil", store_tree(repo, [payload_file(repo, "victim")]))],
                           sort=False)
    dup_snapshot = save_snapshot(repo, store(repo, TREE, duplicate))
    missing_snapshot = in_home(repo, [file_node("f", [bytes(32)], 1)])
    nul_snapshot = in_home(repo, [symlink_node("link", "a\x00b")])
    with arena.contained():
        dup = cli_restore(fogvault, repo, dup_snapshot, arena.target / "a")
        missing = cli_restore(fogvault, repo, missing_snapshot, arena.target / "b")
        nul = cli_restore(fogvault, repo, nul_snapshot, arena.target / "c")
    assert_one_line_error(dup, "duplicate")
    assert missing.returncode == 3 and b"Traceback" not in missing.stderr
    assert f"home/f: not restored: its blob {bytes(32).hex()[:16]}".encode() in missing.stderr
    assert_one_line_error(nul)
    assert "unexpected error" not in nul.stderr.decode()
