"""Measurements: one phase's commands (wall, CPU, peak RSS), repository bytes, the
in-memory pipeline ceiling, a bare metadata walk, and the blob index's memory and speed.

Each command runs as a direct child under GNU time (``/usr/bin/time -f %M``). CPU time comes
from ``os.wait4`` on that child (the kernel folds in its waited-for child, the tool). Peak RSS
comes from GNU time, not from wait4: a child's ``ru_maxrss`` also counts the memory of the
process it was forked from (the kernel keeps the old address space's high-water mark across
``exec``), which here would be this benchmark's own corpus buffers; GNU time forks from a 2 MiB
process. Without /usr/bin/time the wait4 figure is used and marked as an upper bound (for a
single process: it is the largest one process's peak, not a tree's sum).
GNU time's figure is one process's; a tool that starts processes of its own (FogVault's restore
workers) uses the sum of theirs, so the tool's process tree is also sampled every
``TREE_SAMPLE_S`` (the summed RSS of every process below GNU time, shared pages counted in each)
and the phase's peak is the larger of the two (``tree_rss_mib``, ``processes`` in the JSON).
The machine's other load is sampled from /proc/stat during the phase, so a noisy run can be
recognised: ``bg_cores`` is the average number of cores used by everything except the tool.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from bench.tools import Command

_CLK_TCK = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time"


def _busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _CLK_TCK


TREE_SAMPLE_S = 0.02
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a thread's children are listed under that thread)."""
    found, stack = [], [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:  # gone meanwhile
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:  # this thread ended meanwhile
                continue
            found += children
            stack += children
    return found


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):  # gone meanwhile
        return 0


class TreeSampler:
    """The largest summed RSS of the processes below ``pid`` (not ``pid`` itself: GNU time),
    sampled until :meth:`stop`; and the most processes seen at once."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TREE_SAMPLE_S):
            pids = _descendants(self.pid)
            self.peak_bytes = max(self.peak_bytes, sum(_rss_bytes(p) for p in pids))
            self.processes = max(self.processes, len(pids))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_phase(commands: list[Command], env: dict[str, str], log: Path) -> dict:
    """Run ``commands`` one after another; return their summed wall and CPU time, the
    largest peak RSS, the first failing exit code, and the background load."""
    result = {"wall_s": 0.0, "user_s": 0.0, "sys_s": 0.0, "peak_rss_mib": 0.0, "rc": 0,
              "tree_rss_mib": 0.0, "processes": 0, "commands": []}
    busy_before = _busy_seconds()
    full_env = {**os.environ, **env}
    use_time = os.access(GNU_TIME, os.X_OK)
    result["rss_source"] = "GNU time" if use_time else "wait4 (upper bound)"
    rss_file = log.with_suffix(".rss")
    with open(log, "ab") as out:
        start_offset = out.tell()
        for command in commands:
            out.write(f"\n$ {' '.join(command.argv)}\n".encode())
            out.flush()
            argv = command.argv
            if use_time:
                argv = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *argv]
            started = time.perf_counter()
            proc = subprocess.Popen(argv, cwd=command.cwd, env=full_env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            sampler = TreeSampler(proc.pid) if use_time else None
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            proc.returncode = rc = os.waitstatus_to_exitcode(status)
            result["wall_s"] += wall
            result["user_s"] += usage.ru_utime
            result["sys_s"] += usage.ru_stime
            peak_kib = usage.ru_maxrss
            if use_time:
                lines = rss_file.read_text().split()
                peak_kib = int(lines[-1]) if lines and lines[-1].isdigit() else peak_kib
            result["peak_rss_mib"] = max(result["peak_rss_mib"], peak_kib / 1024)
            if sampler is not None:
                sampler.stop()
                tree_mib = sampler.peak_bytes / 2**20
                result["tree_rss_mib"] = max(result["tree_rss_mib"], tree_mib)
                result["processes"] = max(result["processes"], sampler.processes)
                result["peak_rss_mib"] = max(result["peak_rss_mib"], tree_mib)
            result["commands"].append(" ".join(command.argv))
            if rc not in command.ok_codes:
                result["rc"] = rc
                break
    with open(log, "rb") as f:
        f.seek(max(start_offset, f.seek(0, os.SEEK_END) - 4000))
        result["output_tail"] = f.read().decode(errors="replace")
    result["cpu_s"] = result["user_s"] + result["sys_s"]
    busy = _busy_seconds() - busy_before
    result["bg_cores"] = max(0.0, (busy - result["cpu_s"]) / result["wall_s"]) \
        if result["wall_s"] > 0 else 0.0
    result["ok"] = result["rc"] == 0
    return result


def dir_bytes(path: Path) -> int:
    """Apparent size of every file below ``path`` (0 if it does not exist)."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def warm_cache(root: Path) -> int:
    """Read every regular file below ``root`` so that the next backup finds it in the page
    cache, whichever tool ran before: borg drops the files it reads from the cache
    (``POSIX_FADV_DONTNEED``), so without this the tool after borg read a cold tree. Returns
    the bytes read."""
    total = 0
    buffer = bytearray(1 << 20)
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb", buffering=0) as f:
                while n := f.readinto(buffer):
                    total += n
    return total


def bare_walk(root: Path) -> dict:
    """``os.scandir`` + ``lstat`` of every entry, recursively: the metadata floor of a
    no-change backup. Warm cache (call it after something has walked the tree)."""
    started = time.perf_counter()
    entries = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                entry.stat(follow_symlinks=False)
                entries += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    seconds = time.perf_counter() - started
    return {"entries": entries, "seconds": seconds, "us_per_entry": 1e6 * seconds / entries}


def pipeline_ceiling(files: list[Path], workers: int = 2) -> dict:
    """Chunk + id + dedup + compress + encrypt the files' bytes in memory with FogVault's own
    modules and the backup's thread layout: this thread chunks and hashes, ``workers`` threads
    seal (zstd with the incompressibility probe, then XChaCha20-Poly1305), at most
    ``2 * workers`` blobs in flight; blobs under 64 KiB (the backup batches them; here only
    file tails) sealed inline. Reading the files is not timed; packing and writing are not
    done."""
    from fogvault.backup.saver import BATCH_LIMIT
    from fogvault.chunker import Chunker, chunker_seed
    from fogvault.crypto import MasterKey, keyed_id
    from fogvault.repo.config import RepoConfig
    from fogvault.repo.format import BlobType
    from fogvault.repo.pack import seal_blob

    config = RepoConfig()
    key = MasterKey.generate()
    chunker = Chunker(config.chunker, chunker_seed(key.identity))
    level = config.compression_level
    seen: set[bytes] = set()
    slots = threading.BoundedSemaphore(2 * workers)
    stats = {"bytes": 0, "chunks": 0, "unique_chunks": 0, "sealed_bytes": 0, "seconds": 0.0}
    lock = threading.Lock()

    def seal(blob_id: bytes, data: memoryview) -> None:
        sealed = seal_blob(key.encryption, BlobType.DATA, blob_id, data, level)
        with lock:
            stats["sealed_bytes"] += len(sealed)

    stats["cpu_s"] = stats["busy_s"] = 0.0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seal") as pool:
        for path in files:
            data = path.read_bytes()
            started, cpu, busy = time.perf_counter(), time.process_time(), _busy_seconds()
            futures: list[Future[None]] = []
            for chunk in chunker.chunk_buffer(data):  # views, no copy: as the backup's windows
                blob_id = keyed_id(key.identity, chunk)
                stats["chunks"] += 1
                if blob_id in seen:
                    continue
                seen.add(blob_id)
                stats["unique_chunks"] += 1
                if len(chunk) < BATCH_LIMIT:
                    seal(blob_id, chunk)
                    continue
                slots.acquire()
                future = pool.submit(seal, blob_id, chunk)
                future.add_done_callback(lambda _: slots.release())
                futures.append(future)
            for future in futures:
                future.result()
            stats["seconds"] += time.perf_counter() - started
            stats["cpu_s"] += time.process_time() - cpu
            stats["busy_s"] += _busy_seconds() - busy
            stats["bytes"] += len(data)
            del data
    stats["mb_per_s"] = stats["bytes"] / 1e6 / stats["seconds"]
    stats["bg_cores"] = max(0.0, stats.pop("busy_s") - stats["cpu_s"]) / stats["seconds"]
    stats["workers"] = workers
    return stats


def paired_ceiling(before: dict, after: dict) -> dict:
    """One ceiling from the two measured around the backup it is compared with: this machine's
    speed drifts by 25-35 % over minutes (docs/performance-log.md, "Session 12"), so a ceiling
    measured minutes away from the backup moved the ratio by more than the target's margin."""
    seconds = (before["seconds"] + after["seconds"]) / 2
    return {**before, "seconds": seconds, "mb_per_s": before["bytes"] / 1e6 / seconds,
            "cpu_s": (before["cpu_s"] + after["cpu_s"]) / 2,
            "bg_cores": (before["bg_cores"] + after["bg_cores"]) / 2}


def ceiling_share(ceiling: dict, backup_wall_s: float) -> float:
    """The backup's rate as a share of the ceiling's (the issue's >= 70 % target)."""
    return ceiling["bytes"] / 1e6 / backup_wall_s / ceiling["mb_per_s"]


def index_memory(blobs: int, log: Path, env: dict[str, str] | None = None) -> dict:
    """Run scripts/index_memory.py for ``blobs`` ids; parse bytes/blob and lookup rates."""
    script = Path(__file__).resolve().parent.parent / "index_memory.py"
    with open(log, "ab") as out:
        out.write(f"\n$ index_memory.py --blobs {blobs}\n".encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(script), "--blobs", str(blobs)],
                                stdout=subprocess.PIPE, stderr=out, text=True,
                                env={**os.environ, **(env or {})})
        text, _ = proc.communicate()
        wall = time.perf_counter() - started
        out.write(text.encode())
    if proc.returncode != 0:
        return {"ok": False, "rc": proc.returncode}

    def number(pattern: str) -> float:
        match = re.search(pattern, text)
        return float(match.group(1).replace(",", "")) if match else float("nan")

    return {
        "ok": True,
        "blobs": blobs,
        "bytes_per_blob": number(r"index bytes per blob:\s+([\d.,]+)"),
        "rss_growth_per_blob": number(r"RSS growth per blob:\s+([\d.,]+)"),
        "inserts_per_s": number(r"inserts per second:\s+([\d.,]+)"),
        "lookups_present_per_s": number(r"lookups per second:\s+([\d.,]+) present"),
        "lookups_absent_per_s": number(r"present, ([\d.,]+) absent"),
        "peak_rss_mib": number(r"peak RSS:\s+([\d.,]+)"),
        "wall_s": wall,
    }
