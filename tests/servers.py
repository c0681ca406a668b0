"""Real test servers on 127.0.0.1, run by the project's scripts/s3-server.sh and sftp-server.sh.

``run_server(kind)`` starts one (installing its Debian packages first if missing) and stops it
when the context ends. It raises :class:`ServerUnavailable`, with the script's own explanation,
if the server cannot start. Each run gets its own state dir and free ports, so concurrent test
sessions do not meet, and servers left behind by a killed session are stopped by the next one.
With ``FOGVAULT_TEST_KEEP_SERVERS=1`` a fixed state dir is used and the server is left running,
so the next session reuses it (start is idempotent).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fogvault.repo.lock import process_alive

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

#: kind -> (script, env var naming its state dir, settings: free ports and the like)
_SERVERS = {
    "s3": ("s3-server.sh", "FOGVAULT_S3_DIR", {
        "FOGVAULT_S3_PORT": "auto", "FOGVAULT_CEPH_MON_PORT": "auto",
        "FOGVAULT_CEPH_STORE": "memstore",  # the OSD keeps data in RAM: starts 2 s sooner
    }),
    "sftp": ("sftp-server.sh", "FOGVAULT_SFTP_DIR", {"FOGVAULT_SFTP_PORT": "auto"}),
}  # fmt: skip
#: generous: a first start installs Debian packages (Ceph: 30-60 s)
START_TIMEOUT = 600


class ServerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Server:
    kind: str
    settings: dict[str, str]  # the KEY=VALUE lines the script printed
    startup_seconds: float


def _script_env(kind: str) -> tuple[Path, dict[str, str]]:
    script, dir_var, settings = _SERVERS[kind]
    keep = os.environ.get("FOGVAULT_TEST_KEEP_SERVERS") == "1"
    suffix = "kept" if keep else str(os.getpid())
    env = {**os.environ, dir_var: f"/tmp/fogvault-test-{kind}-{suffix}", **settings}
    return SCRIPTS / script, env


def _run(script: Path, command: str, env: dict[str, str], timeout: float) -> str:
    try:
        done = subprocess.run(
            [str(script), command], env=env, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerUnavailable(f"{script.name} {command}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise ServerUnavailable(f"{script.name} {command} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def _reap_orphans(kind: str) -> None:
    """Stop the servers of earlier test sessions that died before their teardown (killed)."""
    script, dir_var, _ = _SERVERS[kind]
    for state in Path("/tmp").glob(f"fogvault-test-{kind}-*"):
        owner = state.name.rpartition("-")[2]
        if owner.isdigit() and not process_alive(int(owner)):
            _run(SCRIPTS / script, "stop", {**os.environ, dir_var: str(state)}, 60)



@contextmanager
def run_server(kind: str) -> Iterator[Server]:
    """Start the ``kind`` server ("s3" or "sftp"), yield its settings, stop it afterwards."""
    _reap_orphans(kind)
    script, env = _script_env(kind)
    started = time.monotonic()
    out = _run(script, "start", env, START_TIMEOUT)
    settings = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    try:
        yield Server(kind, settings, time.monotonic() - started)
    finally:
        if os.environ.get("FOGVAULT_TEST_KEEP_SERVERS") != "1":
            _run(script, "stop", env, 60)
