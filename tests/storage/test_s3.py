"""What is particular to s3:// targets: settings from options and the environment, buckets,
server-enforced create-only writes, and errors. Runs against the real Ceph RGW of conftest."""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from fogvault.errors import UsageError
from fogvault.storage import (
    ObjectExists,
    ObjectNotFound,
    PermanentStorageError,
    TransientStorageError,
    open_storage,
)
from fogvault.storage.fsspec_store import DEFAULT_STALL_TIMEOUT, S3Storage, s3_options
from tests.storage.s3_link import Link

MiB = 1 << 20


# ----------------------------------------------------------------------------- settings


def test_options_come_from_the_environment_with_rgw_friendly_defaults() -> None:
    env = {"AWS_ENDPOINT_URL": "http://aws-wide:1", "FOGVAULT_S3_ENDPOINT": "http://ours:2",
           "AWS_DEFAULT_REGION": "eu-west-3"}  # fmt: skip
    opts = s3_options({}, env)
    assert opts["endpoint_url"] == "http://ours:2"
    assert opts["use_listings_cache"] is False
    config = opts["config_kwargs"]
    assert config["region_name"] == "eu-west-3"
    assert config["s3"] == {"addressing_style": "path"}
    assert config["request_checksum_calculation"] == "when_required"
    assert config["response_checksum_validation"] == "when_required"
    assert "client_kwargs" not in opts  # a region there would become a LocationConstraint


def test_explicit_options_win_over_the_environment() -> None:
    env = {"FOGVAULT_S3_ENDPOINT": "http://env:1", "AWS_REGION": "eu-west-3"}
    opts = s3_options({"endpoint_url": "http://given:2", "key": "k",
                       "config_kwargs": {"region_name": "us-west-2"}}, env)  # fmt: skip
    assert opts["endpoint_url"] == "http://given:2"
    assert opts["key"] == "k"
    assert opts["config_kwargs"]["region_name"] == "us-west-2"
    assert opts["config_kwargs"]["s3"] == {"addressing_style": "path"}  # defaults kept


def test_aws_itself_needs_no_endpoint_and_keeps_virtual_hosts() -> None:
    opts = s3_options({}, {})
    assert "endpoint_url" not in opts
    assert opts["config_kwargs"]["s3"] == {"addressing_style": "auto"}
    assert opts["config_kwargs"]["region_name"] == "us-east-1"


@pytest.mark.parametrize(("options", "env", "message"), [
    ({}, {"FOGVAULT_S3_ADDRESSING": "bogus"},
     "FOGVAULT_S3_ADDRESSING='bogus': use path, virtual or auto"),
    ({}, {"FOGVAULT_S3_ENDPOINT": "notaurl"},
     "FOGVAULT_S3_ENDPOINT='notaurl': use an http:// or https:// URL"),
    ({}, {"AWS_ENDPOINT_URL": "ftp://h"}, "AWS_ENDPOINT_URL='ftp://h': use an http://"),
    ({"endpoint_url": "h:9000"}, {}, "endpoint_url 'h:9000': use an http:// or https:// URL"),
])
def test_a_bad_endpoint_or_addressing_style_is_a_usage_error_naming_its_source(
        options, env, message) -> None:
    """botocore refused them with its own message (exit 1), naming neither the variable nor
    the option."""
    with pytest.raises(UsageError, match=re.escape(message)):
        s3_options(options, env)


def test_a_url_without_bucket_is_refused() -> None:
    with pytest.raises(UsageError, match="no bucket"):  # bad input, exit 2
        open_storage("s3:///prefix")


# ----------------------------------------------------------------------------- the real server


def test_explicit_options_without_any_environment(s3_url, s3_server, monkeypatch) -> None:
    for key in ("FOGVAULT_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY"):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
    settings = s3_server.settings
    storage = open_storage(
        s3_url,
        endpoint_url=settings["FOGVAULT_S3_ENDPOINT"],
        key=settings["AWS_ACCESS_KEY_ID"],
        secret=settings["AWS_SECRET_ACCESS_KEY"],
    )
    storage.create()
    storage.write("x", b"explicit")
    assert storage.read("x") == b"explicit"


def test_create_makes_the_bucket_once(s3_env) -> None:
    bucket = f"fogvault-new-{uuid.uuid4().hex[:8]}"
    storage = open_storage(f"s3://{bucket}/repo")
    storage.create()
    storage.create()
    storage.write("config", b"1")
    assert [info.name for info in storage.list()] == ["config"]
    assert storage.url == f"s3://{bucket}/repo"


def test_in_a_missing_bucket_no_object_is_there_but_listing_and_writing_fail(s3_env) -> None:
    """Reading or stat-ing an object in a bucket that does not exist: the object is not there
    (so a new bucket is a target without a repository, where 'run --init' creates one). A
    listing must never pass for an empty target, nor a write or delete for done."""
    bucket = f"fogvault-missing-{uuid.uuid4().hex[:8]}"
    storage = open_storage(f"s3://{bucket}/repo")
    for read in (lambda: storage.read("config"), lambda: storage.read("config", 0, 10),
                 lambda: storage.read("config", 0, 0), lambda: storage.stat("keys/a")):
        with pytest.raises(ObjectNotFound, match=f"bucket {bucket} does not exist"):
            read()
    assert not storage.exists("config")
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        storage.write("config", b"1")
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        list(storage.list())
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        list(storage.list("keys/"))
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        storage.delete("config")
    storage.create()  # the bucket now exists: the same calls find an empty target
    with pytest.raises(ObjectNotFound, match=r"no such object$"):
        storage.read("config")
    assert list(storage.list()) == []


def test_wrong_credentials_are_a_permanent_error(s3_url, s3_env) -> None:
    storage = open_storage(s3_url, key=s3_env["AWS_ACCESS_KEY_ID"], secret="not-the-secret")
    with pytest.raises(PermanentStorageError, match="HTTP 403"):
        storage.write("x", b"1")


def test_an_unreachable_endpoint_is_a_transient_error(s3_url) -> None:
    storage = open_storage(
        s3_url,
        endpoint_url="http://127.0.0.1:9",  # discard: nothing listens
        config_kwargs={"retries": {"max_attempts": 1}},
    )
    with pytest.raises(TransientStorageError):
        storage.read("x")


def through_link(s3_url: str, s3_env: dict[str, str], **link: float) -> tuple[Link, Any]:
    """A Link to the test server and a storage on ``s3_url`` through it, with a stall limit
    of 1 s, one attempt per botocore call and small multipart parts."""
    endpoint = urlsplit(s3_env["FOGVAULT_S3_ENDPOINT"])
    proxy = Link((endpoint.hostname, endpoint.port), **link)
    storage = open_storage(
        s3_url, endpoint_url=proxy.url, stall_timeout=1, multipart_threshold="10M",
        part_size="5M", config_kwargs={"retries": {"max_attempts": 1}},
    )
    return proxy, storage


def outcome_within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """The exception ``call`` raises (None if it returns), failing the test if it is still
    waiting after ``seconds`` (a bound for a failing test, not a synchronisation)."""
    outcome: list[BaseException | None] = []
    worker = threading.Thread(target=lambda: outcome.append(_attempt(call)), daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert not worker.is_alive(), "the request hung on a silent server"
    return outcome[0]


@pytest.mark.parametrize("size", [8 * MiB, 12 * MiB], ids=["put", "multipart"])
def test_an_upload_to_a_server_gone_silent_fails_once_it_stops_moving(s3_url, s3_env, size
                                                                       ) -> None:
    """botocore's read timeout starts only once the body is sent: without the stall limit an
    upload whose server went silent waited forever. It fails as a transient error (retried,
    then the target dropped). The multipart upload goes silent in its first part."""
    proxy, storage = through_link(s3_url, s3_env, silent_after=2 * MiB)
    try:
        storage.create()
        failure = outcome_within(50, lambda: storage.write("x", bytes(size)))
    finally:
        proxy.close()
    assert proxy.silent.is_set()
    assert isinstance(failure, TransientStorageError), failure
    assert "no data moved for 1 s" in str(failure)


@pytest.mark.parametrize("operation", ["read", "ranged read", "stat", "list", "delete"])
def test_a_request_to_a_server_gone_silent_fails_in_the_stall_limit(s3_url, s3_env, operation
                                                                    ) -> None:
    """Without a body, botocore's read timeout (60 s) bounded each attempt, but botocore's and
    s3fs's retries multiplied it: a read of a silent server took many minutes."""
    open_storage(s3_url).create()
    open_storage(s3_url).write("data/x", bytes(3 * MiB))
    proxy, storage = through_link(s3_url, s3_env, silent_after=1)
    calls = {"read": lambda: storage.read("data/x"),
             "ranged read": lambda: storage.read("data/x", 1, 5),
             "stat": lambda: storage.stat("data/x"),
             "list": lambda: list(storage.list("data/")),
             "delete": lambda: storage.delete("data/x")}  # fmt: skip
    try:
        failure = outcome_within(50, calls[operation])
    finally:
        proxy.close()
    assert isinstance(failure, TransientStorageError), failure
    assert "no data moved for 1 s" in str(failure)


@pytest.mark.parametrize("size", [8 * MiB, 12 * MiB], ids=["put", "multipart"])
def test_a_slow_upload_that_keeps_moving_is_not_given_up(s3_url, s3_env, size) -> None:
    """At 4 MiB/s an upload takes 2-3 s, longer than the 1 s stall limit, but moves all the
    time. On http:// botocore reads the whole body once to sign it before it sends it: had
    progress been the furthest byte read, the send would have looked stalled."""
    proxy, storage = through_link(s3_url, s3_env, rate=4 * MiB)
    data = os.urandom(size)
    try:
        storage.create()
        storage.write("data/ab/slow", data)
    finally:
        proxy.close()
    assert open_storage(s3_url).read("data/ab/slow") == data


def test_reads_through_the_stall_guard_return_the_bytes_asked_for(s3_url) -> None:
    storage = open_storage(s3_url)
    storage.create()
    data = os.urandom(3 * MiB + 5)
    storage.write("data/x", data)
    assert storage.read("data/x") == data
    assert storage.read("data/x", 7) == data[7:]
    assert storage.read("data/x", MiB, 10) == data[MiB : MiB + 10]
    assert storage.read("data/x", len(data) + 1) == b""  # past the end: an empty short read


def _attempt(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except BaseException as exc:
        return exc
    return None


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_stall_timeout_that_is_not_a_number_of_seconds_is_refused(value, monkeypatch) -> None:
    """A usage error (exit 2) that names the variable or the option, as a bad
    FOGVAULT_RETRY_DELAY is: it was a storage error (exit 1) naming the option alone."""
    monkeypatch.setenv("FOGVAULT_S3_STALL_TIMEOUT", value)
    with pytest.raises(UsageError, match=f"^FOGVAULT_S3_STALL_TIMEOUT='{value}': use a number"):
        open_storage("s3://bucket/prefix", endpoint_url="http://127.0.0.1:9")
    monkeypatch.delenv("FOGVAULT_S3_STALL_TIMEOUT")
    with pytest.raises(UsageError, match=r"^stall_timeout="):  # not the default
        open_storage("s3://bucket/prefix", endpoint_url="http://127.0.0.1:9",
                     stall_timeout=float(value) if value != "soon" else value)


def test_an_empty_stall_timeout_variable_counts_as_unset(monkeypatch) -> None:
    monkeypatch.setenv("FOGVAULT_S3_STALL_TIMEOUT", "")
    storage = open_storage("s3://bucket/prefix", endpoint_url="http://127.0.0.1:9")
    assert isinstance(storage, S3Storage) and storage.stall_timeout == DEFAULT_STALL_TIMEOUT


def test_create_only_without_if_none_match_still_refuses_a_taken_name(s3_url) -> None:
    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    storage._conditional_put = False  # as after a server answered 501 to If-None-Match
    storage.write("a", b"first")
    with pytest.raises(ObjectExists):
        storage.write("a", b"second")
    assert storage.read("a") == b"first"


@pytest.mark.slow
def test_below_the_threshold_an_object_is_one_put_even_where_s3fs_would_split(s3_url) -> None:
    # s3fs itself switches to multipart above 100 MiB; FogVault decides by its own threshold
    storage = open_storage(s3_url, multipart_threshold="200M")
    assert isinstance(storage, S3Storage)
    storage.create()  # the bucket, when this test runs first
    data = bytes(101 * MiB)
    storage.write("packs/big", data)
    with pytest.raises(ObjectExists):
        storage.write("packs/big", b"small")
    info = storage.fs.info(f"{storage.root}/packs/big")
    assert "-" not in info["ETag"]  # a multipart upload's ETag is "<md5>-<parts>"
    assert info["size"] == len(data)


def test_targets_in_one_bucket_do_not_see_each_other(s3_url) -> None:
    bucket_url = s3_url.rsplit("/", 1)[0]
    first, second = open_storage(f"{bucket_url}/first"), open_storage(f"{bucket_url}/first-too")
    first.create()
    first.write("only-here", b"1")
    assert list(second.list()) == []
    assert [info.name for info in first.list()] == ["only-here"]


def test_a_listing_is_fetched_one_page_at_a_time(s3_url, monkeypatch) -> None:
    """The first names come after one ListObjectsV2 page, not after the whole listing (s3fs's
    ``find`` holds every object's details first); the pages still give every name once."""
    from concurrent.futures import ThreadPoolExecutor

    storage = open_storage(s3_url)
    storage.create()
    wanted = [f"data/{i % 3}/{i:04d}" for i in range(250)] + ["keys/k", "data-not/x"]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda name: storage.write(name, b"x"), wanted))
    storage.fs.pipe_file(f"{storage.root}/data/0/", b"")  # a "folder" key another tool made
    folder_key = storage._key("") + "data/0/"
    raw = storage.fs.call_s3("list_objects_v2", Bucket=storage.bucket, Prefix=folder_key)
    assert raw["Contents"][0]["Key"] == folder_key
    pages = []
    call_s3 = storage._call

    def counted(method, **request):  # pages of 100 keys: the test RGW's limit once asked
        pages.append(request.get("ContinuationToken"))
        return call_s3(method, MaxKeys=100, **request)

    monkeypatch.setattr(storage, "_call", counted)
    listing = storage.list("data/")
    first = next(listing)
    assert len(pages) == 1 and pages[0] is None
    found = [first.name, *(info.name for info in listing)]
    assert sorted(found) == sorted(name for name in wanted if name.startswith("data/"))
    assert len(pages) == 3 and all(pages[1:])


@pytest.mark.parametrize("token", [None, "same"])
def test_a_truncated_listing_without_a_new_token_is_an_error_not_a_loop(s3_url, monkeypatch,
                                                                         token) -> None:
    """A server that says a page is truncated but gives no continuation token, or the same one
    again, would end the listing early or never end it."""
    storage = open_storage(s3_url)
    storage.create()
    storage.write("data/a", b"x")
    call_s3 = storage._call

    def cut_short(method, ContinuationToken=None, **request):
        page = call_s3(method, **request)  # the real first page, whatever the token
        return {**page, "IsTruncated": True, "NextContinuationToken": token}

    monkeypatch.setattr(storage, "_call", cut_short)
    listing = storage.list("data/")
    if token == "same":
        assert next(listing).name == "data/a"  # the first page, then the same token back
    with pytest.raises(PermanentStorageError, match="cut the listing short"):
        list(listing)


def test_every_put_carries_content_md5_and_a_damaged_body_is_refused(s3_url) -> None:
    import base64
    import hashlib

    from fogvault.storage.fsspec_store import classify

    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    storage.write("a", b"payload")  # with its Content-MD5: accepted
    info = storage.fs.info(f"{storage.root}/a")
    assert info["ETag"].strip('"') == hashlib.md5(b"payload").hexdigest()
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(Exception) as caught:  # what a body damaged on the way looks like
        storage.fs.pipe_file(f"{storage.root}/b", b"payload", ContentMD5=wrong)
    assert classify(caught.value) is TransientStorageError  # BadDigest: worth sending again
    assert not storage.exists("b")


def test_a_pack_view_is_sent_without_a_copy_of_it(s3_url) -> None:
    """Packs reach ``write`` as views of their memory maps (repo/pack.py). botocore takes bytes
    or a file object, not a view, and copying each 16 MiB pack into bytes cost that much memory
    again per S3 target and upload in flight; read through a file object, the pack never has a
    copy in the Python heap."""
    import os
    import tracemalloc

    from fogvault.heap import zeroed_map

    storage = open_storage(s3_url)
    storage.create()
    data = os.urandom(24 * MiB)
    mapped = zeroed_map(len(data))
    mapped[:] = data
    tracemalloc.start()
    try:
        storage.write("packs/view", memoryview(mapped))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB
    assert storage.read("packs/view") == data


def test_ctrl_c_during_a_stalled_upload_stops_the_backup_soon(s3_url, s3_env, cli_env,
                                                              tmp_path) -> None:
    """The S3 target goes silent in the middle of a pack. Ctrl-C used to wait out the stall
    limit on every retry (here 60 s each); now the hanging request ends within seconds, no
    target retries, and the backup exits 130."""
    import signal
    import subprocess
    import sys

    proxy, _ = through_link(s3_url, s3_env, silent_after=1 * MiB)
    env = {**cli_env, "FOGVAULT_S3_ENDPOINT": proxy.url, "FOGVAULT_S3_STALL_TIMEOUT": "60"}
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big").write_bytes(os.urandom(8 * MiB))
    command = [sys.executable, "-m", "fogvault", "-r", str(tmp_path / "local"), "-r", s3_url]
    try:
        init = subprocess.run([*command, "init", "--kdf", "interactive"], env=env,
                              capture_output=True, cwd=tmp_path, timeout=120)
        assert init.returncode == 0, init.stderr
        backup = subprocess.Popen([*command, "backup", "src"], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proxy.silent.wait(timeout=60), "the upload never started"
            backup.send_signal(signal.SIGINT)
            _, stderr = backup.communicate(timeout=30)  # the bound is the test: 60 s before
        finally:
            backup.kill()
            backup.wait()
    finally:
        proxy.close()
    assert backup.returncode == 130, stderr
