"""Shared fixtures: real repositories on real folders, the real CLI in a subprocess, and the
real S3 (Ceph RGW) and SFTP (OpenSSH) test servers.

``s3_server`` and ``sftp_server`` start once per session and stop at its end. If one cannot
start, every test that needs it fails with the script's explanation; only
``FOGVAULT_TEST_NO_S3=1`` / ``FOGVAULT_TEST_NO_SFTP=1`` turn those tests into skips.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers import Server, ServerUnavailable, run_server

from fogvault.chunker import ChunkerParams
from fogvault.crypto import KDF_MIN_MEMLIMIT, KDF_MIN_OPSLIMIT, KdfParams
from fogvault.repo.config import RepoConfig
from fogvault.repo.repository import Repository

PASSWORD = b"correct horse battery staple"
# libsodium's minimum: every open derives a key, and at a real profile's cost that was a
# quarter of the suite's time. The profiles themselves are tested where they matter.
FAST_KDF = KdfParams(KDF_MIN_OPSLIMIT, KDF_MIN_MEMLIMIT)
# Small chunks and packs so that small test data still spans many chunks and packs.
SMALL_CHUNKS = ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024)
S3_BUCKET = "fogvault-test"
# A command prefix: root ignores file modes, so drop its DAC override for chmod-based tests.
AS_USER = (["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
           if os.geteuid() == 0 else None)


def pytest_configure(config: pytest.Config) -> None:
    """Signals at their defaults for the processes the tests start, however pytest was started:
    a shell's background job (``pytest &``) ignores SIGINT and ``nohup`` SIGHUP, and ignored
    signals stay ignored in children, so the tests of Ctrl-C and hang-up would fail (FogVault
    leaves signals ignored that its caller ignored, as it should)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--extended", action="store_true", help="run long stress tests too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--extended"):
        return
    skip = pytest.mark.skip(reason="extended run only (--extended)")
    for item in items:
        if "extended" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def make_repo(tmp_path: Path, cache_dir: Path) -> Callable[..., Repository]:
    """Create a repository on local folders below tmp_path; small chunks and packs."""
    opened: list[Repository] = []

    def make(*names: str, pack_size: int = 256 * 1024, **config: object) -> Repository:
        urls = [str(tmp_path / n) for n in (names or ("repo",))]
        cfg = RepoConfig(chunker=SMALL_CHUNKS, pack_size=pack_size, **config)  # type: ignore[arg-type]
        repo = Repository.init(urls, PASSWORD, config=cfg, kdf=FAST_KDF, cache_dir=cache_dir)
        opened.append(repo)
        return repo

    yield make
    for repo in opened:
        repo.close()


@pytest.fixture
def trust_recent_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests whose backups run within a millisecond of writing the files: the parent's
    entries are trusted however recent their ctime (a margin of minus an hour), so that what
    such a test checks is the comparison itself. The racy-entry margin has its own test
    (tests/backup/test_source_changes.py)."""
    from fogvault.backup import archiver

    monkeypatch.setattr(archiver, "RACY_MARGIN_NS", -3600 * 10**9)


@pytest.fixture
def local_job_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], str]:
    """The jobs config text of a job ``home`` that backs ``src`` up to the repository
    ``make_repo("repo")`` makes, its password in a file; the XDG folders below tmp_path.
    Tests append the job keys they try."""
    for kind in ("cache", "config", "state"):
        monkeypatch.setenv(f"XDG_{kind.upper()}_HOME", str(tmp_path / f"xdg-{kind}"))
    (tmp_path / "password").write_bytes(PASSWORD + b"\n")

    def text(src: Path) -> str:
        return (f'[repositories.local]\ntargets = ["{tmp_path / "repo"}"]\npassword_file = '
                f'"{tmp_path / "password"}"\n\n[jobs.home]\nrepository = "local"\n'
                f'paths = ["{src}"]\n')

    return text


@pytest.fixture
def reopen(cache_dir: Path) -> Callable[[Repository], Repository]:
    def do(repo: Repository) -> Repository:
        return Repository.open(repo.targets.urls, PASSWORD, cache_dir=cache_dir)

    return do


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGVAULT_")}
    env.update(
        FOGVAULT_PASSWORD=PASSWORD.decode(),
        FOGVAULT_TESTONLY_WEAK_KDF="1",  # see FAST_KDF
        XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        XDG_STATE_HOME=str(tmp_path / "xdg-state"),
    )
    return env


@pytest.fixture
def fogvault(cli_env: dict[str, str], tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run the real ``fogvault`` CLI in a subprocess; returns the CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, input: bytes | None = None,
            cwd: Path | None = None, wrap: list[str] | None = None,
            ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*(wrap or []), sys.executable, "-m", "fogvault", *args],
            env={**cli_env, **(env or {})}, input=input, capture_output=True,
            cwd=cwd or tmp_path, timeout=300, check=False,
        )

    return run


# ----------------------------------------------------------------------------- test servers


def _server(kind: str, opt_out: str) -> Iterator[Server]:
    if os.environ.get(opt_out) == "1":
        pytest.skip(f"{opt_out}=1: {kind} tests skipped on request")
    try:
        with run_server(kind) as server:
            yield server
    except ServerUnavailable as exc:
        pytest.fail(f"the {kind} test server is unavailable (set {opt_out}=1 to skip): {exc}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Server]:
    yield from _server("s3", "FOGVAULT_TEST_NO_S3")


@pytest.fixture(scope="session")
def sftp_server() -> Iterator[Server]:
    yield from _server("sftp", "FOGVAULT_TEST_NO_SFTP")


@pytest.fixture
def s3_env(s3_server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server's settings in the environment, where open_storage("s3://...") reads them."""
    for key in ("FOGVAULT_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, s3_server.settings[key])
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_server.settings


@pytest.fixture
def sftp_env(sftp_server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The client key and known_hosts in the environment, where SftpStorage reads them."""
    for key in ("FOGVAULT_SFTP_KEY", "FOGVAULT_SFTP_KNOWN_HOSTS"):
        monkeypatch.setenv(key, sftp_server.settings[key])
    return sftp_server.settings


@pytest.fixture
def s3_url(s3_env: dict[str, str]) -> str:
    """A fresh prefix in the test bucket; the server's settings are in the environment."""
    return f"s3://{S3_BUCKET}/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sftp_url(sftp_env: dict[str, str]) -> str:
    """A fresh folder on the SFTP server; key and known_hosts are in the environment."""
    return f"{sftp_env['SFTP_URL']}{sftp_env['SFTP_ROOT']}/{uuid.uuid4().hex[:12]}"
