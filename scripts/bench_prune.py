#!/usr/bin/env python3
"""Benchmark ``fogvault prune`` on a synthetic repository with many blobs (not a test).

    .venv/bin/python scripts/bench_prune.py [--blobs 1000000] [--keep] [--profile FILE]

Builds a repository in a temporary folder straight through the library (no file system walk,
no chunking): ``--files`` files of ``--blobs / --files`` small random chunks each, spread over
``--dirs`` folders, written with the real PackWriter into packs of ``--pack-kib`` KiB. Two
snapshots are saved: the first references every blob, the second the first half of each
file's chunks. The first is forgotten, so the prune that follows (with the defaults: about
118 blobs per pack) deletes about a quarter of the packs, repacks nearly half (those holding
the middle of a file, or the end of one file and the start of the next) and keeps the rest.

Then ``fogvault prune`` runs in a subprocess with the index cache the build left (as on the
machine that made the backups), and the script prints its wall time, CPU time and peak RSS
(peak RSS from GNU time, as ``scripts/bench.py`` measures), and the blobs, packs and bytes
before and after.
Small blobs keep the build fast: prune's cost grows with blobs and packs, not bytes.
The figures are recorded in docs/performance-log.md ("Prune").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import run_phase
from bench.tools import Command

from fogvault.crypto import KdfParams
from fogvault.maintenance.forget import forget
from fogvault.repo.config import RepoConfig
from fogvault.repo.format import DATA_DIR, BlobType
from fogvault.repo.pack import seal_blob
from fogvault.repo.packer import PackWriter
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, SnapshotSummary, new_uid, now
from fogvault.repo.tree import DIR, FILE, Node, Tree

PASSWORD = b"bench-prune"
FAST_KDF = KdfParams(opslimit=1, memlimit=8 * 1024 * 1024)  # the benchmark is not about KDFs
ROOT = b"bench"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=1_000_000, help="data blobs to write")
    parser.add_argument("--files", type=int, default=2_000, help="files sharing the blobs")
    parser.add_argument("--dirs", type=int, default=40, help="folders holding the files")
    parser.add_argument("--blob-size", type=int, default=512, help="bytes of each data blob")
    parser.add_argument("--pack-kib", type=int, default=64, help="target pack size in KiB")
    parser.add_argument("--workdir", help="build here instead of a new temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the repository afterwards")
    parser.add_argument("--profile", help="run prune under cProfile, writing stats here")
    args = parser.parse_args()
    if args.blobs < args.files or args.files < args.dirs or args.dirs < 1:
        parser.error("need blobs >= files >= dirs >= 1")
    if args.blob_size < 16:
        parser.error("--blob-size must be at least 16")
    return args


# ---- building -------------------------------------------------------------------------------


class Builder:
    """Writes blobs through the real PackWriter and keeps the counts the report needs."""

    def __init__(self, repo: Repository, blob_size: int) -> None:
        self.repo = repo
        self.writer = PackWriter(repo)
        self.blob_size = blob_size
        self.filler = os.urandom(1 << 20)  # random, so zstd would not shrink it either
        self.counter = 0

    def data_blob(self) -> bytes:
        """A new, unique data blob of ``blob_size`` bytes; returns its id."""
        n = self.counter
        self.counter += 1
        start = (n * 7919) % (len(self.filler) - self.blob_size)
        data = n.to_bytes(8, "little") + self.filler[start : start + self.blob_size - 8]
        return self._store(BlobType.DATA, data)

    def tree(self, nodes: list[Node]) -> bytes:
        return self._store(BlobType.TREE, Tree(nodes).encode())

    def _store(self, blob_type: BlobType, data: bytes) -> bytes:
        repo = self.repo
        blob_id = repo.blob_id(data)
        if self.writer.reserve(blob_id):
            level = repo.config.compression_level
            sealed = seal_blob(repo.master.encryption, blob_type, blob_id, data, level)
            self.writer.add(blob_type, blob_id, sealed, len(data))
        return blob_id

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def file_node(name: bytes, content: list[bytes], blob_size: int, mtime_ns: int) -> Node:
    return Node(name=name, type=FILE, mode=0o644, uid=1000, gid=1000, mtime_ns=mtime_ns,
                ctime_ns=mtime_ns, size=len(content) * blob_size, content=content)


def dir_node(name: bytes, subtree: bytes, mtime_ns: int) -> Node:
    return Node(name=name, type=DIR, mode=0o755, uid=1000, gid=1000, mtime_ns=mtime_ns,
                ctime_ns=mtime_ns, subtree=subtree)


def snapshot_tree(builder: Builder, files: list[list[bytes]], dirs: int, share: float) -> bytes:
    """The root tree of a snapshot of ``/bench`` whose files hold the first ``share`` of their
    chunks; returns the root tree id."""
    mtime = time.time_ns()
    per_dir = -(-len(files) // dirs)
    folders = []
    for d in range(dirs):
        nodes = []
        for f in range(d * per_dir, min(len(files), (d + 1) * per_dir)):
            content = files[f][: max(1, round(len(files[f]) * share))]
            nodes.append(file_node(b"f%05d" % f, content, builder.blob_size, mtime))
        folders.append(dir_node(b"d%03d" % d, builder.tree(nodes), mtime))
    bench = builder.tree(folders)
    return builder.tree([dir_node(ROOT, bench, mtime)])


def new_snapshot(tree: bytes, tag: str) -> Snapshot:
    return Snapshot(uid=new_uid(), time=now(), host=socket.gethostname(), user="bench",
                    paths=["/" + ROOT.decode()], tree=tree, tags=[tag],
                    program_version="bench", summary=SnapshotSummary())


def build(repo_dir: Path, cache_dir: Path, args: argparse.Namespace) -> tuple[str, str]:
    """Create the repository; returns (uid of the full snapshot, uid of the half one)."""
    config = RepoConfig(pack_size=args.pack_kib * 1024, compression_level=0)
    repo = Repository.init([str(repo_dir)], PASSWORD, config=config, kdf=FAST_KDF,
                           cache_dir=cache_dir)
    builder = Builder(repo, args.blob_size)
    per_file, extra = divmod(args.blobs, args.files)
    files: list[list[bytes]] = []
    started = time.monotonic()
    for f in range(args.files):
        files.append([builder.data_blob() for _ in range(per_file + (f < extra))])
        if (f + 1) % max(1, args.files // 10) == 0:
            rate = builder.counter / (time.monotonic() - started)
            print(f"  {builder.counter:>10,} data blobs written ({rate:,.0f}/s)", flush=True)
    full = new_snapshot(snapshot_tree(builder, files, args.dirs, 1.0), "full")
    half = new_snapshot(snapshot_tree(builder, files, args.dirs, 0.5), "half")
    builder.close()
    repo.save_snapshot(full)
    repo.save_snapshot(half)
    repo.close()
    return full.uid, half.uid


# ---- measuring -----------------------------------------------------------------------------


def repo_figures(repo_dir: Path, cache_dir: Path) -> dict[str, int]:
    with Repository.open([str(repo_dir)], PASSWORD, cache_dir=cache_dir) as repo:
        packs = repo.targets.list(DATA_DIR)
        return {
            "snapshots": len(repo.snapshot_uids()),
            "blobs": len(repo.index),
            "indexed_packs": len(repo.index.pack_ids()),
            "packs": len(packs),
            "pack_bytes": sum(packs.values()),
            "index_files": len(repo.index_ids()),
        }


def run_prune(repo_dir: Path, cache_dir: Path, profile: str | None) -> dict:
    """Run ``fogvault prune`` in a subprocess; its summary plus wall/CPU time and peak RSS.

    Measured like the side-by-side benchmark's phases (``bench.measure.run_phase``): peak RSS
    from GNU time, since a child's own ``ru_maxrss`` would count this process's memory, the
    repository it just built (about 360 MiB at a million blobs), from before its ``exec``."""
    command = [sys.executable]
    if profile:
        command += ["-m", "cProfile", "-o", profile]
    command += ["-m", "fogvault", "prune", "-r", str(repo_dir), "--cache-dir", str(cache_dir),
                "--json"]
    for name in [k for k in os.environ if k.startswith("FOGVAULT_")]:
        del os.environ[name]  # run_phase passes this environment on: the caller's repository
    env = {"FOGVAULT_PASSWORD": PASSWORD.decode()}
    with tempfile.TemporaryDirectory() as logs:
        result = run_phase([Command(command)], env, Path(logs) / "prune.log")
    if not result["ok"]:
        sys.exit(f"prune failed with exit code {result['rc']}:\n{result['output_tail']}")
    summary = next(json.loads(line) for line in reversed(result["output_tail"].splitlines())
                   if line.startswith("{") and '"summary"' in line)
    return {**result, "summary": summary}


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def main() -> None:
    args = parse_args()
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-prune-"))
    base.mkdir(parents=True, exist_ok=True)
    repo_dir, cache_dir = base / "repo", base / "cache"
    try:
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, load average "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"building {args.blobs:,} data blobs in {args.files:,} files under {repo_dir}")
        started = time.monotonic()
        full_uid, _ = build(repo_dir, cache_dir, args)
        built_s = time.monotonic() - started
        with Repository.open([str(repo_dir)], PASSWORD, cache_dir=cache_dir,
                             load_index=False) as repo:
            forget(repo, uids=[full_uid])
        before = repo_figures(repo_dir, cache_dir)
        print(f"built in {built_s:.0f} s; forgot snapshot {full_uid}; running prune")
        run = run_prune(repo_dir, cache_dir, args.profile)
        after = repo_figures(repo_dir, cache_dir)
        s = run["summary"]
        print()
        print(f"repository:    {before['blobs']:,} blobs in {before['packs']:,} packs "
              f"({mib(before['pack_bytes'])}), {before['index_files']:,} index files")
        print(f"after prune:   {after['blobs']:,} blobs in {after['packs']:,} packs "
              f"({mib(after['pack_bytes'])}), {after['index_files']:,} index files")
        print(f"prune:         {s['blobs_used']:,} of {s['blobs_total']:,} blobs used; "
              f"{s['packs_deleted']:,} packs deleted, {s['packs_repacked']:,} repacked "
              f"({mib(s['bytes_repacked'])} copied); freed {mib(s['bytes_freed'])}")
        print(f"wall time:     {run['wall_s']:.1f} s")
        print(f"CPU time:      {run['cpu_s']:.1f} s "
              f"(user {run['user_s']:.1f} s, system {run['sys_s']:.1f} s)")
        print(f"peak RSS:      {run['peak_rss_mib']:,.0f} MiB "
              f"({run['peak_rss_mib'] * 2**20 / before['blobs']:.0f} bytes per blob; "
              f"{run['rss_source']})")
        if args.profile:
            print(f"profile:       {args.profile} (python -m pstats {args.profile})")
    finally:
        if args.keep:
            print(f"kept {base}")
        elif not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
        else:
            shutil.rmtree(repo_dir, ignore_errors=True)
            shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
