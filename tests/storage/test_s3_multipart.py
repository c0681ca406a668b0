"""Multipart uploads on a real Ceph RGW: resumable, verified part by part, never visible before
they are complete, cleaned up when abandoned. Objects of 5 MiB or more go multipart here
(``multipart_threshold="5M"``), in 5 MiB parts, S3's smallest."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from fogvault.errors import UsageError
from fogvault.storage import (
    ObjectExists,
    ObjectNotFound,
    RetryingStorage,
    TransientStorageError,
    open_storage,
)
from fogvault.storage.fsspec_store import S3Storage, multipart_settings
from fogvault.storage.s3_multipart import (
    MIN_PART_SIZE,
    multipart_etag,
    part_size_for,
    split_parts,
)

MiB = 1 << 20
SMALL_PARTS = {"multipart_threshold": "5M", "part_size": "5M"}


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def s3(s3_url: str) -> S3Storage:
    storage = open_storage(s3_url, **SMALL_PARTS)
    assert isinstance(storage, S3Storage)
    storage.create()
    return storage


def intercept(storage: S3Storage, monkeypatch: pytest.MonkeyPatch,
              before: Callable[[str, dict[str, Any]], None]) -> list[str]:
    """Route the storage's S3 calls through ``before(method, kwargs)``; return the call log."""
    real = storage._call
    calls: list[str] = []

    def call(method: str, **kwargs: Any) -> dict[str, Any]:
        calls.append(method)
        before(method, kwargs)
        return real(method, **kwargs)

    monkeypatch.setattr(storage, "_call", call)
    return calls


# ----------------------------------------------------------------------------- settings


def test_settings_come_from_options_then_environment_then_defaults() -> None:
    assert multipart_settings({}, {}) == (64 * MiB, 16 * MiB)
    env = {"FOGVAULT_S3_MULTIPART_THRESHOLD": "100M", "FOGVAULT_S3_PART_SIZE": "8M"}
    assert multipart_settings({}, env) == (100 * MiB, 8 * MiB)
    options = {"multipart_threshold": 6 * MiB, "part_size": "7M"}
    assert multipart_settings(options, env) == (6 * MiB, 7 * MiB)
    assert options == {}  # popped: s3fs never sees them


def test_parts_below_s3s_minimum_are_refused() -> None:
    """A usage error (exit 2) that names the option or the variable (it was exit 1); an empty
    variable counts as unset."""
    with pytest.raises(UsageError, match=r"^part_size='1M': use a size of at least 5M"):
        multipart_settings({"part_size": "1M"}, {})
    env = {"FOGVAULT_S3_MULTIPART_THRESHOLD": "lots", "FOGVAULT_S3_PART_SIZE": ""}
    with pytest.raises(UsageError, match=r"^FOGVAULT_S3_MULTIPART_THRESHOLD='lots': use a size"):
        multipart_settings({}, env)
    assert multipart_settings({}, {"FOGVAULT_S3_PART_SIZE": " "}) == (64 * MiB, 16 * MiB)


def test_parts_grow_to_stay_within_ten_thousand() -> None:
    parts = split_parts(bytes(MIN_PART_SIZE * 3 + 1), MIN_PART_SIZE)
    assert [p.end - p.start for p in parts] == [MIN_PART_SIZE] * 3 + [1]
    assert [p.number for p in parts] == [1, 2, 3, 4]
    assert part_size_for(100 * MiB, 1 * MiB) == MIN_PART_SIZE
    big = 50 * 1024**3  # 10,240 parts of 5 MiB: too many, so the parts grow
    assert -(-big // part_size_for(big, MIN_PART_SIZE)) == 10_000


# ----------------------------------------------------------------------------- the real server


def test_a_large_object_is_uploaded_in_verified_parts(s3: S3Storage, monkeypatch) -> None:
    data = payload(12 * MiB + 7, seed=1)
    calls = intercept(s3, monkeypatch, lambda method, kwargs: None)
    s3.write("data/big", data)
    assert calls.count("upload_part") == 3
    assert calls.count("complete_multipart_upload") == 1
    assert s3.read("data/big") == data
    assert s3.stat("data/big").size == len(data)
    boundary = 5 * MiB - 10  # a ranged read across the first part boundary
    assert s3.read("data/big", boundary, 20) == data[boundary:boundary + 20]
    head = s3.fs.call_s3("head_object", Bucket=s3.bucket, Key=s3._key("data/big"))
    assert head["ETag"] == multipart_etag(split_parts(data, 5 * MiB))
    assert s3.incomplete_uploads() == []


def test_small_objects_stay_single_puts(s3: S3Storage, monkeypatch) -> None:
    calls = intercept(s3, monkeypatch, lambda method, kwargs: None)
    s3.write("data/small", payload(5 * MiB - 1, seed=2))
    assert "create_multipart_upload" not in calls


def test_create_only_multipart_write_keeps_the_existing_object(s3: S3Storage) -> None:
    first, second = payload(6 * MiB, seed=3), payload(6 * MiB, seed=4)
    s3.write("data/taken", first)
    with pytest.raises(ObjectExists):
        s3.write("data/taken", second)
    assert s3.read("data/taken") == first
    s3.write("data/taken", second, overwrite=True)
    assert s3.read("data/taken") == second
    assert s3.incomplete_uploads() == []


def test_a_part_damaged_on_the_way_is_refused_by_the_server(s3: S3Storage, monkeypatch) -> None:
    """Content-MD5 makes the server check every part: a flipped byte is BadDigest (transient),
    and the retry sends that part again, reusing the parts already stored."""
    data = payload(11 * MiB, seed=5)
    damaged = []

    def flip_second_part_once(method: str, kwargs: dict[str, Any]) -> None:
        if method == "upload_part" and kwargs["PartNumber"] == 2 and not damaged:
            body = bytearray(kwargs["Body"])
            body[1000] ^= 0xFF
            kwargs["Body"] = bytes(body)
            damaged.append(True)

    calls = intercept(s3, monkeypatch, flip_second_part_once)
    with pytest.raises(TransientStorageError, match="BadDigest"):
        s3.write("data/flipped", data)
    with pytest.raises(ObjectNotFound):
        s3.stat("data/flipped")  # nothing visible
    assert s3.incomplete_uploads() == ["data/flipped"]
    calls.clear()
    report = s3.write_multipart("data/flipped", data)
    assert (report.reused, report.uploaded) == (1, 2)  # part 1 kept; 2 and 3 sent
    assert calls.count("create_multipart_upload") == 0  # the same upload, continued
    assert s3.read("data/flipped") == data
    assert s3.incomplete_uploads() == []


def test_a_stored_part_with_other_bytes_is_uploaded_again(s3: S3Storage) -> None:
    """Resuming compares every stored part's ETag with the MD5 of the bytes it should hold."""
    data = payload(11 * MiB, seed=6)
    key = s3._key("data/mixed")
    upload = s3.fs.call_s3("create_multipart_upload", Bucket=s3.bucket, Key=key)["UploadId"]
    for number, body in ((1, data[:5 * MiB]), (2, payload(5 * MiB, seed=99))):
        s3.fs.call_s3("upload_part", Bucket=s3.bucket, Key=key, UploadId=upload,
                      PartNumber=number, Body=body)  # fmt: skip
    report = s3.write_multipart("data/mixed", data)
    assert report.upload_id == upload
    assert (report.reused, report.uploaded) == (1, 2)
    assert s3.read("data/mixed") == data


def test_an_upload_aborted_meanwhile_is_a_transient_error(s3: S3Storage, monkeypatch) -> None:
    data = payload(11 * MiB, seed=7)
    aborted = []

    def abort_once_before_the_last_part(method: str, kwargs: dict[str, Any]) -> None:
        if method == "upload_part" and kwargs["PartNumber"] == 3 and not aborted:
            aborted.append(s3.remove_incomplete(older_than=-60))  # a clean-up elsewhere

    intercept(s3, monkeypatch, abort_once_before_the_last_part)
    with pytest.raises(TransientStorageError, match="aborted"):
        s3.write("data/aborted", data)
    RetryingStorage(s3, attempts=2, base_delay=0).write("data/aborted", data)
    assert aborted == [1]
    assert s3.read("data/aborted") == data


def test_a_killed_upload_is_invisible_and_the_next_write_resumes(s3: S3Storage, s3_url) -> None:
    """A real process SIGKILLed after two of three parts: no object, a pending upload; a new
    process writing the same bytes (as repair does) sends only the missing part."""
    child = textwrap.dedent(f"""
        import os, random, signal
        from fogvault.storage import open_storage
        storage = open_storage({s3_url!r}, **{SMALL_PARTS!r})
        real, sent = storage._call, []
        def call(method, **kwargs):
            if method == "upload_part":
                if len(sent) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
                sent.append(kwargs["PartNumber"])
            return real(method, **kwargs)
        storage._call = call
        storage.write("data/killed", random.Random(8).randbytes(12 * {MiB}))
    """)
    result = subprocess.run([sys.executable, "-c", child], env=os.environ, timeout=120)
    assert result.returncode == -9
    with pytest.raises(ObjectNotFound):
        s3.stat("data/killed")
    assert [o.name for o in s3.list("data/")] == []
    assert s3.incomplete_uploads() == ["data/killed"]

    report = s3.write_multipart("data/killed", payload(12 * MiB, seed=8))
    assert (report.reused, report.uploaded) == (2, 1)
    assert s3.read("data/killed") == payload(12 * MiB, seed=8)
    assert s3.incomplete_uploads() == []


def test_remove_incomplete_aborts_only_old_uploads_of_this_target(s3: S3Storage, s3_url) -> None:
    other = open_storage(f"{s3_url}-other", **SMALL_PARTS)
    for storage in (s3, other):
        storage.fs.call_s3("create_multipart_upload", Bucket=storage.bucket,
                           Key=storage._key("data/abandoned"))  # fmt: skip
    assert s3.remove_incomplete(older_than=3600) == 0  # young: may be a running writer's
    assert s3.incomplete_uploads() == ["data/abandoned"]
    assert s3.remove_incomplete(older_than=-60) == 1
    assert s3.incomplete_uploads() == []
    assert other.incomplete_uploads() == ["data/abandoned"]  # another prefix: not ours
    assert other.remove_incomplete(older_than=-60) == 1
