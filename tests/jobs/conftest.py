"""Fixtures for the jobs tests: a real local repository and config file, the CLI kept away from
the user's systemd and crontab, and a real local HTTP server that records pings."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fogvault.jobs.config import Config, load_config


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same XDG folders as the ``fogvault`` fixture's subprocesses; no user scheduler."""
    for name in [k for k in os.environ if k.startswith("FOGVAULT_")]:
        monkeypatch.delenv(name)
    for kind in ("cache", "config", "state"):
        monkeypatch.setenv(f"XDG_{kind.upper()}_HOME", str(tmp_path / f"xdg-{kind}"))
    monkeypatch.setenv("FOGVAULT_SYSTEMCTL", "")
    monkeypatch.setenv("FOGVAULT_CRONTAB_FILE", str(tmp_path / "crontab"))


@pytest.fixture
def jobs_cli(fogvault: Callable[..., subprocess.CompletedProcess], tmp_path: Path
             ) -> Callable[..., subprocess.CompletedProcess]:
    """The real CLI; crontab and systemctl redirected as in :func:`isolated_env`."""

    def run(*args: str, env: dict[str, str] | None = None, wrap: list[str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        safe = {"FOGVAULT_SYSTEMCTL": "", "FOGVAULT_CRONTAB_FILE": str(tmp_path / "crontab")}
        return fogvault(*args, env={**safe, **(env or {})}, wrap=wrap, cwd=cwd)

    return run


@dataclass
class Setup:
    """A repository at ``root/repo``, a password file, source files, and a config writer."""

    root: Path
    config: Path = field(init=False)
    src: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.root / "config.toml"
        self.src = self.root / "src"

    @property
    def run_log(self) -> Path:
        return self.root / "xdg-state" / "fogvault" / "runs.jsonl"

    def write(self, job: str = "", *, repo: str = "", top: str = "", targets: str = '["repo"]',
              paths: str = '["src"]') -> Path:
        """Write a config: repository ``local``, job ``home`` backing up ``paths``; ``job`` and
        ``repo`` are TOML lines added to those tables (sub-tables last), ``top`` goes at the
        end."""
        self.config.write_text(
            f'[repositories.local]\ntargets = {targets}\npassword_file = "password"\n{repo}\n\n'
            f'[jobs.home]\nrepository = "local"\npaths = {paths}\n{job}\n\n{top}\n'
        )
        return self.config

    def load(self) -> Config:
        return load_config(self.config)


@pytest.fixture
def setup(tmp_path: Path, make_repo: Callable[..., object], cli_env: dict[str, str]) -> Setup:
    make_repo("repo")
    (tmp_path / "password").write_text(cli_env["FOGVAULT_PASSWORD"] + "\n")
    s = Setup(tmp_path)
    (s.src / "docs").mkdir(parents=True)
    (s.src / "docs" / "a.txt").write_text("alpha\n" * 1000)
    (s.src / "b.bin").write_bytes(os.urandom(200_000))
    s.write()
    return s


@dataclass
class PingServer:
    """A real HTTP server on 127.0.0.1 recording (method, path, body) of every request."""

    status: int = 200
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/ping/abc") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [path for _method, path, _body in self.requests]


@pytest.fixture
def ping_server() -> Iterator[PingServer]:
    state = PingServer()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode(errors="replace")
            state.requests.append((self.command, self.path, body))
            self.send_response(state.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = do_HEAD = _record

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
