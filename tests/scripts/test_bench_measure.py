"""scripts/bench/measure.py's process-tree RSS: a tool that starts processes of its own is
charged the sum of their memory, not its own process's alone."""

from __future__ import annotations

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
