"""Fixtures for the storage tests: the real servers, and one Storage per backend and wrapper.

``s3_server`` (Ceph RGW) and ``sftp_server`` (OpenSSH) start once per session and stop at its
end. If one cannot start, every test that needs it fails with the script's explanation; only
``FOGVAULT_TEST_NO_S3=1`` / ``FOGVAULT_TEST_NO_SFTP=1`` turn those tests into skips.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fogvault.storage import FaultyStorage, RetryingStorage, Storage, open_storage
from fogvault.storage.faulty import Fault, transient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for servers.py
from servers import Server, ServerUnavailable, run_server

BACKENDS = ["local", "memory", "s3", "sftp", "faulty", "retrying"]
S3_BUCKET = "fogvault-test"


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


def make_storage(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """A fresh, empty target of ``kind`` (one of BACKENDS)."""
    if kind == "local":
        return open_storage(str(tmp_path / "target"))
    if kind == "memory":
        return open_storage(f"memory://fogvault-test/{uuid.uuid4().hex}")
    if kind in ("s3", "sftp"):
        return open_storage(request.getfixturevalue(f"{kind}_url"))
    if kind == "faulty":  # declared faults: none
        return FaultyStorage(open_storage(str(tmp_path / "target")))
    if kind == "retrying":  # one call in five fails before reaching the target, and is retried
        flaky = FaultyStorage(open_storage(f"memory://fogvault-test/{uuid.uuid4().hex}"), seed=7)
        flaky.inject("*", Fault(error=transient(), fraction=0.2, times=None))
        return RetryingStorage(flaky, attempts=12, base_delay=0.0005, max_delay=0.002)
    raise ValueError(kind)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    target = make_storage(request.param, request, tmp_path)
    target.create()
    yield target
    target.close()
