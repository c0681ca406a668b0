"""What is particular to s3:// targets: settings from options and the environment, buckets,
server-enforced create-only writes, and errors. Runs against the real Ceph RGW of conftest."""

from __future__ import annotations

import uuid

import pytest

from fogvault.storage import (
    ObjectExists,
    PermanentStorageError,
    TransientStorageError,
    open_storage,
)
from fogvault.storage.fsspec_store import S3Storage, s3_options

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


def test_a_url_without_bucket_is_refused() -> None:
    with pytest.raises(PermanentStorageError, match="no bucket"):
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


def test_a_missing_bucket_is_a_permanent_error_not_a_missing_object(s3_env) -> None:
    storage = open_storage(f"s3://fogvault-missing-{uuid.uuid4().hex[:8]}/repo")
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        storage.read("config")
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        storage.write("config", b"1")
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        list(storage.list())
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        storage.exists("config")
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        storage.delete("config")


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
    call_s3 = storage.fs.call_s3

    def counted(method, **request):  # pages of 100 keys: the test RGW's limit once asked
        pages.append(request.get("ContinuationToken"))
        return call_s3(method, MaxKeys=100, **request)

    monkeypatch.setattr(storage.fs, "call_s3", counted)
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
    call_s3 = storage.fs.call_s3

    def cut_short(method, ContinuationToken=None, **request):
        page = call_s3(method, **request)  # the real first page, whatever the token
        return {**page, "IsTruncated": True, "NextContinuationToken": token}

    monkeypatch.setattr(storage.fs, "call_s3", cut_short)
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
