"""scripts/index_memory.py, the index figures docs/design.md and the benchmark quote: it runs,
its lines parse as scripts/bench/measure.py expects, and ``--against`` measures both versions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_index_memory_reports_and_compares_two_versions():
    index_py = ROOT / "fogvault" / "repo" / "index.py"
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "index_memory.py"), "--blobs", "20000",
         "--rounds", "1", "--against", str(index_py)],
        capture_output=True, text=True, check=True, timeout=120).stdout
    assert "blobs:                 20,000 in 1,250 packs" in out
    assert "slot table:            compiled (fogvault/repo/_probe.c)" in out
    per_blob = float(re.search(r"index bytes per blob:\s+([\d.]+)", out)[1])
    assert 45 < per_blob < 100  # 45-byte records plus slots and pack ids
    rates = re.search(r"lookups per second:\s+([\d,]+) present, ([\d,]+) absent", out)
    assert all(int(rate.replace(",", "")) > 0 for rate in rates.groups())
    for name in ("this", "other"):
        assert re.search(rf"^{name}:\s+[\d,]+ present, [\d,]+ absent", out, re.MULTILINE)
