"""scripts/bench.py's frozen copy of the code under test: it is the work tree's (or a
commit's) fogvault package, with its compiled parts built, not the Python fallbacks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))


def _bench_script():
    spec = importlib.util.spec_from_file_location("bench_script", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_frozen_copy_runs_with_its_compiled_probe(tmp_path):
    pythonpath, _ = _bench_script().freeze_code(tmp_path, None)
    where = subprocess.run(
        [sys.executable, "-c", "import fogvault.repo.index as i, fogvault.repo._probe as p; "
         "print(i.__file__); print(p.__file__); print(i._probe is p.probe)"],
        env={"PYTHONPATH": pythonpath, "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
        capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(path).is_relative_to(tmp_path / "code") for path in where[:2])
    assert where[2] == "True"
