"""A model-based test of a repository's whole life, through the library API.

A hypothesis state machine keeps a source folder and a repository on 2 or 3 local folder
targets (k-of-N: a backup commits to N-1 of them), and a model: the source as it should be
(paths, contents, modes, symlink targets, hardlink groups), and for every snapshot it made and
has not forgotten the exact tree that snapshot must restore to, with its tags and paths. Rules
change the source, back up (the source, or a stream as the file ``/NAME``: a pipe fed by a
thread, or a file), tag (a changed snapshot gets a new uid), rewrite (take the entries that
exclude patterns match out of snapshots, into copies under new uids; with ``forget`` the
originals go), forget (by uid, or by a keep-last/keep-daily policy), prune, dry-run those,
damage ONE target (delete an object or a folder, flip a byte, truncate, swap two objects' bytes,
add a junk pack), repair, check, restore and reopen.

What it asserts:

* every live snapshot restores byte for byte (contents, modes, times, symlink targets, shared
  inodes of hardlinks), even while a target is damaged (reads fall back to the other copy); a
  rewritten copy restores to its original without exactly the entries the patterns match (by
  the model's own reading of user-guide.md's pattern rules) and what is below them;
* tag and rewrite change exactly the snapshots the model expects, report the uids and the
  removed paths it expects, keep every other field of the manifest, write each new manifest to
  exactly the targets that held the old one (a target that lacked it is then behind in it; a
  rewrite's copy skips a target behind, which lacks a live index file), and delete the old one
  from every target (rewrite: with ``forget`` only, and only if its copy reached every target
  that holds it: else ``kept_original`` says why);
* ``check --read-data`` reports exactly the live objects whose copy on the damaged target is
  missing or differs from the healthy copy, byte for byte, and nothing else: OK when nothing is
  damaged, or when the damage was to an object prune or forget made unused;
* ``repair`` then ``check --read-data`` is OK on every target, and the targets hold identical
  live objects;
* backup, forget and prune work while one target is damaged; a backup's ``targets_behind``
  names exactly the targets its snapshot did not reach; forget deletes from every target;
  prune leaves no unused pack or index file on a target it did not have to leave alone; a dry
  run changes nothing;
* the repository lists exactly the model's live snapshots, with their times, paths and tags;
  forget's policy keeps what the model's oracle keeps, per host and paths.

"Live" objects are the config, the key file, the model's snapshots, and the live index files and
the packs they list as seen by a repository opened on a healthy target alone.

The default run takes 15-30 s on two cores; ``--extended`` runs a larger instance (about 4
minutes). Failures print hypothesis's steps and a ``@reproduce_failure`` blob. The bugs it found
are reduced to the tests at the end. A replay may go another way where random uids decide: a
rewrite's copy has its original's time, and which of the two counts as newer (for ``latest``
and retention alike) is up to their uids (snapshots are picked by drawn numbers, so that
hypothesis still draws the same).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
import stat
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from conftest import PASSWORD, SMALL_CHUNKS
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import fogvault
from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.chunker import ChunkerParams
from fogvault.crypto import KDF_MIN_MEMLIMIT, KDF_MIN_OPSLIMIT, KdfParams
from fogvault.maintenance.check import CheckOptions, CheckResult, check
from fogvault.maintenance.forget import forget
from fogvault.maintenance.prune import PruneOptions, prune
from fogvault.maintenance.repair import RepairOptions, repair
from fogvault.maintenance.retention import RetentionPolicy, apply_policy
from fogvault.repo.config import MIN_PACK_SIZE, RepoConfig
from fogvault.repo.format import CONFIG_NAME, BlobType, key_name, pack_name, snapshot_name
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import SnapshotSummary
from fogvault.restore.restorer import RestoreOptions, Restorer
from fogvault.targets import TargetPolicy
from fogvault.targets.ledger import Ledger

TINY_KDF = KdfParams(KDF_MIN_OPSLIMIT, KDF_MIN_MEMLIMIT)  # the smallest a key file may have
CHUNKERS = [
    ChunkerParams(min_size=512, avg_size=2048, max_size=8192),
    ChunkerParams(min_size=2048, avg_size=8192, max_size=32768),
    SMALL_CHUNKS,
]
PACK_SIZES = [MIN_PACK_SIZE, 128 * 1024, 1024 * 1024]
HOST = "lifecycle-host"
NAMES = ["a", "b", "c.txt", "d.bin", "e e", "ü"]
MAX_DEPTH = 3
FILE_MODES = [0o644, 0o600, 0o640, 0o755, 0o444]
DIR_MODES = [0o755, 0o700, 0o750, 0o775]
WORDS = [b"alpha", b"beta", b"gamma", b"delta", b"vault", b"fog", b"\n", b"pack", b"index"]
SIZES = st.one_of(
    st.integers(0, 64),
    st.integers(0, 300_000),
    st.sampled_from([0, 1, 4096, 65_535, 65_536, 65_537, 262_144]),
)
FAST_RETRIES = dict(retry_attempts=2, retry_base_delay=0.001, retry_max_delay=0.002)
DAMAGES = [  # a target without a live index file is "behind": that path gets three shares
    "delete_pack", "delete_index", "delete_index", "delete_index", "delete_snapshot",
    "delete_config", "delete_key",
    "flip_pack", "flip_tree", "flip_index", "flip_snapshot", "flip_config", "flip_key",
    "truncate_pack", "truncate_index", "truncate_snapshot", "truncate_config",
    "swap_pack", "swap_index", "swap_snapshot", "delete_folder", "orphan_pack",
]
DAMAGED_FOLDERS = ["index/", "index/", "snapshots/", "data/", "data/??/", "keys/"]
TAGS = ["keep", "nightly", "weekly", "ü tag"]
STREAM_NAMES = ["stdin", "dump.sql", "a", "ü x"]  # "a": also a name in the source
GLOBS = ["*.txt", "*.bin", "*.sql", "?", "[ab]", "[!a-d]", "* *"]

#: rules run (all examples of this process): printed at the end of each test
STATS: Counter[str] = Counter()
LARGEST: Counter[str] = Counter()  # the most packs and live snapshots an example ended with


# ---- the source model ---------------------------------------------------------------------


@dataclass(eq=False)
class Inode:
    """A regular file's content and mode; hardlinked names share one."""

    data: bytes
    mode: int


@dataclass
class Damage:
    url: str
    kind: str
    names: set[str]  # the objects it touched on that target
    needs_read_data: bool  # found only by reading pack contents
    known: bool = False  # a check since has remembered it (in repo.targets.damaged / ledger)


@dataclass
class Recorded:
    """A snapshot the test made: when, its paths and tags, and the tree it must restore to."""

    time: datetime
    tree: Tree  # below the source's path (a stream's: below the restore folder); {}: nothing
    paths: tuple[str, ...]  # as the snapshot records them (with HOST: its retention group)
    tags: tuple[str, ...] = ()  # sorted
    stream: tuple[int, int] | None = None  # a stream's file: its mtime lies in [lo, hi] (ns)
    cut: str | None = None  # the path at or above the source that a rewrite took out
    history: tuple[str, ...] = ()  # "tag", "rewrite": how the snapshot came to be


Entry = tuple  # ("dir", mode, mtime) | ("file", data, mode, mtime) | ("symlink", target, mtime)


@dataclass(frozen=True)
class Tree:
    entries: dict[str, Entry]
    links: frozenset[frozenset[str]]  # names sharing an inode (groups of two or more)

    def without_times(self) -> tuple[dict[str, tuple], frozenset[frozenset[str]]]:
        return {p: e[:-1] for p, e in self.entries.items()}, self.links


def scan(root: Path) -> Tree:
    """What is on disk below ``root`` (``root`` itself as ``.``), by lstat: never follows."""
    entries: dict[str, Entry] = {}
    inodes: dict[tuple[int, int], set[str]] = {}

    def visit(path: Path, rel: str) -> None:
        st_ = os.lstat(path)
        mode = stat.S_IMODE(st_.st_mode)
        if stat.S_ISDIR(st_.st_mode):
            entries[rel] = ("dir", mode, st_.st_mtime_ns)
            for child in sorted(os.listdir(path)):
                visit(path / child, child if rel == "." else f"{rel}/{child}")
        elif stat.S_ISLNK(st_.st_mode):
            entries[rel] = ("symlink", os.readlink(path), st_.st_mtime_ns)
        elif stat.S_ISREG(st_.st_mode):
            entries[rel] = ("file", path.read_bytes(), mode, st_.st_mtime_ns)
            inodes.setdefault((st_.st_dev, st_.st_ino), set()).add(rel)
        else:
            raise AssertionError(f"unexpected file type at {path}")

    visit(root, ".")
    return Tree(entries, frozenset(frozenset(g) for g in inodes.values() if len(g) > 1))


def tree_diff(expected: Tree, got: Tree) -> str:
    lines = []
    for path in sorted(expected.entries.keys() | got.entries.keys()):
        want, have = expected.entries.get(path), got.entries.get(path)
        if want != have:
            lines.append(f"  {path}: expected {_short(want)}, got {_short(have)}")
    if expected.links != got.links:
        lines.append(f"  hardlinks: expected {sorted(map(sorted, expected.links))}, "
                     f"got {sorted(map(sorted, got.links))}")
    return "\n".join(lines[:20])


def _short(entry: Entry | None) -> str:
    if entry is None:
        return "nothing"
    if entry[0] == "file":
        data = entry[1]
        return f"file({len(data)} bytes, head {data[:8]!r}, mode {entry[2]:o}, mtime {entry[3]})"
    return repr(entry)


def make_content(data: st.DataObject, others: list[bytes]) -> bytes:
    """New file content: random, compressible, zeros (sparse), or a copy or shifted copy of
    another file's content (so that dedup and content-defined chunking meet)."""
    kinds = ["random", "text", "zeros", "mixed"] + (["copy", "shifted", "spliced"] if others
                                                     else [])
    kind = data.draw(st.sampled_from(kinds), label="content kind")
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="content seed"))
    if kind in ("copy", "shifted", "spliced"):
        base = others[data.draw(st.integers(0, len(others) - 1), label="copied file")]
        if kind == "copy":
            return base
        junk = rng.randbytes(rng.randint(1, 3000))
        if kind == "shifted":
            return junk + base[rng.randint(0, len(base)):] if rng.random() < 0.3 else junk + base
        cut = rng.randint(0, len(base))
        return base[:cut] + junk + base[cut + rng.randint(0, 2000):]
    size = data.draw(SIZES, label="size")
    if kind == "random":
        return rng.randbytes(size)
    if kind == "text":
        out = bytearray()
        while len(out) < size:
            out += rng.choice(WORDS) + b" "
        return bytes(out[:size])
    if kind == "zeros":
        tail = rng.randbytes(rng.randint(0, 100)) if size and rng.random() < 0.5 else b""
        return bytes(size) + tail
    out = bytearray()  # mixed: runs of random bytes and zero runs
    while len(out) < size:
        out += rng.randbytes(rng.randint(1, 20_000)) if rng.random() < 0.5 else bytes(
            rng.randint(1, 70_000))
    return bytes(out[:size])


@contextlib.contextmanager
def writable(path: Path) -> Iterator[None]:
    """Lets the test write a file whose mode forbids it (when not root); keeps the mode."""
    mode = stat.S_IMODE(os.lstat(path).st_mode)
    if os.geteuid() != 0 and not mode & 0o200:
        os.chmod(path, mode | 0o200)
        try:
            yield
        finally:
            os.chmod(path, mode)
    else:
        yield


def depth(rel: str) -> int:
    return 0 if not rel else rel.count("/") + 1


def objects_under(folder: Path, prefix: str = "") -> list[str]:
    """Object names under ``folder/prefix`` (dot names and locks left out), oldest first: names
    are random, the order of writes is what a replayed example repeats."""
    base = folder / prefix if prefix else folder
    if not base.is_dir():
        return []
    found = []
    for path in base.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            name = path.relative_to(folder).as_posix()
            if not name.startswith("locks/"):
                found.append((path.stat().st_mtime_ns, name))
    return [name for _, name in sorted(found)]


def fingerprint(folder: str) -> dict[str, tuple[int, int, int]]:
    """name -> (size, mtime, inode) of every object (locks left out)."""
    out = {}
    for name in objects_under(Path(folder)):
        st_ = os.stat(Path(folder) / name)
        out[name] = (st_.st_size, st_.st_mtime_ns, st_.st_ino)
    return out


def read_object(folder: str, name: str) -> bytes | None:
    try:
        return (Path(folder) / name).read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def newest_first(times: dict[str, datetime]) -> list[str]:
    """The uids newest first; of two at the same time, as a rewrite's copy and its original,
    the uid that sorts first counts as newer, for ``latest`` and retention alike (format.md,
    retention.md)."""
    return sorted(sorted(times), key=lambda uid: times[uid], reverse=True)  # sort is stable


def contents(tree: Tree) -> tuple[int, int, int]:
    """(files, folders, bytes) a snapshot of ``tree`` holds, as its summary counts them."""
    files = [e for e in tree.entries.values() if e[0] == "file"]
    dirs = [e for e in tree.entries.values() if e[0] == "dir"]
    return len(files), len(dirs), sum(len(e[1]) for e in files)


def summary_contents(summary: SnapshotSummary) -> tuple[int, int, int]:
    return summary.files, summary.dirs, summary.total_bytes


def kept_by_oracle(times: dict[str, datetime], keep_last: int, keep_daily: int) -> set[str]:
    """restic's keep-last / keep-daily on one group, in UTC, written out from its rules:
    newest first (:func:`newest_first`); a counting rule keeps a snapshot that opens a new
    bucket while it has room, and the oldest snapshot if it still has room when it gets
    there."""
    ordered = newest_first(times)
    kept = set(ordered[:keep_last])
    room, last_day = keep_daily, None
    for number, uid in enumerate(ordered):
        if room == 0:
            break
        day = times[uid].astimezone(UTC).date()
        if day != last_day or number == len(ordered) - 1:
            kept.add(uid)
            room -= 1
            last_day = day
    return kept


# ---- exclude patterns, as user-guide.md describes them ----------------------------------

#: a pattern's own reading: whether it matches an absolute path
Matcher = Callable[[str], bool]


def last_name(path: str) -> str:
    return path.rsplit("/", 1)[1]


def draw_patterns(data: st.DataObject, known: list[str]) -> list[tuple[str, bool, Matcher]]:
    """One or two exclude patterns, each as (text, negated, what it matches), read from the
    rules of user-guide.md ("Exclude patterns") rather than from fogvault/patterns.py: a
    pattern without ``/`` at its start matches any tail of the path, one with it the whole
    path; ``**`` any number of components; ``!`` takes back an earlier pattern's match.
    ``known``: absolute paths the snapshots hold, for anchored patterns, picked with a drawn
    seed: which of a rewrite's copy and its original (same time) a forget keeps depends on
    their random uids, and with it ``known``, but hypothesis must draw the same on a replay."""
    out: list[tuple[str, bool, Matcher]] = []
    for number in range(data.draw(st.sampled_from([1, 1, 2]), label="patterns")):
        kinds = ["name", "name", "glob", "anchored", "anchored", "children", "deep"]
        if number:
            kinds.append("negated")
        kind = data.draw(st.sampled_from(kinds), label="pattern kind")
        if kind == "anchored":
            path = random.Random(data.draw(st.integers(0, 2**16), label="path seed")).choice(
                known)
            out.append((path, False, lambda p, path=path: p == path))
        elif kind == "glob":
            glob = data.draw(st.sampled_from(GLOBS), label="glob")
            out.append((glob, False, lambda p, glob=glob: fnmatchcase(last_name(p), glob)))
        elif kind == "children":  # NAME/*: whatever is directly in a folder called NAME
            name = data.draw(st.sampled_from(NAMES), label="folder name")
            out.append((f"{name}/*", False,
                        lambda p, name=name: p.count("/") > 1 and
                        last_name(p.rsplit("/", 1)[0]) == name))
        else:  # a name (or **/name: the same), perhaps as a "!" pattern
            name = data.draw(st.sampled_from(NAMES + STREAM_NAMES), label="pattern name")
            text = f"**/{name}" if kind == "deep" else name
            negated = kind == "negated"
            out.append((("!" if negated else "") + text, negated,
                        lambda p, name=name: last_name(p) == name))
    return out


def excluded(patterns: list[tuple[str, bool, Matcher]], path: str) -> bool:
    """The last pattern that matches ``path`` decides: excluded unless it is a "!" pattern."""
    for _, negated, matches in reversed(patterns):
        if matches(path):
            return not negated
    return False


def describe_check(result: CheckResult) -> str:
    parts = [f"ok={result.ok} problems={result.problems[:3]}"]
    for t in result.targets:
        parts.append(f"{t.url}: reachable={t.reachable} error={t.error} missing={t.missing[:5]} "
                     f"wrong_size={t.wrong_size[:5]} corrupt={t.corrupt[:5]}")
    return "\n".join(parts)


def _feed(fd: int, content: bytes) -> None:
    """Write ``content`` to the pipe ``fd`` and close it (a reader that went away ends it)."""
    with contextlib.suppress(BrokenPipeError), open(fd, "wb") as pipe:
        pipe.write(content)


# ---- the machine --------------------------------------------------------------------------


class RepositoryLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="fogvault-lifecycle-"))
        self.src = self.base / "src"
        self.src.mkdir()
        self.real_src = os.path.realpath(self.src)  # the source's path in the snapshots
        self.repo: Repository | None = None
        self.urls: list[str] = []
        self.dirs: dict[str, int] = {}  # relative path -> mode
        self.files: dict[str, Inode] = {}
        self.symlinks: dict[str, str] = {}
        self.snapshots: dict[str, Recorded] = {}  # uid -> what it must restore to
        self.damage: Damage | None = None
        self.junk: set[tuple[str, str]] = set()  # (url, name) of junk packs (orphan_pack)
        self.restores = 0

    # ---- set-up and tear-down -------------------------------------------------------------

    @initialize(n_targets=st.sampled_from([2, 2, 3]), chunker=st.sampled_from(CHUNKERS),
                pack_size=st.sampled_from(PACK_SIZES), use_cache=st.booleans(),
                compression=st.sampled_from([0, 3]), files=st.integers(0, 5), data=st.data())
    def create(self, n_targets: int, chunker: ChunkerParams, pack_size: int, use_cache: bool,
               compression: int, files: int, data: st.DataObject) -> None:
        """The repository, a few files, and a first backup of them."""
        self.count("create")
        self.urls = [str(self.base / f"target{i}") for i in range(n_targets)]
        self.use_cache = use_cache
        self.policy = TargetPolicy(min_targets=n_targets - 1, **FAST_RETRIES)
        config = RepoConfig(chunker=chunker, pack_size=pack_size, compression_level=compression)
        note(f"{n_targets} targets, {chunker}, pack size {pack_size}, cache {use_cache}, "
             f"compression {compression}")
        self.repo = Repository.init(self.urls, PASSWORD, config=config, kdf=TINY_KDF,
                                    cache_dir=self.base / "cache", use_cache=use_cache,
                                    policy=self.policy)
        self.ledger = Ledger(self.repo.config.repo_id, self.base / "state")
        for _ in range(files):
            self._new_file(data)
        self._backup(data)

    def teardown(self) -> None:
        if self.repo is not None:
            self.repo.close()
        if self.urls:
            packs = len(objects_under(Path(self.urls[0]), "data/"))
            LARGEST["packs"] = max(LARGEST["packs"], packs)
            LARGEST["snapshots"] = max(LARGEST["snapshots"], len(self.snapshots))
        for folder, subdirs, _ in os.walk(self.base):  # a test folder mode may forbid removal
            for d in subdirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(folder, d), 0o700)
        shutil.rmtree(self.base, ignore_errors=True)

    # ---- helpers --------------------------------------------------------------------------

    def count(self, rule: str) -> None:
        STATS[rule] += 1
        if self.damage is not None:
            STATS[f"{rule} (damaged)"] += 1

    def paths(self) -> set[str]:
        return self.dirs.keys() | self.files.keys() | self.symlinks.keys()

    def free_path(self, data: st.DataObject) -> str | None:
        """A path where nothing is, in an existing folder (None if the folder is full)."""
        parents = sorted(d for d in ["", *self.dirs] if depth(d) < MAX_DEPTH)
        parent = data.draw(st.sampled_from(parents), label="folder")
        taken = self.paths()
        names = [n for n in NAMES if (f"{parent}/{n}" if parent else n) not in taken]
        if not names:
            return None
        name = data.draw(st.sampled_from(names), label="name")
        return f"{parent}/{name}" if parent else name

    def pick(self, data: st.DataObject, choices: set[str] | dict, label: str) -> str:
        return data.draw(st.sampled_from(sorted(choices)), label=label)

    def healthy(self) -> list[str]:
        return [u for u in self.urls if self.damage is None or u != self.damage.url]

    def live_names(self) -> set[str]:
        """The live objects as a healthy target sees them (see the module docstring)."""
        with Repository.open([self.healthy()[0]], PASSWORD, use_cache=False) as alone:
            names = {CONFIG_NAME, key_name(alone.key_id)} | alone.live_index_names()
            names |= {pack_name(pack_id) for pack_id, _, _ in alone.index.packs()}
        return names | {snapshot_name(uid) for uid in self.snapshots}

    def divergence(self, live: set[str]) -> dict[str, set[str]]:
        """url -> live objects missing there or differing from the healthy reference copy."""
        reference, *others = self.healthy()
        found: dict[str, set[str]] = {}
        for name in sorted(live):
            good = read_object(reference, name)
            assert good is not None, f"the healthy target {reference} lacks live {name}"
            for url in self.urls:
                if url != reference and read_object(url, name) != good:
                    found.setdefault(url, set()).add(name)
        wrong = found.keys() & set(others)
        assert not wrong, f"healthy targets differ: { {u: sorted(found[u])[:5] for u in wrong} }"
        return found

    def abs_path(self, recorded: Recorded, rel: str) -> str:
        """The absolute path in the snapshot of an entry of ``recorded.tree``."""
        if recorded.stream is not None:
            return f"/{rel}"
        return self.real_src if rel == "." else f"{self.real_src}/{rel}"

    def without(self, recorded: Recorded, patterns: list[tuple[str, bool, Matcher]]
                ) -> tuple[Recorded, set[str]]:
        """What a rewrite's copy of ``recorded`` must restore to, and the paths it takes out
        (each the topmost: a folder taken out is not entered). A source's snapshot holds the
        folders above the source too: a pattern may take one of those, or the source itself,
        and so everything."""
        if recorded.stream is None:
            parts = self.real_src.strip("/").split("/")
            chain = ["/" + "/".join(parts[:n]) for n in range(1, len(parts) + 1)]
            if recorded.cut is not None:  # only the folders above what was taken out are left
                chain = [path for path in chain if recorded.cut.startswith(path + "/")]
            for path in chain:
                if excluded(patterns, path):
                    return dataclasses.replace(recorded, tree=Tree({}, frozenset()),
                                               cut=path), {path}
            if recorded.cut is not None:
                return recorded, set()
        gone: list[str] = []
        kept: dict[str, Entry] = {}
        for rel in sorted(recorded.tree.entries, key=lambda r: (r != ".", depth(r), r)):
            if rel == ".":  # the source itself: decided above
                kept[rel] = recorded.tree.entries[rel]
            elif any(rel.startswith(g + "/") for g in gone):
                continue  # below a folder taken out
            elif excluded(patterns, self.abs_path(recorded, rel)):
                gone.append(rel)
            else:
                kept[rel] = recorded.tree.entries[rel]
        links = frozenset(frozenset(g & kept.keys()) for g in recorded.tree.links
                          if len(g & kept.keys()) > 1)
        return (dataclasses.replace(recorded, tree=Tree(kept, links)),
                {self.abs_path(recorded, rel) for rel in gone})

    def behind(self) -> set[str]:
        """The targets that lack a live index file (targets.md 6.6): prune leaves them alone,
        and a rewrite's copy (whose trees reuse what they may lack) does not go to them."""
        live_index = {n for n in self.live_names() if n.startswith("index/")}
        return {url for url in self.urls if live_index - set(objects_under(Path(url), "index/"))}

    def holders(self, uid: str) -> set[str]:
        """The targets that have a file for the snapshot ``uid`` (intact or not)."""
        return {url for url in self.urls if (Path(url) / snapshot_name(uid)).exists()}

    def replaced(self, old: str, new: str, where: set[str], expected: Recorded) -> None:
        """Model ``new``, a tag's or a rewrite's copy of ``old``: it must be on exactly the
        targets ``where`` (those that held ``old``; a rewrite's: not behind ones); a target
        without it (only the damaged one) is behind in it until repair."""
        after = self.holders(new)
        assert after == where, f"{new} (from {old}) is on {sorted(after)}, expected on " \
                               f"{sorted(where)}"
        lacking = set(self.urls) - after
        assert lacking <= ({self.damage.url} if self.damage else set()), lacking
        if lacking:
            assert self.damage is not None
            self.damage.names.add(snapshot_name(new))
        self.snapshots[new] = expected

    def check_source(self) -> Tree:
        """The source as scanned, after checking it is what the model says."""
        got = scan(self.src)
        want: dict[str, tuple] = {".": ("dir", stat.S_IMODE(os.lstat(self.src).st_mode))}
        groups: dict[int, set[str]] = {}
        for path, mode in self.dirs.items():
            want[path] = ("dir", mode)
        for path, inode in self.files.items():
            want[path] = ("file", inode.data, inode.mode)
            groups.setdefault(id(inode), set()).add(path)
        for path, target in self.symlinks.items():
            want[path] = ("symlink", target)
        links = frozenset(frozenset(g) for g in groups.values() if len(g) > 1)
        entries, got_links = got.without_times()
        assert (entries, got_links) == (want, links), "the test's model of the source is wrong"
        return got

    def write_file(self, rel: str, content: bytes, mode: int) -> None:
        path = self.src / rel
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, content)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    # ---- rules: the source ----------------------------------------------------------------

    @rule(data=st.data())
    def new_file(self, data: st.DataObject) -> None:
        self._new_file(data)

    def _new_file(self, data: st.DataObject) -> None:
        self.count("new_file")
        rel = self.free_path(data)
        if rel is None:
            return
        content = make_content(data, [i.data for i in self.files.values() if i.data])
        mode = data.draw(st.sampled_from(FILE_MODES), label="mode")
        self.write_file(rel, content, mode)
        self.files[rel] = Inode(content, mode)

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def change_file(self, data: st.DataObject) -> None:
        """Append, overwrite in place, truncate or extend, rewrite, or replace (a new inode)."""
        self.count("change_file")
        rel = self.pick(data, self.files, "file")
        inode = self.files[rel]
        path = self.src / rel
        how = data.draw(st.sampled_from(["append", "overwrite", "truncate", "rewrite",
                                         "replace"]), label="change")
        content = make_content(data, [i.data for i in self.files.values() if i.data])
        if how == "replace":  # write a new file and rename it over the old name
            tmp = self.base / "replacement"
            tmp.write_bytes(content)
            os.chmod(tmp, inode.mode)
            os.replace(tmp, path)
            self.files[rel] = Inode(content, inode.mode)
            return
        with writable(path), open(path, "r+b") as f:
            if how == "append":
                f.seek(0, os.SEEK_END)
                f.write(content[:50_000])
                inode.data += content[:50_000]
            elif how == "overwrite":
                offset = data.draw(st.integers(0, len(inode.data)), label="offset")
                piece = content[:20_000]
                f.seek(offset)
                f.write(piece)
                old = inode.data
                inode.data = old[:offset] + piece + old[offset + len(piece):]
            elif how == "truncate":
                size = data.draw(st.integers(0, len(inode.data) + 70_000), label="new size")
                f.truncate(size)
                inode.data = inode.data[:size] + bytes(max(0, size - len(inode.data)))
            else:
                f.truncate(0)
                f.write(content)
                inode.data = content

    @precondition(lambda self: self.paths())
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        self.count("delete")
        rel = self.pick(data, self.paths(), "deleted")
        path = self.src / rel
        if rel in self.dirs:
            shutil.rmtree(path)
            for table in (self.dirs, self.files, self.symlinks):
                for other in [p for p in table if p == rel or p.startswith(rel + "/")]:
                    del table[other]
        else:
            os.unlink(path)
            self.files.pop(rel, None)
            self.symlinks.pop(rel, None)

    @precondition(lambda self: self.paths())
    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        self.count("rename")
        rel = self.pick(data, self.paths(), "renamed")
        new = self.free_path(data)
        if new is None or new == rel or new.startswith(rel + "/"):
            return
        if rel in self.dirs and depth(new) + max(
                depth(p) - depth(rel) for p in self.paths() if p == rel or
                p.startswith(rel + "/")) > MAX_DEPTH + 1:
            return  # keep the tree shallow
        os.rename(self.src / rel, self.src / new)
        for table in (self.dirs, self.files, self.symlinks):
            for old in [p for p in table if p == rel or p.startswith(rel + "/")]:
                table[new + old[len(rel):]] = table.pop(old)

    @rule(data=st.data())
    def make_folder(self, data: st.DataObject) -> None:
        self.count("make_folder")
        rel = self.free_path(data)
        if rel is None:
            return
        mode = data.draw(st.sampled_from(DIR_MODES), label="mode")
        os.mkdir(self.src / rel)
        os.chmod(self.src / rel, mode)
        self.dirs[rel] = mode

    @rule(data=st.data())
    def make_symlink(self, data: st.DataObject) -> None:
        self.count("make_symlink")
        rel = self.free_path(data)
        if rel is None:
            return
        existing = sorted(self.paths())
        target = data.draw(st.one_of(
            st.sampled_from(existing or ["a"]),
            st.sampled_from(["../a", "nowhere", "/etc/hostname", "x/" * 10, "ü/ß", "."]),
        ), label="link target")
        os.symlink(target, self.src / rel)
        self.symlinks[rel] = target

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def make_hardlink(self, data: st.DataObject) -> None:
        self.count("make_hardlink")
        rel = self.pick(data, self.files, "linked file")
        new = self.free_path(data)
        if new is None:
            return
        os.link(self.src / rel, self.src / new)
        self.files[new] = self.files[rel]

    @precondition(lambda self: self.files or self.dirs)
    @rule(data=st.data())
    def change_mode(self, data: st.DataObject) -> None:
        self.count("change_mode")
        rel = self.pick(data, self.files.keys() | self.dirs.keys(), "chmod")
        if rel in self.dirs:
            mode = data.draw(st.sampled_from(DIR_MODES), label="mode")
            self.dirs[rel] = mode
        else:
            mode = data.draw(st.sampled_from(FILE_MODES), label="mode")
            self.files[rel].mode = mode
        os.chmod(self.src / rel, mode)

    # ---- rules: the repository ------------------------------------------------------------

    def _backup(self, data: st.DataObject) -> None:
        self.count("backup")
        assert self.repo is not None
        expected = self.check_source()
        force = data.draw(st.sampled_from([False, False, False, True]), label="force")
        parent = None  # the latest snapshot, or an older one (its unchanged files are reused)
        if self.snapshots and data.draw(st.integers(0, 3), label="explicit parent?") == 0:
            parent = self.pick_snapshots(data, "parent")[0][0]
        tags = data.draw(st.lists(st.sampled_from(TAGS), max_size=2, unique=True), label="tags")
        options = BackupOptions(host=HOST, force=force, parent=parent, tags=tags)
        result = Archiver(self.repo, options).run([str(self.src)])
        note(f"backup -> {result.snapshot.uid} ({len(expected.entries)} entries, force={force}, "
             f"parent={parent}, behind={sorted(result.targets_behind)})")
        assert scan(self.src) == expected, "the backup changed the source"
        self._committed(result, Recorded(result.snapshot.time, expected,
                                         tuple(result.snapshot.paths), tuple(sorted(tags))))

    def _committed(self, result: fogvault.BackupResult, recorded: Recorded) -> None:
        """A backup's snapshot into the model, once it is where it must be."""
        uid = result.snapshot.uid
        assert not result.warnings, list(result.warnings)
        assert sorted(result.snapshot.tags) == list(recorded.tags)
        # targets_behind names exactly the targets the snapshot did not reach: only the damaged
        # one may be behind (it lacks an index file), the others always get it.
        lacking = {url for url in self.urls if read_object(url, snapshot_name(uid)) is None}
        assert lacking <= ({self.damage.url} if self.damage else set()), lacking
        assert set(result.targets_behind) == lacking, (result.targets_behind, lacking)
        if lacking:
            assert self.damage is not None
            self.damage.names.add(snapshot_name(uid))
        self.snapshots[uid] = recorded

    @rule(data=st.data())
    def backup(self, data: st.DataObject) -> None:
        self._backup(data)

    @rule(data=st.data())
    def backup_again(self, data: st.DataObject) -> None:
        """A second rule, so that backups are as frequent as changes to the source."""
        self._backup(data)

    @rule(data=st.data())
    def backup_stream(self, data: st.DataObject) -> None:
        """A stream (a pipe a thread feeds, or a file) backed up as the file /NAME."""
        self.count("backup_stream")
        assert self.repo is not None
        name = data.draw(st.sampled_from(STREAM_NAMES), label="stream name")
        content = make_content(data, [i.data for i in self.files.values() if i.data])
        piped = data.draw(st.booleans(), label="piped")
        tags = data.draw(st.lists(st.sampled_from(TAGS), max_size=1), label="tags")
        archiver = Archiver(self.repo, BackupOptions(host=HOST, tags=tags))
        earliest = time.time_ns()
        if piped:
            read_end, write_end = os.pipe()
            feeder = threading.Thread(target=_feed, args=(write_end, content))
            feeder.start()
            try:
                result = archiver.run_stream(fogvault.DescriptorSource(read_end), name)
            finally:
                os.close(read_end)  # a backup that failed: the feeder's write ends too
                feeder.join()
        else:
            (self.base / "stream").write_bytes(content)
            fd = os.open(self.base / "stream", os.O_RDONLY)
            try:
                result = archiver.run_stream(fogvault.DescriptorSource(fd), name)
            finally:
                os.close(fd)
        latest = time.time_ns()
        note(f"stream backup of {len(content)} bytes as /{name} ({'pipe' if piped else 'file'})"
             f" -> {result.snapshot.uid}, behind={sorted(result.targets_behind)}")
        assert result.snapshot.paths == [f"/{name}"]
        tree = Tree({name: ("file", content, 0o600, None)}, frozenset())
        self._committed(result, Recorded(result.snapshot.time, tree, (f"/{name}",),
                                         tuple(sorted(tags)), (earliest, latest)))

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def tag_snapshots(self, data: st.DataObject) -> None:
        """Add, remove or set tags of some snapshots (or all): each changed one is replaced by a
        copy under a new uid with the new tags, on the targets that held it."""
        self.count("tag")
        assert self.repo is not None
        chosen, uids = self._choose(data)
        how = data.draw(st.sampled_from(["add", "remove", "both", "set"]), label="tag how")
        first = data.draw(st.lists(st.sampled_from(TAGS), min_size=how != "set", max_size=2,
                                   unique=True), label="tags")
        second = data.draw(st.lists(st.sampled_from([t for t in TAGS if t not in first]),
                                    min_size=1, max_size=2, unique=True), label="other tags")
        options = {"add": fogvault.TagOptions(add=first), "remove": fogvault.TagOptions(
            remove=first), "both": fogvault.TagOptions(add=first, remove=second),
            "set": fogvault.TagOptions(set=first)}[how]
        options.uids = uids
        expected: dict[str, tuple[str, ...]] = {}  # old uid -> its new tags, if they change
        for uid in chosen:
            old = set(self.snapshots[uid].tags)
            new = tuple(sorted(set(first) if how == "set" else (old | set(options.add)) -
                               set(options.remove)))
            if new != self.snapshots[uid].tags:
                expected[uid] = new
        before = {uid: (self.repo.load_snapshot(uid), self.holders(uid)) for uid in expected}
        with self.repo.lock():
            result = fogvault.tag(self.repo, options)
        note(f"tag {how} {first}/{second} of {uids or 'all'}: "
             f"{[(c.old_uid, c.new_uid) for c in result.changed]}")
        STATS["tag: changed"] += bool(result.changed)
        assert {c.old_uid: tuple(c.tags) for c in result.changed} == expected
        assert result.unchanged == len(chosen) - len(expected)
        for change in result.changed:
            old_snapshot, held = before[change.old_uid]
            assert self.repo.load_snapshot(change.new_uid) == dataclasses.replace(
                old_snapshot, uid=change.new_uid, tags=list(expected[change.old_uid]),
                original=old_snapshot.original or old_snapshot.uid)  # the same contents
            recorded = self.snapshots.pop(change.old_uid)
            self._gone(change.old_uid)
            self.replaced(change.old_uid, change.new_uid, held,
                          dataclasses.replace(recorded, tags=expected[change.old_uid],
                                              history=(*recorded.history, "tag")))

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def rewrite_snapshots(self, data: st.DataObject) -> None:
        self._rewrite(data)

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def rewrite_again(self, data: st.DataObject) -> None:
        """A second rule, for weight."""
        self._rewrite(data)

    def _rewrite(self, data: st.DataObject) -> None:
        """Take what one or two exclude patterns match out of some snapshots (or all); with
        forget, each original is deleted once its copy is on every target that held it."""
        self.count("rewrite")
        assert self.repo is not None
        chosen, uids = self._choose(data)
        known = sorted({self.abs_path(r, rel) for r in self.snapshots.values()
                        for rel in r.tree.entries}
                       | {self.real_src, os.path.dirname(self.real_src)})  # never empty
        patterns = draw_patterns(data, known)
        forget_ = data.draw(st.booleans(), label="forget")
        expected: dict[str, tuple[Recorded, set[str]]] = {}  # old uid -> (copy, paths removed)
        for uid in chosen:
            copy, removed = self.without(self.snapshots[uid], patterns)
            if removed:
                expected[uid] = (dataclasses.replace(copy, history=(*copy.history, "rewrite")),
                                 removed)
        before = {uid: (self.repo.load_snapshot(uid), self.holders(uid)) for uid in expected}
        behind = self.behind()  # they get no copy: their originals stay, even with forget
        options = fogvault.RewriteOptions(excludes=[text for text, _, _ in patterns],
                                          forget=forget_, uids=uids)
        result = fogvault.rewrite(self.repo, options)
        note(f"rewrite {options.excludes} of {uids or 'all'} (forget={forget_}): "
             f"{[(r.old_uid, r.new_uid, r.removed[:3]) for r in result.rewritten]}")
        STATS["rewrite: changed"] += bool(result.rewritten)
        STATS["rewrite: took everything"] += any(not c.tree.entries for c, _ in
                                                 expected.values())
        assert {r.old_uid: set(r.removed) for r in result.rewritten} == {
            uid: removed for uid, (_, removed) in expected.items()}
        assert result.unchanged == len(chosen) - len(expected)
        for entry in result.rewritten:
            old_snapshot, held = before[entry.old_uid]
            new_snapshot = self.repo.load_snapshot(entry.new_uid)
            assert new_snapshot == dataclasses.replace(old_snapshot, uid=entry.new_uid,
                                                       tree=new_snapshot.tree,
                                                       summary=new_snapshot.summary,
                                                       original=None)  # other contents
            # the summary counts what the copy holds; the backup run's figures stay
            new_summary, old_summary = new_snapshot.summary, old_snapshot.summary
            assert summary_contents(new_summary) == contents(expected[entry.old_uid][0].tree)
            assert dataclasses.replace(new_summary, files_new=0, files_changed=0,
                                       files_unchanged=0, dirs=0, total_bytes=0) == (
                dataclasses.replace(old_summary, files_new=0, files_changed=0,
                                    files_unchanged=0, dirs=0, total_bytes=0))
            assert new_snapshot.tree != old_snapshot.tree
            # every target is writable here: only a target behind that holds it misses the copy
            assert (entry.kept_original is not None) == (forget_ and bool(held & behind)), (
                entry.kept_original, sorted(held), sorted(behind))
            STATS["rewrite: original kept, a target behind"] += entry.kept_original is not None
            if forget_ and entry.kept_original is None:
                del self.snapshots[entry.old_uid]
                self._gone(entry.old_uid)
            else:
                assert self.holders(entry.old_uid) == held
            self.replaced(entry.old_uid, entry.new_uid, held - behind, expected[entry.old_uid][0])

    def _choose(self, data: st.DataObject) -> tuple[list[str], list[str]]:
        """Snapshots for tag or rewrite: (the uids chosen, the references given: uids or
        prefixes; none for every snapshot)."""
        if data.draw(st.integers(0, 3), label="every snapshot?") == 0:
            return list(self.snapshots), []
        return self.pick_snapshots(data, "chosen", max_size=3)

    def pick_snapshots(self, data: st.DataObject, label: str, max_size: int = 1
                       ) -> tuple[list[str], list[str]]:
        """1 to ``max_size`` live snapshots, and a reference to each (its uid or a prefix).
        Picked by drawn numbers, so that a replay draws the same although the snapshots the
        model holds may differ: which of a rewrite's copy and its original (same time) a
        forget keeps depends on their random uids, and whether a target is behind (and keeps
        an original a rewrite with forget would delete) on how many index files thread timing
        made."""
        numbers = data.draw(st.lists(st.integers(0, 63), min_size=1, max_size=max_size),
                            label=label)
        prefix = [data.draw(st.booleans(), label="by prefix") for _ in numbers]
        live = list(self.snapshots)
        picked = {live[n % len(live)]: by_prefix
                  for n, by_prefix in zip(numbers, prefix, strict=True)}
        note(f"{label}: {list(picked)}")
        return list(picked), [uid[:8] if by_prefix else uid for uid, by_prefix in picked.items()]

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def forget_by_uid(self, data: st.DataObject) -> None:
        self.count("forget_by_uid")
        assert self.repo is not None
        uids, refs = self.pick_snapshots(data, "forgotten", max_size=3)
        result = forget(self.repo, uids=refs)
        assert sorted(result.removed) == sorted(uids)
        self._forgotten(uids)
        note(f"forgot {uids}")

    @precondition(lambda self: self.snapshots)
    @rule(keep_last=st.integers(0, 3), keep_daily=st.integers(0, 2),
          runner_style=st.booleans())
    def forget_by_policy(self, keep_last: int, keep_daily: int, runner_style: bool) -> None:
        self.count("forget_by_policy")
        assert self.repo is not None
        if not keep_last and not keep_daily:
            keep_last = 1
        policy = RetentionPolicy(keep_last=keep_last, keep_daily=keep_daily)
        groups: dict[tuple[str, ...], dict[str, datetime]] = {}  # per host (one) and paths
        for uid, recorded in self.snapshots.items():
            groups.setdefault(tuple(sorted(recorded.paths)), {})[uid] = recorded.time
        kept = set().union(*(kept_by_oracle(times, keep_last, keep_daily)
                             for times in groups.values()))
        if runner_style:  # as the job runner does it: apply_policy, then forget by uid
            groups = apply_policy(self.repo.snapshots(), policy, tz=UTC)
            removed = [s.uid for g in groups for s in g.remove]
            if removed:
                forget(self.repo, uids=removed)
        else:
            removed = forget(self.repo, policy, tz=UTC).removed
        assert sorted(removed) == sorted(self.snapshots.keys() - kept), (keep_last, keep_daily)
        self._forgotten(removed)
        note(f"policy last={keep_last} daily={keep_daily} forgot {sorted(removed)}")

    def _forgotten(self, uids: list[str]) -> None:
        """Out of the model, and off every target (all of them are reachable)."""
        for uid in uids:
            del self.snapshots[uid]
            self._gone(uid)

    def _gone(self, uid: str) -> None:
        held = [url for url in self.urls if read_object(url, snapshot_name(uid)) is not None]
        assert not held, f"deleted snapshot {uid} is still on {held}"

    @rule(max_unused=st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    def prune_repo(self, max_unused: float) -> None:
        self.count("prune_repo")
        assert self.repo is not None
        left_alone = sorted(self.behind())
        result = prune(self.repo, PruneOptions(max_unused=max_unused))
        note(f"prune: {result.packs_deleted} deleted, {result.packs_repacked} repacked, "
             f"left alone: {left_alone}")
        assert result.snapshots == len(self.snapshots)
        assert set(left_alone) <= ({self.damage.url} if self.damage else set())
        live = self.live_names()
        for url in self.urls:
            if url not in left_alone:  # keeps nothing prune deleted
                extra = set(objects_under(Path(url), "data/")) - live
                extra |= set(objects_under(Path(url), "index/")) - live
                assert not extra, f"{url} keeps {sorted(extra)[:5]} after prune"

    @rule(what=st.sampled_from(["backup", "forget", "prune", "tag", "rewrite"]))
    def dry_run(self, what: str) -> None:
        """A dry run changes nothing on any target."""
        self.count(f"dry_run {what}")
        assert self.repo is not None
        before = [fingerprint(url) for url in self.urls]
        if what == "backup":
            result = Archiver(self.repo, BackupOptions(host=HOST, dry_run=True)).run(
                [str(self.src)])
            assert result.dry_run and not result.warnings
        elif what == "forget":
            forget(self.repo, RetentionPolicy(keep_last=1), dry_run=True)
        elif what == "tag":
            with self.repo.lock():
                fogvault.tag(self.repo, fogvault.TagOptions(add=["dry"], dry_run=True))
        elif what == "rewrite":
            result = fogvault.rewrite(self.repo, fogvault.RewriteOptions(
                excludes=["a", "*.bin"], dry_run=True))
            assert result.dry_run
        else:
            prune(self.repo, PruneOptions(dry_run=True))
        assert [fingerprint(url) for url in self.urls] == before

    @precondition(lambda self: self.damage is None)
    @rule(data=st.data())
    def damage_one_target(self, data: st.DataObject) -> None:
        self._damage(data)

    def _damage(self, data: st.DataObject) -> None:
        self.count("damage")
        url = data.draw(st.sampled_from(self.urls), label="damaged target")
        kind = data.draw(st.sampled_from(DAMAGES), label="damage")
        if kind == "delete_folder":
            kind += " " + data.draw(st.sampled_from(DAMAGED_FOLDERS), label="folder")
        rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="damage seed"))
        names = self._apply_damage(Path(url), kind, rng)
        if not names:  # nothing of that kind there (no pack, one snapshot...): the config then
            kind = "flip_config"
            names = self._apply_damage(Path(url), kind, rng)
            assert names, "every target holds the config while none is damaged"
        self.damage = Damage(url, kind, names, kind in ("flip_pack", "flip_tree", "swap_pack"))
        note(f"damaged {url}: {kind} {sorted(names)[:4]}{'...' if len(names) > 4 else ''}")

    def _apply_damage(self, folder: Path, kind: str, rng: random.Random) -> set[str]:
        """Damage ``folder`` (one target) as ``kind`` says; the objects touched (none if there
        is nothing of that kind there). Never depends on hypothesis draws, so that a replay
        draws the same whatever the repository holds (pack counts can differ by thread
        timing)."""
        if kind.startswith("delete_folder"):
            which = kind.split()[1]
            if which == "data/??/":
                subs = sorted(p.name for p in (folder / "data").glob("??"))
                if not subs:
                    return set()
                which = f"data/{rng.choice(subs)}/"
            names = set(objects_under(folder, which))
            shutil.rmtree(folder / which, ignore_errors=True)
            return names
        if kind == "orphan_pack":  # not damage: an unindexed pack check notes, prune deletes
            name = pack_name(rng.randbytes(32))
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(rng.randbytes(rng.randint(0, 5000)))
            self.junk.add((str(folder), name))
            return {name}
        if kind == "flip_tree":
            found = self._tree_blob_place(str(folder), rng)
            if found is None:
                return set()
            name, offset = found
            self._flip(folder / name, offset, rng)
            return {name}
        prefix = {"pack": "data/", "index": "index/", "snapshot": "snapshots/",
                  "key": "keys/", "config": CONFIG_NAME}[kind.rpartition("_")[2]]
        candidates = objects_under(folder, prefix) if prefix != CONFIG_NAME else (
            [CONFIG_NAME] if (folder / CONFIG_NAME).exists() else [])
        if not candidates:
            return set()
        name = rng.choice(candidates)
        path = folder / name
        size = path.stat().st_size
        if kind.startswith("delete"):
            path.unlink()
        elif kind.startswith("truncate"):
            os.truncate(path, rng.randrange(size))
        elif kind.startswith("swap"):  # another object's bytes under this name
            others = [n for n in candidates if n != name]
            if not others:
                return set()
            path.write_bytes((folder / rng.choice(others)).read_bytes())
        else:
            self._flip(path, rng.randrange(size), rng)
        return {name}

    @precondition(lambda self: self.damage is None)
    @rule(data=st.data())
    def damage_again(self, data: st.DataObject) -> None:
        """A second rule, for weight."""
        self._damage(data)

    def _flip(self, path: Path, offset: int, rng: random.Random) -> None:
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ (1 << rng.randrange(8))]))

    def _tree_blob_place(self, url: str, rng: random.Random) -> tuple[str, int] | None:
        """A pack on ``url`` holding a tree blob the index lists, and an offset in that blob."""
        assert self.repo is not None
        self.repo.load_index()
        order = {name: n for n, name in enumerate(objects_under(Path(url), "data/"))}
        trees = sorted((order[name], entry.offset, name, entry.length)
                       for pack_id, first, end in self.repo.index.packs()
                       if (name := pack_name(pack_id)) in order
                       for entry in map(self.repo.index.entry_at, range(first, end))
                       if entry.blob_type == BlobType.TREE)
        if not trees:
            return None
        _, offset, name, length = rng.choice(trees)
        return name, offset + rng.randrange(length)

    @rule()
    def check_repo(self) -> None:
        self.count("check_repo")
        assert self.repo is not None
        result = check(self.repo, CheckOptions(read_data=True))
        live = self.live_names()
        divergence = self.divergence(live)
        report = describe_check(result)
        note(f"check: ok={result.ok}")
        assert not result.problems, report
        assert result.snapshots == len(self.snapshots), report
        if self.damage is None:
            assert not divergence, f"no damage, yet the targets differ: {divergence}"
        else:
            still = self.damage.names & live
            STATS["check: damage in use" if still else "check: damage made unused"] += 1
            if still:  # damage to an object still in use must be found
                assert not result.ok, f"damage to {sorted(still)} not found:\n{report}"
            self.damage.known = True
        for target in result.targets:
            reported = set(target.missing) | set(target.wrong_size) | set(target.corrupt)
            assert target.reachable, report
            assert reported == divergence.get(target.url, set()), (
                f"{target.url}: check reports {sorted(reported)}, the copies differ in "
                f"{sorted(divergence.get(target.url, set()))}\n{report}")
        assert result.ok == (not divergence), report

    @rule(data=st.data())
    def repair_repo(self, data: st.DataObject) -> None:
        self.count("repair_repo")
        assert self.repo is not None
        # Drawn whatever the state, so that a replay draws the same (see _apply_damage).
        read_data = data.draw(st.booleans(), label="read data")
        index = data.draw(st.booleans(), label="index")
        if self.damage and self.damage.needs_read_data and not self.damage.known:
            read_data = True  # no check has seen the damage: only reading the packs finds it
        # --index reports a junk pack (orphan_pack) as unrecoverable, rightly: not with one
        index = index and not any((Path(url) / name).exists() for url, name in self.junk)
        result = repair(self.repo, RepairOptions(read_data=read_data, index=index))
        note(f"repair (read_data={read_data}, index={index}): {result.changes} changes")
        assert not result.indexed, result.indexed  # every pack is listed by an index file
        assert result.ok, (result.unrecoverable, [(t.url, t.failed, t.skipped)
                                                  for t in result.targets])
        after = check(self.repo, CheckOptions(read_data=True))
        assert after.ok, describe_check(after)
        self.damage = None
        assert not self.divergence(self.live_names())

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        self._restore(data)

    def _restore(self, data: st.DataObject) -> None:
        self.count("restore")
        assert self.repo is not None
        uid = self.pick_snapshots(data, "restored")[0][0]
        newest = newest_first({u: r.time for u, r in self.snapshots.items()})[0]
        how = data.draw(st.sampled_from(["uid", "prefix", "latest"]), label="by")
        if how == "latest":
            uid = newest
        ref = {"uid": uid, "prefix": uid[:10], "latest": "latest"}[how]
        assert self.repo.resolve_snapshot(ref) == uid
        verify = data.draw(st.booleans(), label="verify")
        # worker processes (None: decided by the file count, which is always too small here)
        processes = data.draw(st.sampled_from([None, None, None, False, True]),
                              label="processes")
        self.restores += 1
        target = self.base / f"restore{self.restores}"
        target.mkdir()
        options = RestoreOptions(target=str(target), verify=verify, processes=processes)
        summary = Restorer(self.repo, self.repo.load_snapshot(uid), options).run()
        assert not summary.warnings, list(summary.warnings)
        recorded = self.snapshots[uid]
        expected = recorded.tree
        for how in {*recorded.history, "stream"} if recorded.stream else set(recorded.history):
            STATS[f"restore: {how}"] += 1
        if recorded.stream is not None:  # the file NAME in the restore folder
            entries = scan(target).entries
            del entries["."]
            for name, entry in list(entries.items()):
                if entry[0] == "file" and recorded.stream[0] <= entry[3] <= recorded.stream[1]:
                    entries[name] = (*entry[:3], None)  # the time of the backup
            got = Tree(entries, frozenset())
        elif not expected.entries:  # a rewrite took out the source or a folder above it
            assert not os.path.lexists(target / self.real_src.lstrip("/")), uid
            got = expected
        else:
            got = scan(target / self.real_src.lstrip("/"))
        assert got == expected, f"restore of {uid} differs:\n{tree_diff(expected, got)}"
        shutil.rmtree(target)

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def restore_again(self, data: st.DataObject) -> None:
        """A second rule, for weight."""
        self._restore(data)

    @rule()
    def reopen(self) -> None:
        """A new Repository (index loaded from the targets), as the next command would; the
        ledger carries what this one learnt (damage, missed deletions), as the CLI's does."""
        self.count("reopen")
        self._reopen()

    def _reopen(self) -> None:
        assert self.repo is not None
        self.ledger.save(self.repo.targets, "lifecycle test")
        self.repo.close()
        self.repo = None
        self.repo = Repository.open(self.urls, PASSWORD, cache_dir=self.base / "cache",
                                    use_cache=self.use_cache, policy=self.policy)
        self.ledger.seed(self.repo.targets)

    # ---- invariants -----------------------------------------------------------------------

    @invariant()
    def lists_exactly_the_live_snapshots(self) -> None:
        STATS["~invariant checks"] += 1
        if self.repo is None:
            return
        snapshots = self.repo.snapshots()
        listed = {s.uid for s in snapshots}
        assert listed == set(self.snapshots), (
            f"listed but forgotten: {sorted(listed - set(self.snapshots))}; "
            f"live but not listed: {sorted(set(self.snapshots) - listed)}")
        for s in snapshots:
            recorded = self.snapshots[s.uid]
            assert (s.time, tuple(s.paths), tuple(s.tags)) == (
                recorded.time, recorded.paths, recorded.tags), s.uid


def run_lifecycle(max_examples: int, steps: int) -> None:
    STATS.clear()
    LARGEST.clear()
    started = time.monotonic()
    try:
        run_state_machine_as_test(RepositoryLifecycle, settings=settings(
            max_examples=max_examples, stateful_step_count=steps, deadline=None,
            database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                   HealthCheck.data_too_large]))
    finally:
        steps = STATS["~invariant checks"] - STATS["create"]
        print(f"lifecycle: {STATS['create']} examples, {steps} steps in "
              f"{time.monotonic() - started:.1f} s: {dict(sorted(STATS.items()))}; "
              f"largest: {dict(LARGEST)}")


def test_repository_lifecycle_model() -> None:
    run_lifecycle(max_examples=40, steps=50)


@pytest.mark.extended
def test_repository_lifecycle_model_extended() -> None:
    run_lifecycle(max_examples=300, steps=80)


# ---- bugs the machine found, reduced ------------------------------------------------------


def _small_repo(tmp_path: Path, **policy: int) -> tuple[Repository, Path, Path]:
    """A repository on folders a and b (min_targets as given), and a source of one file."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(random.Random(1).randbytes(10_000))
    repo = Repository.init([str(tmp_path / "a"), str(tmp_path / "b")], PASSWORD, kdf=TINY_KDF,
                           use_cache=False, config=RepoConfig(chunker=SMALL_CHUNKS,
                                                              pack_size=MIN_PACK_SIZE),
                           policy=TargetPolicy(**policy))
    return repo, src, tmp_path / "b"


@pytest.mark.parametrize("repair_first", [False, True])
@pytest.mark.parametrize("dry_run", [False, True])
def test_forget_after_a_prune_that_skipped_a_target_deletes_there_too(
        tmp_path: Path, dry_run: bool, repair_first: bool) -> None:
    """Found by the machine: prune (even a dry run) leaves a target that lacks an index file
    alone (skip_writes), and that outlived the prune, so a later forget on the same Repository
    skipped the target: the snapshot stayed there, was still listed, and a repair after reopening
    copied it back. Fixed in dbd548d."""
    repo, src, b = _small_repo(tmp_path)
    with repo:
        uid = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
        shutil.rmtree(b / "index")  # b lacks an index file: prune leaves it alone (targets.md)
        prune(repo, PruneOptions(dry_run=dry_run))
        if repair_first:
            assert repair(repo).ok
            assert check(repo, CheckOptions(read_data=True)).ok  # b is whole again
        forget(repo, uids=[uid])
        assert not (b / "snapshots" / uid).exists()
        assert repo.snapshots() == []


def test_backup_result_names_only_targets_this_backup_missed(tmp_path: Path) -> None:
    """Found by the machine: a target's first missed change was kept for the life of the
    Repository, so after a repair made it whole, a later backup's targets_behind still named it
    (with the earlier snapshot), though it got this one. Fixed in dbd548d."""
    repo, src, b = _small_repo(tmp_path, min_targets=1)
    with repo:
        Archiver(repo, BackupOptions()).run([str(src)])
        shutil.rmtree(b / "index")
        behind = Archiver(repo, BackupOptions()).run([str(src)]).targets_behind
        assert list(behind) == [str(b)]  # right: b lacked an index file
        assert repair(repo).ok
        third = Archiver(repo, BackupOptions()).run([str(src)])
        assert (b / "snapshots" / third.snapshot.uid).exists()
        assert third.targets_behind == {}
