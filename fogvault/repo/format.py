"""Vocabulary of the on-disk format (docs/format.md): object names, types and associated data.

Everything that decides how bytes are laid out on a target and bound together by
authentication lives here or in the codec modules beside it (pack, index, objects), never in
the engine.
"""

from __future__ import annotations

from enum import IntEnum

from fogvault.errors import MalformedObject

FORMAT_VERSION = 1
ID_HEX_LEN = 64
UID_HEX_LEN = 16
AAD_PREFIX = b"fogvault\x00"


class BlobType(IntEnum):
    DATA = 0
    TREE = 1


class ObjectKind:
    """The context strings bound into every encrypted object's associated data."""

    BLOB = b"blob"
    PACK_HEADER = b"pack-header"
    INDEX = b"index"
    SNAPSHOT = b"snapshot"
    CONFIG = b"config"
    KEY = b"key"
    LOCK = b"lock"


def aad(kind: bytes, ident: bytes = b"") -> bytes:
    """``"fogvault" 0x00 kind 0x00 ident``: binds a ciphertext to what it is and its name."""
    return AAD_PREFIX + kind + b"\x00" + ident


def blob_aad(blob_type: BlobType, blob_id: bytes) -> bytes:
    return aad(ObjectKind.BLOB, bytes([blob_type]) + blob_id)


CONFIG_NAME = "config"
KEYS_DIR = "keys/"
DATA_DIR = "data/"
INDEX_DIR = "index/"
SNAPSHOTS_DIR = "snapshots/"
LOCKS_DIR = "locks/"


def pack_name(pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"{DATA_DIR}{h[:2]}/{h}"


def index_name(index_id: bytes) -> str:
    return f"{INDEX_DIR}{index_id.hex()}"


def snapshot_name(uid: str) -> str:
    return f"{SNAPSHOTS_DIR}{uid}"


def key_name(key_id: str) -> str:
    return f"{KEYS_DIR}{key_id}"


def lock_name(lock_id: str) -> str:
    return f"{LOCKS_DIR}{lock_id}"


def parse_hex_id(text: str, length: int = ID_HEX_LEN) -> bytes:
    """Parse a lowercase hex id of exactly ``length`` characters."""
    if len(text) != length or text != text.lower():
        raise MalformedObject(f"not an id: {text!r}")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise MalformedObject(f"not an id: {text!r}") from exc
    if len(raw) * 2 != length:  # fromhex skips whitespace between pairs
        raise MalformedObject(f"not an id: {text!r}")
    return raw


def id_from_name(name: str) -> bytes:
    """The id in the last segment of a pack or index object name."""
    return parse_hex_id(name.rsplit("/", 1)[-1])


def pack_id_from_name(name: object) -> bytes | None:
    """The id of the pack called ``name`` (exactly as :func:`pack_name` spells it), or None
    for any other name."""
    if not isinstance(name, str) or len(name) != len(DATA_DIR) + 3 + ID_HEX_LEN:
        return None
    try:
        pack_id = bytes.fromhex(name[-ID_HEX_LEN:])
    except ValueError:
        return None
    return pack_id if pack_name(pack_id) == name else None
