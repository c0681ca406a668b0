"""Every decoder of untrusted bytes either decodes or raises a FogVault error: never another
exception, never a crash. Inputs are random bytes and mutations of valid encodings."""

from __future__ import annotations

import contextlib
import json
import os
import struct
from functools import partial

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogvault.compression import pack_payload, unpack_payload
from fogvault.crypto import MasterKey, content_hash, keyed_id
from fogvault.errors import FogVaultError
from fogvault.repo.config import RepoConfig
from fogvault.repo.format import BlobType
from fogvault.repo.index import IndexFile
from fogvault.repo.keys import KeyFile
from fogvault.repo.lock import LockInfo
from fogvault.repo.pack import PackBuilder, PackEntry, seal_blob, verify_pack
from fogvault.repo.snapshot import Snapshot, new_uid, now
from fogvault.repo.tree import DIR, FILE, Node, Tree

KEY = MasterKey.generate()
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _decodes_or_fogvault_error(decode, data) -> None:
    with contextlib.suppress(FogVaultError):
        decode(data)


def _mutations(valid: bytes):
    """Random bytes, and the valid encoding with bytes flipped, cut or appended."""
    flips = st.lists(st.tuples(st.integers(0, max(0, len(valid) - 1)), st.integers(1, 255)),
                     max_size=6)
    return st.one_of(
        st.binary(max_size=2048),
        flips.map(lambda fs: _flip(valid, fs)),
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
        st.binary(max_size=64).map(lambda tail: valid + tail),
    )


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, mask in flips:
        if out:
            out[position % len(out)] ^= mask
    return bytes(out)


def _valid_pack() -> bytes:
    builder = PackBuilder(BlobType.DATA)
    for data in (b"a" * 100, os.urandom(300)):
        blob_id = keyed_id(KEY.identity, data)
        builder.add(blob_id, seal_blob(KEY.encryption, BlobType.DATA, blob_id, data, 3), len(data))
    return bytes(builder.finish(KEY.encryption)[1])


def _valid_index() -> bytes:
    entries = [PackEntry(BlobType.DATA, os.urandom(32), i * 100, 100, 90) for i in range(3)]
    return IndexFile({os.urandom(32): entries}, [os.urandom(32)]).encode()


def _valid_tree() -> bytes:
    return Tree([
        Node(b"d", DIR, subtree=os.urandom(32), mtime_ns=-5),
        Node(b"\xff", FILE, content=[os.urandom(32)], xattrs=[(b"user.x", b"1")]),
    ]).encode()


SNAPSHOT_UID = new_uid()


def _valid_snapshot() -> bytes:
    return Snapshot(uid=SNAPSHOT_UID, time=now(), host="h", user="u", paths=["/a"],
                    tree=os.urandom(32), parent=new_uid()).encode()


@FUZZ
@given(_mutations(_valid_pack()))
def test_pack_parser(data):
    for piece in (64, 1 << 20):  # smaller than its blobs, and whole
        _decodes_or_fogvault_error(partial(_verify_named_by_its_hash, piece=piece), data)


def _verify_named_by_its_hash(data: bytes, piece: int) -> None:
    """As a writer that names a damaged pack by its hash would have it checked: past the hash,
    to the header and the blobs."""
    verify_pack(content_hash(data), len(data), lambda offset, length: data[offset:][:length],
                (KEY.encryption, KEY.identity), piece=piece)


@FUZZ
@given(_mutations(_valid_index()))
def test_index_decoder(data):
    _decodes_or_fogvault_error(IndexFile.decode, data)


@FUZZ
@given(_mutations(_valid_tree()))
def test_tree_decoder(data):
    _decodes_or_fogvault_error(Tree.decode, data)


@FUZZ
@given(_mutations(_valid_snapshot()))
def test_snapshot_decoder(data):
    _decodes_or_fogvault_error(lambda d: Snapshot.decode(d, SNAPSHOT_UID), data)


@FUZZ
@given(_mutations(RepoConfig().encode()))
def test_config_decoder(data):
    _decodes_or_fogvault_error(RepoConfig.decode, data)


@FUZZ
@given(_mutations(LockInfo("0" * 16, True, "h", 1, "u", now(), now()).encode()))
def test_lock_decoder(data):
    _decodes_or_fogvault_error(lambda d: LockInfo.decode("0" * 16, d), data)


@FUZZ
@given(_mutations(pack_payload(b"text " * 500, 3)), st.integers(0, 10_000))
def test_payload_decoder(data, limit):
    _decodes_or_fogvault_error(lambda d: unpack_payload(d, limit), data)


@FUZZ
@given(st.dictionaries(
    st.sampled_from(["version", "kdf", "master_key", "created", "host", "user"]),
    st.one_of(st.none(), st.integers(-5, 2**70), st.text(max_size=30), st.booleans(),
              st.dictionaries(st.sampled_from(["algorithm", "opslimit", "memlimit", "salt"]),
                              st.one_of(st.integers(-1, 2**64), st.text(max_size=30))))))
def test_key_file_decoder_and_unlock(doc):
    """Structured junk in a key file: decoding, then unlocking, fails only with FogVault
    errors, and absurd KDF parameters are refused before libsodium allocates anything."""
    def decode_and_unlock(raw: bytes) -> None:
        KeyFile.decode("00" * 8, raw).unlock(b"pw")

    _decodes_or_fogvault_error(decode_and_unlock, json.dumps(doc).encode())


def test_zstd_bomb_is_refused_without_allocating():
    bomb = pack_payload(b"\0" * (64 * 1024 * 1024), 3)
    assert len(bomb) < 64 * 1024
    try:
        unpack_payload(bomb, 1024)
    except FogVaultError:
        return
    raise AssertionError("a 64 MiB frame was accepted under a 1 KiB limit")


def test_index_counts_cannot_force_allocation():
    huge = b"FVIX\x01" + struct.pack("<I", 0) + struct.pack("<I", 2**32 - 1)
    _decodes_or_fogvault_error(IndexFile.decode, huge)
