"""scripts/bench/measure.py's process-tree RSS: a tool that starts processes of its own is
charged the sum of their memory, not its own process's alone."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from bench.measure import TreeSampler  # noqa: E402 (the scripts folder is not a package path)

HOLD_MIB = 48
# Processes that each touch HOLD_MIB MiB, say so, and hold it until their input ends.
CHILD = f"b = bytearray({HOLD_MIB} << 20); b[::4096] = b'x' * len(b[::4096]); " \
        "print('ready', flush=True); import sys; sys.stdin.read()"
# One holder below a middle process (as GNU time -> FogVault -> its worker), one started by a
# second thread of the top process (listed under that thread in /proc).
MIDDLE = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])"
PARENT = ("import subprocess, sys, threading; "
          f"spawn = lambda code: subprocess.run([sys.executable, '-c', code]); "
          f"thread = threading.Thread(target=spawn, args=({CHILD!r},)); thread.start(); "
          f"spawn({MIDDLE!r}); thread.join()")


def test_tree_sampler_sums_the_processes_below_the_one_it_watches():
    # the watched process (as GNU time) and three below it: MIDDLE, its child, the other child
    watched = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert watched.stdout is not None
        assert [watched.stdout.readline() for _ in range(2)] == ["ready\n"] * 2
        sampler = TreeSampler(watched.pid)
        deadline = time.monotonic() + 30
        while sampler.processes < 3 and time.monotonic() < deadline:
            sampler._stop.wait(0.01)  # sampling is periodic: wait for two samples' worth
        sampler.stop()
    finally:
        watched.communicate("")
    assert sampler.processes == 3  # not the watched process itself
    assert sampler.peak_bytes >= 2 * HOLD_MIB << 20  # both holders' memory, summed


def _bench_script():
    """scripts/bench.py, whose name the scripts/bench package shadows."""
    spec = importlib.util.spec_from_file_location("bench_script", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ceiling_target_is_each_runs_backup_against_the_ceiling_around_it():
    """A slow ceiling in one run must not be set against a fast backup of another: the share is
    taken per run (the ceilings around that run's backup, averaged), then the median."""
    from bench import report
    from bench.measure import ceiling_share, paired_ceiling

    def measured(seconds: float) -> dict:
        return {"bytes": 1_000_000_000, "seconds": seconds, "mb_per_s": 1000 / seconds,
                "cpu_s": 2 * seconds, "bg_cores": seconds / 10, "workers": 2}

    slow = paired_ceiling(measured(3.0), measured(5.0))  # the machine drifted: 4 s on average
    assert (slow["mb_per_s"], slow["cpu_s"], slow["bg_cores"]) == (250, 8.0, 0.4)
    assert ceiling_share(slow, 5.0) == 0.8
    fast = paired_ceiling(measured(2.0), measured(2.0))
    repeats = [(slow, 5.0), (fast, 3.2), (fast, 2.5)]  # shares 80, 62.5 and 80 %
    extras = _bench_script().combine_extras(
        [{"ceiling": c, "ceiling_share": ceiling_share(c, wall)} for c, wall in repeats])
    assert extras["ceiling_share"] == 0.8
    assert not [k for k in extras["ceiling"] if k.startswith("mb_per_s_")]  # no one run's
    median = {"big": {"fogvault": {"backup_initial": {"wall_s": 3.2, "cpu_s": 6.0}}}}
    (row,) = [r for r in report.targets(median, extras) if "ceiling" in r["target"]]
    assert row["met"] is True  # while the median backup against the median ceiling: 62 %
    assert "runs 80, 62, 80 %" in row["detail"]
    slower = [(fast, 3.2), (slow, 6.0), (fast, 3.0)]  # 62.5, 67 and 67 %
    extras = _bench_script().combine_extras(
        [{"ceiling": c, "ceiling_share": ceiling_share(c, wall)} for c, wall in slower])
    (row,) = [r for r in report.targets(median, extras) if "ceiling" in r["target"]]
    assert row["met"] is False
    (row,) = [r for r in report.targets(median, {"ceiling": fast})  # every backup failed
              if "ceiling" in r["target"]]
    assert row["met"] is False
