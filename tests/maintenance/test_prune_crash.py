"""prune killed with SIGKILL at any point leaves a repository that checks clean, restores
every snapshot, and finishes on a rerun.

The kill point is chosen by seed and delivered by the FOGVAULT_CRASH_AFTER_WRITES hook (the
process kills itself before its N-th change to the targets), so every run is reproducible.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
from pathlib import Path

import pytest

SEEDS = [1, 2, 3, 4]
EXTENDED_SEEDS = list(range(100, 220))


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    """A repository with three snapshots (the first forgotten) and each snapshot's contents."""
    import os
    import subprocess
    import sys

    from conftest import PASSWORD

    base = tmp_path_factory.mktemp("prune-crash")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGVAULT_")}
    env.update(FOGVAULT_PASSWORD=PASSWORD.decode(), XDG_CACHE_HOME=str(base / "cache"))

    def fv(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "fogvault", *args, "-r", "repo"],
                              cwd=base, env=env, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr
        return done

    fv("init", "--kdf", "interactive", "--pack-size", "1")
    src = base / "src"
    src.mkdir()
    rng = random.Random(0)
    expected: dict[str, dict[str, str]] = {}
    for round_ in range(3):
        for i in range(6):
            if rng.random() < 0.5 or round_ == 0:
                (src / f"f{i}").write_bytes(rng.randbytes(rng.randint(100_000, 700_000)))
        (src / f"only-{round_}").write_bytes(rng.randbytes(400_000))
        uid = json.loads(fv("backup", "src", "--json").stdout.splitlines()[-1])["snapshot"]
        expected[uid] = _digest(src)
        (src / f"only-{round_}").unlink()
    first = next(iter(expected))
    fv("forget", first)
    del expected[first]
    return base, expected


def _run_seed(seed: int, history, fogvault, tmp_path: Path) -> None:
    base, expected = history
    shutil.copytree(base / "repo", tmp_path / "repo")
    crash_after = random.Random(seed).randint(1, 30)
    killed = fogvault("prune", "-r", "repo", "--max-unused", "0",
                      env={"FOGVAULT_CRASH_AFTER_WRITES": str(crash_after)})
    assert killed.returncode in (0, -signal.SIGKILL), killed.stderr
    print(f"seed {seed}: crash after {crash_after} changes -> exit {killed.returncode}")
    check = fogvault("check", "-r", "repo", "--read-data", "--json")
    report = json.loads(check.stdout.splitlines()[-1])
    assert check.returncode == 0, json.dumps(report, indent=1)
    for uid, digest in expected.items():
        out = tmp_path / f"out-{uid}"
        done = fogvault("restore", "-r", "repo", "--version", uid, "--target", str(out))
        assert done.returncode == 0, done.stderr
        assert _digest(out / str(base / "src").lstrip("/")) == digest
    rerun = fogvault("prune", "-r", "repo", "--max-unused", "0", "--json")
    assert rerun.returncode == 0, rerun.stderr
    final = json.loads(fogvault("check", "-r", "repo", "--json").stdout.splitlines()[-1])
    assert final["ok"] and all(t["unindexed_packs"] == 0 for t in final["targets"])
    again = json.loads(fogvault("prune", "-r", "repo", "--json").stdout.splitlines()[-1])
    assert again["packs_deleted"] == again["packs_repacked"] == again["packs_orphaned"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_prune_killed_at_a_random_point(seed, history, fogvault, tmp_path):
    _run_seed(seed, history, fogvault, tmp_path)


@pytest.mark.extended
@pytest.mark.parametrize("seed", EXTENDED_SEEDS)
def test_prune_killed_at_a_random_point_extended(seed, history, fogvault, tmp_path):
    _run_seed(seed, history, fogvault, tmp_path)
