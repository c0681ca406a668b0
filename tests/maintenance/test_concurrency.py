"""Backups from several "hosts" and forget+prune, all running at once as real processes:
afterwards check passes and every snapshot that exists restores byte for byte."""

from __future__ import annotations

import hashlib
import json
import random
import threading
from pathlib import Path

import pytest

ROUNDS = 4


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.mark.slow
def test_backups_and_prune_running_at_once(fogvault, tmp_path):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive", "--pack-size", "1"
                    ).returncode == 0
    committed: dict[str, tuple[Path, dict[str, str]]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def backups(host: str, seed: int) -> None:
        src = tmp_path / f"src-{host}"
        src.mkdir()
        rng = random.Random(seed)
        for round_ in range(ROUNDS):
            (src / f"r{round_}").write_bytes(rng.randbytes(rng.randint(200_000, 1_500_000)))
            if round_ and rng.random() < 0.5:
                (src / f"r{round_ - 1}").unlink()
            done = fogvault("backup", "-r", "repo", str(src), "--host", host, "--json",
                            "--retry-lock", "120")
            if done.returncode != 0:
                errors.append(f"backup {host}: {done.returncode} {done.stderr!r}")
                return
            uid = json.loads(done.stdout.splitlines()[-1])["snapshot"]
            with lock:
                committed[uid] = (src, _digest(src))

    def maintenance() -> None:
        for _ in range(ROUNDS):
            for args in (("forget", "--keep-last", "2"), ("prune", "--max-unused", "0")):
                done = fogvault(*args, "-r", "repo", "--retry-lock", "120")
                if done.returncode != 0:
                    errors.append(f"{args[0]}: {done.returncode} {done.stderr!r}")
                    return

    workers = [threading.Thread(target=backups, args=(f"host{i}", i)) for i in range(2)]
    workers.append(threading.Thread(target=maintenance))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []

    check = fogvault("check", "-r", "repo", "--read-data", "--json")
    assert check.returncode == 0, check.stdout.splitlines()[-1]
    remaining = [s["uid"] for s in json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)]
    assert len(remaining) >= 4  # the newest two of each host survive the last forget
    for uid in remaining:
        src, digest = committed[uid]
        out = tmp_path / f"out-{uid}"
        done = fogvault("restore", "-r", "repo", "--version", uid, "--target", str(out))
        assert done.returncode == 0, done.stderr
        assert _digest(out / str(src).lstrip("/")) == digest
