"""Fixtures for the storage tests: one Storage per backend and wrapper.

The real servers (``s3_server``, ``sftp_server``, ``s3_url``, ``sftp_url``) are fixtures of
tests/conftest.py, shared with the multi-target tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fogvault.storage import FaultyStorage, RetryingStorage, Storage, open_storage
from fogvault.storage.faulty import Fault, transient
from fogvault.storage.throttled import ThrottledStorage, TokenBucket

BACKENDS = ["local", "memory", "s3", "s3-multipart", "sftp", "faulty", "retrying", "throttled"]


def make_storage(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """A fresh, empty target of ``kind`` (one of BACKENDS)."""
    if kind == "local":
        return open_storage(str(tmp_path / "target"))
    if kind == "memory":
        return open_storage(f"memory://fogvault-test/{uuid.uuid4().hex}")
    if kind in ("s3", "sftp"):
        return open_storage(request.getfixturevalue(f"{kind}_url"))
    if kind == "s3-multipart":  # objects of 5 MiB or more go multipart, in 5 MiB parts
        return open_storage(request.getfixturevalue("s3_url"), multipart_threshold="5M",
                            part_size="5M")
    if kind == "faulty":  # declared faults: none
        return FaultyStorage(open_storage(str(tmp_path / "target")))
    if kind == "retrying":  # one call in five fails before reaching the target, and is retried
        flaky = FaultyStorage(open_storage(f"memory://fogvault-test/{uuid.uuid4().hex}"), seed=7)
        flaky.inject("*", Fault(error=transient(), fraction=0.2, times=None))
        return RetryingStorage(flaky, attempts=12, base_delay=0.0005, max_delay=0.002)
    if kind == "throttled":  # limits far above the suite's traffic: the contract, not the pace
        return ThrottledStorage(open_storage(str(tmp_path / "target")),
                                TokenBucket(1024**3), TokenBucket(1024**3))
    raise ValueError(kind)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    target = make_storage(request.param, request, tmp_path)
    target.create()
    yield target
    target.close()
