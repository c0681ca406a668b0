"""Crash consistency of backup, repair and restore: the process kills itself (SIGKILL) before
its N-th change to the targets, N drawn from a seed (FOGVAULT_CRASH_AFTER_WRITES). Afterwards
every snapshot committed before the kill restores byte for byte, `check --read-data` passes
(after `repair` where the command was a repair), and a rerun of the command completes.
A few seeds run by default; `--extended` runs many more."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
from pathlib import Path

import pytest

DEFAULT_SEEDS = [11, 12]
EXTENDED_SEEDS = list(range(300, 340))


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _fill(src: Path, rng: random.Random, files: int) -> None:
    src.mkdir(exist_ok=True)
    for i in range(files):
        (src / f"f{rng.randrange(10**6)}-{i}").write_bytes(rng.randbytes(rng.randint(1, 600_000)))


def _json_last(done) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _restores(fogvault, tmp_path: Path, uid: str, src: Path, digest: dict, *repo: str) -> None:
    out = tmp_path / f"out-{uid}-{random.random()}"
    done = fogvault("restore", *repo, "--version", uid, "--target", str(out))
    assert done.returncode == 0, done.stderr
    assert _digest(out / str(src).lstrip("/")) == digest


def _killed(done) -> None:
    """The crash points are drawn below the number of changes each command makes, so the
    command must have been killed (a run that finished would test nothing)."""
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr)


def _crash_env(seed: int, most: int) -> dict[str, str]:
    return {"FOGVAULT_CRASH_AFTER_WRITES": str(random.Random(seed).randint(1, most))}


def _backup_case(seed, fogvault, tmp_path):
    rng = random.Random(seed)
    assert fogvault("init", "-r", "repo", "--kdf", "interactive", "--pack-size", "1"
                    ).returncode == 0
    src = tmp_path / "src"
    _fill(src, rng, 6)
    first = _json_last(fogvault("backup", "-r", "repo", "src", "--json"))["snapshot"]
    before = _digest(src)
    _fill(src, rng, 8)
    _killed(fogvault("backup", "-r", "repo", "src", env=_crash_env(seed, 6)))
    check = fogvault("check", "-r", "repo", "--read-data")
    assert check.returncode == 0, check.stdout
    _restores(fogvault, tmp_path, first, src, before, "-r", "repo")
    latest = _json_last(fogvault("backup", "-r", "repo", "src", "--json"))["snapshot"]
    _restores(fogvault, tmp_path, latest, src, _digest(src), "-r", "repo")


def _repair_case(seed, fogvault, tmp_path):
    rng = random.Random(seed)
    repos = ["-r", "a", "-r", "b"]
    assert fogvault("init", *repos, "--kdf", "interactive", "--pack-size", "1").returncode == 0
    src = tmp_path / "src"
    _fill(src, rng, 8)
    uid = _json_last(fogvault("backup", *repos, "src", "--json"))["snapshot"]
    digest = _digest(src)
    shutil.rmtree(tmp_path / "b" / "data")  # target b lost its packs
    shutil.rmtree(tmp_path / "b" / "snapshots")
    _killed(fogvault("repair", *repos, env=_crash_env(seed, 6)))
    _restores(fogvault, tmp_path, uid, src, digest, *repos)  # a serves whatever b lacks
    assert fogvault("repair", *repos).returncode == 0
    check = fogvault("check", *repos, "--read-data")
    assert check.returncode == 0, check.stdout
    _restores(fogvault, tmp_path, uid, src, digest, "-r", "b")  # b alone is whole again


def _restore_case(seed, fogvault, tmp_path):
    rng = random.Random(seed)
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    src = tmp_path / "src"
    _fill(src, rng, 5)
    uid = _json_last(fogvault("backup", "-r", "repo", "src", "--json"))["snapshot"]
    # A restore changes the repository only by taking and releasing its lock: killed at
    # either point, it leaves at most a stale lock of a dead process, which blocks nobody.
    _killed(fogvault("restore", "-r", "repo", "--version", uid, "--target", "half",
                     env=_crash_env(seed, 2)))
    _restores(fogvault, tmp_path, uid, src, _digest(src), "-r", "repo")
    assert fogvault("prune", "-r", "repo").returncode == 0  # the exclusive lock is free too


CASES = {"backup": _backup_case, "repair": _repair_case, "restore": _restore_case}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(CASES))
@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_killed_at_a_seeded_point(command, seed, fogvault, tmp_path):
    CASES[command](seed, fogvault, tmp_path)


@pytest.mark.extended
@pytest.mark.parametrize("command", sorted(CASES))
@pytest.mark.parametrize("seed", EXTENDED_SEEDS)
def test_killed_at_a_seeded_point_extended(command, seed, fogvault, tmp_path):
    CASES[command](seed, fogvault, tmp_path)
