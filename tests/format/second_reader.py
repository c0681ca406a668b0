"""A second, independent, read-only implementation of the FogVault repository format.

Written from docs/format.md alone (section numbers below are that document's), without the
reference implementation, to test the promise that the format document is enough. It reads one
local target (a folder): unlocks a key file (6), opens the config (15), lists snapshots (14),
loads the index (12), reads and verifies packs (11) and blobs (7-9, 17), walks trees (13) and
extracts a snapshot into a folder. ``file_blob_ids`` re-chunks a file as section 10 prescribes.

Only the primitive libraries are used: PyNaCl (XChaCha20-Poly1305, Argon2id), blake3 and
zstandard. Where the first version of this reader had to guess, the document now says
(format.md's change log, 2026-11-24); the comments cite the section.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import math
import os
import re
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import blake3
import nacl.bindings
import nacl.exceptions
import nacl.pwhash.argon2id
import zstandard

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024
MAX_BLOB = 512 * MiB  # §11 rule 4, §20
UID_RE = re.compile(r"[0-9a-f]{16}\Z")  # §4: uids
ID_RE = re.compile(r"[0-9a-f]{64}\Z")  # §4: content-hash names, blob ids
BLOB_TYPES = {0: "data", 1: "tree"}  # §11
NODE_TYPES = {"file", "dir", "symlink", "fifo", "chardev", "blockdev"}  # §13.3
STORED_FLAGS = 0x000380FF  # §13.6: the bits of `flags` that are set
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602  # §13.6 (x86-64, arm64)
SUMMARY_KEYS = {"files_new", "files_changed", "files_unchanged", "dirs", "files_failed",
                "bytes_read", "total_bytes", "data_blobs_added", "tree_blobs_added",
                "bytes_added", "duration_s"}  # §14: numbers if present


class FormatError(Exception):
    """Something in the repository breaks docs/format.md (malformed, unauthentic, unsafe)."""


def need(cond: object, what: str) -> None:
    if not cond:
        raise FormatError(what)


def is_int(v: object) -> bool:
    """A JSON integer: not a boolean, not a float (§6.3, §13.3, §15)."""
    return type(v) is int


def b64(s: object) -> bytes:
    """Standard base64 with padding (conventions)."""
    need(isinstance(s, str), "base64 field is not a string")
    try:
        return base64.b64decode(s, validate=True)
    except ValueError as exc:
        raise FormatError(f"bad base64: {exc}") from None


# ----------------------------------------------------------------------------- §3, §7, §8, §9


def content_hash(data: bytes) -> bytes:
    """Unkeyed BLAKE3-256: names packs and index files (§4)."""
    return blake3.blake3(data).digest()


def blob_id(k_id: bytes, plaintext: bytes) -> bytes:
    """Keyed BLAKE3 under K_id (§9)."""
    return blake3.blake3(plaintext, key=k_id).digest()


def ad(kind: str, ident: bytes = b"") -> bytes:
    """AD(kind, ident) = "fogvault" || 0x00 || kind || 0x00 || ident (§7.1)."""
    return b"fogvault\x00" + kind.encode("ascii") + b"\x00" + ident


def seal(key: bytes, plaintext: bytes, aad: bytes, nonce: bytes) -> bytes:
    """nonce (24) || ciphertext || tag (16) (§7). Only used here for the test vectors."""
    enc = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
    return nonce + enc(plaintext, aad, nonce, key)


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    need(len(sealed) >= 40, "sealed message shorter than 40 bytes")  # §7
    dec = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt
    try:
        return dec(sealed[24:], aad, sealed[:24], key)
    except nacl.exceptions.CryptoError:
        raise FormatError("authentication failed (wrong key, or damaged/moved data)") from None


def decode_payload(payload: bytes, max_size: int) -> bytes:
    """flag (1) || body; 0x00 raw, 0x01 one zstd frame with a content size (§8)."""
    need(len(payload) >= 1, "empty payload")
    flag, body = payload[0], payload[1:]
    if flag == 0:
        need(len(body) <= max_size, "raw payload over its size limit")
        return body
    need(flag == 1, f"unknown payload flag {flag}")
    try:
        declared = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise FormatError(f"bad zstd frame header: {exc}") from None
    need(declared >= 0, "zstd frame without a content size")
    need(declared <= max_size, "zstd content size over the limit")
    dobj = zstandard.ZstdDecompressor().decompressobj()
    try:  # libzstd stops at the declared content size and fails on a mismatch
        out = dobj.decompress(body)
    except zstandard.ZstdError as exc:
        raise FormatError(f"bad zstd frame: {exc}") from None
    need(dobj.eof, "truncated zstd frame")
    need(not dobj.unused_data, "bytes after the zstd frame")  # §8: other readers SHOULD reject
    need(len(out) == declared, "zstd output differs from its declared size")
    return out


def json_object(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)  # §1: UTF-8 JSON; duplicates are the writer's fault
    except ValueError as exc:
        raise FormatError(f"{what}: bad JSON: {exc}") from None
    need(isinstance(doc, dict), f"{what}: not a JSON object")
    return doc


# ----------------------------------------------------------------------------- §10 chunking

# Appendix B: GEAR[0..255], four values a line.
_GEAR_HEX = """
3b5d3c7d207e37dc 784d68ba91123086 cd52880f882e7298 eacf8e4e19fdcca7
c31f385dfbd1632b 1d5f27001e25abe6 83130bde3c9ad991 c4b225676e9b7649
aa329b29e08eb499 b67fcbd21e577d58 0027baaada2acf6b e3ef2d5ac73c2226
0890f24d6ed312b7 a809e036851d7c7e f0a6fe5e0013d81b 1d026304452cec14
03864632648e248f cdaacf3dcd92b9b4 f5e012e63c187856 8862f9d3821c00b6
a82f7338750f6f8a 1e583dc6c1cb0b6f 7a3145b69743a7f1 abb20fee404807eb
b14b3cfe07b83a5d b9dc27898adb9a0f 3703f5e91baa62be cf0bb866815f7d98
3d9867c41ea9dcd3 1be1fa65442bf22c 14300da4c55631d9 e698e9cbc6545c99
4763107ec64e92a5 c65821fc65696a24 76196c064822f0b7 485be841f3525e01
f652bc9c85974ff5 cad8352face9e3e9 2a6ed1dceb35e98e c6f483badc11680f
3cfd8c17e9cf12f1 89b83c5e2ea56471 ae665cfd24e392a9 ec33c4e504cb8915
3fb9b15fc9fe7451 d7fd1fd1945f2195 31ade0853443efd8 255efc9863e1e2d2
10eab6008d5642cf 46f04863257ac804 a52dc42a789a27d3 daaadf9ce77af565
6b479cd53d87febb 6309e2d3f93db72f c5738ffbaa1ff9d6 6bd57f3f25af7968
67605486d90d0a4a e14d0b9663bfbdae b7bbd8d816eb0414 def8a4f16b35a116
e7932d85aaaffed6 08161cbae90cfd48 855507beb294f08b 91234ea6ffd399b2
ad70cf4b2435f302 d289a97565bc2d27 8e558437ffca99de 96d2704b7115c040
0889bbcdfc660e41 5e0d4e67dc92128d 72a9f8917063ed97 438b69d409e016e3
df4fed8a5d8a4397 00f41dcf41d403f7 4814eb038e52603f 9dafbacc58e2d651
fe2f458e4be170af 4457ec414df6a940 06e62f1451123314 bd1014d173ba92cc
def318e25ed57760 9fea0de9dfca8525 459de1e76c20624b aeec189617e2d666
126a2c06ab5a83cb b1321532360f6132 65421503dbb40123 2d67c287ea089ab3
6c93bff5a56bd6b6 4ffb2036cab6d98d ce7b785b1be7ad4f edb42ef6189fd163
dc905288703988f6 365f9c1d2c691884 c640583680d99bfe 3cd4624c07593ec6
7f1ea8d85d7c5805 014842d480b57149 0b649bcb5a828688 bcd5708ed79b18f0
e987c862fbd2f2f0 982731671f0cd82c baf13e8b16d8c063 8ea3109cbd951bba
d141045bfb385cad 2acbc1a0af1f7d30 e6444d89df03bfdf a18cc771b8188ff9
9834429db01c39bb 214add07fe086a1f 8f07c19b1f6b3ff9 56a297b1bf4ffe55
94d558e493c54fc7 40bfc24c764552cb 931a706f8a8520cb 32229d322935bd52
2560d0f5dc4fefaf 9dbcc48355969bb6 0fd81c3985c0b56a e03817e1560f2bda
c1bb4f81d892b2d5 b0c4864f4e28d2d7 3ecc49f9d9d6c263 51307e99b52ba65e
8af2b688da84a752 f5d72523b91b20b6 6d95ff1ff4634806 562f21555458339a
c0ce47f889336346 487823e5089b40d8 e4727c7ebc6d9592 5a8f7277e94970ba
fca2f406b1c8bb50 5b1f8a95f1791070 d304af9fc9028605 5440ab7fc930e748
312d25fbca2ab5a1 10f4a4b234a4d575 90301d55047e7473 3b6372886c61591e
293402b77c444e06 451f34a4d3e97dd7 3158d814d81bc57b 034942425b9bda69
e2032ff9e532d9bb 62ae066b8b2179e5 9545e10c2f8d71d8 7ff7483eb2d23fc0
00945fcebdc98d86 8764bbbe99b26ca2 1b1ec62284c0bfc3 58e0fcc4f0aa362b
5f4abefa878d458d fd74ac2f9607c519 a4e3fb37df8cbfa9 bf697e43cac574e5
86f14a3f68f4cd53 24a23d076f1ce522 e725cd8048868cc8 bf3c729eb2464362
d8f6cd57b3cc1ed8 6329e52425541577 62aa688ad5ae1ac0 0a242566269bf845
168b1a4753aca74b f789afefff2e7e3c 6c3362093b6fccdb 4ce8f50bd28c09b2
006a2db95ae8aa93 975b0d623c3d1a8c 18605d3935338c5b 5bb6f6136cad3c71
0f53a20701f8d8a6 ab8c5ad2e7e93c67 40b5ac5127acaa29 8c7bf63c2075895f
78bd9f7e014a805c b2c9e9f4f9c8c032 efd6049827eb91f3 2be459f482c16fbd
d92ce0c5745aaa8c 0aaa8fb298d965b9 2b37f92c6c803b15 8c54a5e94e0f0e78
95f9b6e90c0a3032 e7939faa436c7874 d16bfe8f6a8a40c9 44982b86263fd2fa
e285fb39f984e583 779a8df72d7619d3 f2d79a8de8d5dd1e d1037354d66684e2
004c82a4e668a8e5 31d40a7668b044e6 d70578538bd02c11 db45431078c5f482
977121bb7f6a51ad 73d5ccbd34eff8dd e437a07d356e17cd 47b2782043c95627
9fb251413e41d49a ccd70b60652513d3 1c95b31e8a1b49b2 cae73dfd1bcb4c1b
34d98331b1f5b70f 784e39f22338d92f 18613d4a064df420 f1d8dae25f0bcebe
33f77c15ae855efc 3c88b3b912eb109c 956a2ec96bafeea5 1aa005b5e0ad0e87
5500d70527c4bb8e e36c57196421cc44 13c4d286cc36ee39 5654a23d818b2a81
77b1dc13d161abdc 734f44de5f8d5eb5 60717e174a6c89a2 d47d9649266a211e
5b13a4322bb69e90 f7669609f8b5fc3c 21e6ac55bedcdac9 9b56b62b61166dea
f48f66b939797e9c 35f332f9c0e6ae9a cc733f6a9a878db0 3da161e41cc108c2
b7d74ae535914d51 4d493b0b11d36469 ce264d1dfba9741a a9d1f2dc7436dc06
70738016604c2a27 231d36e96e93f3d5 7666881197838d19 4a2a83090aaad40c
f1e761591668b35d 7363236497f730a7 301080e37379dd4d 502dea2971827042
c2c5eb858f32625f 786afb9edfafbdff daee0d868490b2a4 617366b3268609f6
ae0e35a0fe46173e d1a07de93e824f11 079b8b115ea4cca8 93a99274558faebb
fb1e6e22e08a03b3 ea635fdba3698dd0 cf53659328503a5c cde3b31e6fd5d780
8e3e4221d3614413 ef14d0d86bf1a22c e1d830d3f16c5ddb aabd2b2a451504e1
"""
GEAR = [int(x, 16) for x in _GEAR_HEX.split()]

# §10.2: MASKS[k] from fastcdc-rs, for avg_size 256 B .. 4 MiB.
MASKS = {
    7: 0x0000000018035100, 8: 0x0000001800035300, 9: 0x0000019000353000,
    10: 0x0000590003530000, 11: 0x0000d90003530000, 12: 0x0000d90103530000,
    13: 0x0000d90303530000, 14: 0x0000d90313530000, 15: 0x0000d90f03530000,
    16: 0x0000d90303537000, 17: 0x0000d90703537000, 18: 0x0000d90707537000,
    19: 0x0000d91707537000, 20: 0x0000d91747537000, 21: 0x0000d91767537000,
    22: 0x0000d93767537000, 23: 0x0000d93777537000,
}
U64 = (1 << 64) - 1


def chunker_seed(k_id: bytes) -> int:
    """§10.1: first 8 bytes of BLAKE3-derive-key, little-endian, 63 bits, never 0."""
    raw = blake3.blake3(k_id, derive_key_context="fogvault chunker seed v1").digest(length=8)
    return (int.from_bytes(raw, "little") & (2**63 - 1)) or 1


def chunk_lengths(data: bytes, seed: int, min_size: int, avg_size: int,
                  max_size: int) -> Iterator[int]:
    """Cut ``data`` (one whole file) into chunks as in §10.2; yields their lengths in order."""
    gear = [g ^ seed for g in GEAR]  # GEAR'
    gear_ls = [(g << 1) & U64 for g in gear]  # GEAR'[b] << 1
    bits = math.floor(math.log2(avg_size) + 0.5)
    mask_s, mask_l = MASKS[bits + 1], MASKS[bits - 1]

    def chunk_length(start: int) -> int:  # the pseudocode of §10.2, buf = data[start:]
        n = len(data) - start
        if n <= min_size:
            return n
        n = min(n, max_size)
        centre = min(avg_size, n)
        h = 0
        for i in range(min_size & ~1, n & ~1, 2):
            mask = mask_s if i < centre & ~1 else mask_l
            h = ((h << 2) + gear_ls[data[start + i]]) & U64
            if h & (mask << 1) == 0:
                return i
            h = (h + gear[data[start + i + 1]]) & U64
            if h & mask == 0:
                return i + 1
        return n

    pos = 0
    while pos < len(data):
        length = chunk_length(pos)
        yield length
        pos += length


def file_blob_ids(data: bytes, k_id: bytes, chunker: dict) -> list[str]:
    """The content list (§13.3) a FogVault writer gives a file holding ``data``."""
    sizes = (chunker["min_size"], chunker["avg_size"], chunker["max_size"])
    ids, pos = [], 0
    for length in chunk_lengths(data, chunker_seed(k_id), *sizes):
        ids.append(blob_id(k_id, data[pos:pos + length]).hex())
        pos += length
    return ids


# ----------------------------------------------------------------------------- §11, §12


@dataclass(frozen=True)
class Entry:
    """Where one blob is: a pack header entry (§11) or an index entry (§12)."""

    type: int
    id: bytes
    pack: bytes
    offset: int
    length: int
    raw_length: int


@dataclass
class Node:
    """A tree node (§13.3) with the reader defaults applied."""

    type: str
    name: bytes
    mode: int
    uid: int
    gid: int
    user: str
    group: str
    mtime_ns: int
    ctime_ns: int
    size: int
    dev: int
    ino: int
    nlink: int
    rdev: int
    flags: int  # §13.3, §13.6
    target: bytes
    xattrs: list[tuple[bytes, bytes]]
    content: list[str]
    subtree: str | None


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        need(n <= self.remaining(), "truncated")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]


def check_entry(type_: int, length: int, raw_length: int) -> None:
    need(type_ in BLOB_TYPES, f"unknown blob type {type_}")  # §11 rule 4, §12 rule 5
    need(40 < length <= MAX_BLOB, f"blob length {length} out of bounds")
    need(raw_length <= MAX_BLOB, f"blob raw length {raw_length} out of bounds")


def parse_pack(k_enc: bytes, pack_id: bytes, pack: bytes) -> list[Entry]:
    """Check a whole pack by the validation rules of §11; its entries, offsets made explicit."""
    need(len(pack) >= 49 + 4, "pack too short")
    hlen = struct.unpack("<I", pack[-4:])[0]
    need(49 <= hlen <= len(pack) - 4, "bad pack header length")
    cur = Cursor(unseal(k_enc, pack[-4 - hlen:-4], ad("pack-header")))
    need(cur.take(4) == b"FVPK" and cur.u8() == 1, "not a version 1 pack header")
    n = cur.u32()
    need(cur.remaining() == 41 * n, "pack header length does not match its count")
    entries, offset = [], 0
    for _ in range(n):
        type_, bid = cur.u8(), cur.take(32)
        length, raw_length = cur.u32(), cur.u32()
        check_entry(type_, length, raw_length)
        entries.append(Entry(type_, bid, pack_id, offset, length, raw_length))
        offset += length
    need(offset + hlen + 4 == len(pack), "blobs do not fill the pack")  # rule 5
    return entries


def parse_index(plain: bytes) -> tuple[list[bytes], dict[bytes, list[Entry]]]:
    """An index file's plaintext (§12): (superseded index ids, {pack id: entries})."""
    cur = Cursor(plain)
    need(cur.take(4) == b"FVIX" and cur.u8() == 1, "not a version 1 index file")
    s = cur.u32()
    need(s * 32 <= cur.remaining(), "supersedes count too large")  # rule 3
    supersedes = [cur.take(32) for _ in range(s)]
    p = cur.u32()
    need(p * 36 <= cur.remaining(), "pack count too large")
    packs: dict[bytes, list[Entry]] = {}
    for _ in range(p):
        pack_id, b = cur.take(32), cur.u32()
        need(pack_id not in packs, "pack listed twice in one index file")  # rule 4
        need(b * 45 <= cur.remaining(), "blob count too large")
        entries = []
        for _ in range(b):
            type_, bid = cur.u8(), cur.take(32)
            offset, length, raw_length = cur.u32(), cur.u32(), cur.u32()
            check_entry(type_, length, raw_length)
            entries.append(Entry(type_, bid, pack_id, offset, length, raw_length))
        packs[pack_id] = entries
    need(cur.remaining() == 0, "bytes after the last pack")  # rule 6
    return supersedes, packs


# ----------------------------------------------------------------------------- §13 trees


def node_bytes(doc: dict, key: str) -> bytes:
    """§13.2: ``<key>_b64`` if present, else ``<key>`` as UTF-8, else empty."""
    if key + "_b64" in doc:
        return b64(doc[key + "_b64"])
    value = doc.get(key, "")
    need(isinstance(value, str), f"{key} is not a string")
    return value.encode("utf-8", "surrogatepass")  # §22: lone surrogates as the v1 reader


def parse_node(doc: object) -> Node:
    need(isinstance(doc, dict), "node is not an object")
    assert isinstance(doc, dict)
    type_ = doc.get("type")
    need(type_ in NODE_TYPES, f"bad node type {type_!r}")  # rule 2
    name = node_bytes(doc, "name")
    need(name not in (b"", b".", b"..") and b"/" not in name and b"\0" not in name,
         f"unsafe name {name!r}")  # rule 3
    ints = {}
    for key in ("mode", "uid", "gid", "mtime_ns", "ctime_ns", "size", "dev", "ino", "nlink",
                "rdev", "flags"):
        v = ints[key] = doc.get(key, 0)
        need(is_int(v), f"{key} is not an integer")  # rule 5
        need(v >= 0 or key in ("mtime_ns", "ctime_ns"), f"{key} is negative")
    need(ints["mode"] <= 0o7777, "mode has more than permission bits")
    for key in ("user", "group"):
        need(isinstance(doc.get(key, ""), str), f"{key} is not a string")  # rule 6
    xattrs = doc.get("xattrs", [])
    need(isinstance(xattrs, list) and all(isinstance(x, list) and len(x) == 2 for x in xattrs),
         "bad xattrs")
    content, subtree = [], None
    if type_ == "file":  # readers ignore content on non-files, subtree on non-dirs
        content = doc.get("content", [])
        need(isinstance(content, list), "content is not an array")
        need(all(isinstance(c, str) and ID_RE.match(c) for c in content), "bad blob id")
    if type_ == "dir":
        subtree = doc.get("subtree")
        need(isinstance(subtree, str) and ID_RE.match(subtree), "bad or missing subtree")
    return Node(type_, name, **ints, user=doc.get("user", ""), group=doc.get("group", ""),
                target=node_bytes(doc, "target") if type_ == "symlink" else b"",
                xattrs=[(b64(k), b64(v)) for k, v in xattrs], content=content,
                subtree=subtree)


def parse_tree(data: bytes) -> list[Node]:
    doc = json_object(data, "tree")
    need(is_int(doc.get("version")) and doc["version"] == 1, "tree version is not 1")
    need(isinstance(doc.get("nodes"), list), "tree without a nodes array")
    nodes = [parse_node(n) for n in doc["nodes"]]
    names = [n.name for n in nodes]
    need(all(a < b for a, b in itertools.pairwise(names)),
         "names not strictly increasing")  # rule 4 (bytes compare unsigned, prefix first)
    return nodes


# ----------------------------------------------------------------------------- the repository


def _time(value: object) -> datetime:
    need(isinstance(value, str), "time is not a string")
    try:
        t = datetime.fromisoformat(str(value))  # Python 3.11 accepts "Z" too
    except ValueError:
        raise FormatError(f"bad time {value!r}") from None
    need(t.tzinfo is not None, "time without a UTC offset")
    return t


class Repository:
    """One local target, opened read-only with a password."""

    def __init__(self, root: str | os.PathLike, password: bytes) -> None:
        self.root = Path(root)
        self.warnings: list[str] = []
        self.key_id, self.master_key, self.config = self._unlock(password)
        self.k_enc, self.k_id = self.master_key[:32], self.master_key[32:]  # §6.1
        self.index: dict[bytes, Entry] = {}  # blob id -> first location loaded
        self.packs: dict[bytes, list[Entry]] = {}  # pack id -> its listing
        self.load_index()

    # -- storage: a folder; names are /-separated, dot names are a backend's temporaries (§19)

    def names(self, prefix: str) -> list[str]:
        top = self.root / prefix
        found = []
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel = Path(folder).relative_to(top)
            found += [str(rel / f) if rel != Path(".") else f for f in files
                      if not f.startswith(".")]
        return sorted(found)

    def read(self, name: str, limit: int | None = None, offset: int = 0) -> bytes:
        with open(self.root / name, "rb") as f:
            f.seek(offset)
            return f.read(-1 if limit is None else limit)

    # -- §6 keys and §15 config

    def _unlock(self, password: bytes) -> tuple[str, bytes, dict]:
        for key_id in self.names("keys"):
            if not UID_RE.match(key_id):
                self.warnings.append(f"ignored key name {key_id!r}")
                continue
            try:
                master_key = self._open_key_file(key_id, password)
                if master_key is None:
                    continue  # wrong password for this key file
                return key_id, master_key, self._read_config(master_key[:32])
            except FormatError as exc:  # malformed, or a key that verifies no config
                self.warnings.append(f"key file {key_id}: {exc}")
        raise FormatError("wrong password: no key file opens this repository")

    def _open_key_file(self, key_id: str, password: bytes) -> bytes | None:
        raw = self.read("keys/" + key_id, limit=64 * KiB + 1)
        need(len(raw) <= 64 * KiB, "key file longer than 64 KiB")
        doc = json_object(raw, "key file")
        # §6.2: greater is unsupported, 0 and below malformed: either way not usable here.
        need(is_int(doc.get("version")) and doc["version"] == 1, "key file version is not 1")
        kdf = doc.get("kdf")
        need(isinstance(kdf, dict) and kdf.get("algorithm") == "argon2id", "bad kdf")
        ops, mem = kdf.get("opslimit"), kdf.get("memlimit")
        need(is_int(ops) and 1 <= ops <= 64, "opslimit out of bounds")  # §6.3, before Argon2id
        need(is_int(mem) and 8192 <= mem <= 4 * GiB, "memlimit out of bounds")
        salt = b64(kdf.get("salt"))
        need(len(salt) == 16, "salt is not 16 bytes")
        sealed = b64(doc.get("master_key"))
        kek = nacl.pwhash.argon2id.kdf(32, password, salt, opslimit=ops, memlimit=mem)
        try:
            master_key = unseal(kek, sealed, ad("key", key_id.encode("ascii")))
        except FormatError:
            return None
        need(len(master_key) == 64, "master key is not 64 bytes")
        return master_key

    def _read_config(self, k_enc: bytes) -> dict:
        sealed = self.read("config", limit=64 * KiB + 1)  # §17 bounded read
        doc = json_object(decode_payload(unseal(k_enc, sealed, ad("config")), 64 * KiB),
                          "config")
        need(is_int(doc.get("version")) and doc["version"] == 1, "unsupported config version")
        need(isinstance(doc.get("id"), str) and re.fullmatch("[0-9a-f]{32}", doc["id"]),
             "bad repository id")
        ch, co = doc.get("chunker"), doc.get("compression")
        need(isinstance(ch, dict) and ch.get("algorithm") == "fastcdc2020", "bad chunker")
        need(isinstance(co, dict) and co.get("algorithm") == "zstd", "bad compression")
        bounds = [(ch, "min_size", 64, MiB), (ch, "avg_size", 256, 4 * MiB),
                  (ch, "max_size", 1024, 16 * MiB), (doc, "pack_size", 64 * KiB, 512 * MiB),
                  (co, "level", 0, 22)]
        for obj, key, low, high in bounds:
            need(is_int(obj.get(key)) and low <= obj[key] <= high, f"config {key} invalid")
        need(ch["min_size"] <= ch["avg_size"] <= ch["max_size"], "chunk sizes out of order")
        return doc

    # -- §14 snapshots

    def snapshots(self) -> list[dict]:
        """Every snapshot that loads, ordered by (time, uid) as "latest" is (§14)."""
        found = []
        for uid in self.names("snapshots"):
            if not UID_RE.match(uid):
                continue
            try:
                found.append(self.snapshot(uid))
            except (FormatError, OSError) as exc:  # skipped with a warning
                self.warnings.append(f"snapshot {uid}: {exc}")
        # §14: "(time, uid)" with times compared as instants, not as text (the CLI orders a
        # -08:00 snapshot taken after a +09:00 one after it).
        return sorted(found, key=lambda s: (_time(s["time"]), s["uid"]))

    @staticmethod
    def path_bytes(path: str) -> bytes:
        """A snapshot path (or warning) string as bytes. §14: U+DC80..U+DCFF stand for the
        bytes 0x80..0xFF (Python's surrogateescape), everything else for its UTF-8."""
        return path.encode("utf-8", "surrogateescape")

    def snapshot(self, uid: str) -> dict:
        sealed = self.read("snapshots/" + uid, limit=16 * MiB + 41)
        plain = unseal(self.k_enc, sealed, ad("snapshot", uid.encode("ascii")))
        doc = json_object(decode_payload(plain, 16 * MiB), "snapshot")
        need(is_int(doc.get("version")) and doc["version"] == 1, "snapshot version is not 1")
        need(doc.get("uid") == uid, "snapshot uid differs from its name")  # §17
        _time(doc.get("time"))
        need(isinstance(doc.get("host"), str), "host is not a string")
        need(isinstance(doc.get("paths"), list)
             and all(isinstance(p, str) for p in doc["paths"]), "bad paths")
        need(isinstance(doc.get("tree"), str) and ID_RE.match(doc["tree"]), "bad tree id")
        need(isinstance(doc.get("flags_read", False), bool), "flags_read is not a boolean")
        for field in ("original", "repaired_from"):  # §14: absent, null, or a uid
            value = doc.get(field)
            need(value is None or (isinstance(value, str) and bool(UID_RE.match(value))),
                 f"malformed {field}")
        summary = doc.get("summary", {})
        need(isinstance(summary, dict) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for k, v in summary.items()
            if k in SUMMARY_KEYS), "summary values must be numbers")
        return doc

    # -- §12 index, §11 packs, §17 blobs

    def load_index(self) -> None:
        files = {}
        for name in self.names("index"):
            if not ID_RE.match(name):
                self.warnings.append(f"ignored index name {name!r}")
                continue
            sealed = self.read("index/" + name)
            need(content_hash(sealed).hex() == name, f"index {name}: content hash mismatch")
            files[name] = parse_index(decode_payload(
                unseal(self.k_enc, sealed, ad("index")), GiB))
        superseded = {sid.hex() for sup, _ in files.values() for sid in sup}
        for name in sorted(files):
            if name in superseded:
                continue
            for pack_id, entries in files[name][1].items():
                if pack_id not in self.packs:  # a pack is indexed from its first listing
                    self.packs[pack_id] = entries
                    for e in entries:
                        self.index.setdefault(e.id, e)

    def pack_ids(self) -> list[str]:
        """Pack ids from the names ``data/<2 hex>/<64 hex>`` whose folder fits the id (§4)."""
        matches = (re.fullmatch(r"([0-9a-f]{2})/([0-9a-f]{64})", n) for n in self.names("data"))
        return [m[2] for m in matches if m and m[2].startswith(m[1])]

    def verify_pack(self, pack_hex: str) -> list[Entry]:
        """Full check of one pack (§11 rule 6): its name, header, index listing, every blob."""
        pack = self.read(f"data/{pack_hex[:2]}/{pack_hex}")
        need(content_hash(pack).hex() == pack_hex, f"pack {pack_hex}: content hash mismatch")
        entries = parse_pack(self.k_enc, bytes.fromhex(pack_hex), pack)
        listed = self.packs.get(bytes.fromhex(pack_hex))
        need(listed is None or listed == entries, f"pack {pack_hex}: index listing differs")
        for e in entries:
            self.open_blob(e, pack[e.offset:e.offset + e.length])
        return entries

    def open_blob(self, e: Entry, sealed: bytes) -> bytes:
        plain = decode_payload(unseal(self.k_enc, sealed, ad("blob", bytes([e.type]) + e.id)),
                               e.raw_length)
        need(len(plain) == e.raw_length, "blob is not raw_length bytes")
        need(blob_id(self.k_id, plain) == e.id, "blob id mismatch")
        return plain

    def load_blob(self, bid: bytes) -> bytes:
        e = self.index.get(bid)
        need(e is not None, f"blob {bid.hex()} is not in the index")
        assert e is not None
        sealed = self.read(f"data/{e.pack.hex()[:2]}/{e.pack.hex()}", e.length, e.offset)
        need(len(sealed) == e.length, "short read")
        return self.open_blob(e, sealed)  # with the type the index gives (§9)

    def tree(self, tree_hex: str) -> list[Node]:
        return parse_tree(self.load_blob(bytes.fromhex(tree_hex)))

    def walk(self, tree_hex: str, prefix: bytes = b"") -> Iterator[tuple[bytes, Node]]:
        """(absolute path bytes, node) for every node below a tree, depth first, in order."""
        for node in self.tree(tree_hex):
            path = prefix + b"/" + node.name
            yield path, node
            if node.type == "dir":
                yield from self.walk(node.subtree, path)

    # -- extraction (§13.4: absolute paths re-rooted below the destination)

    def extract(self, uid: str, dest: str | os.PathLike) -> None:
        dest_b = os.fsencode(dest)
        os.makedirs(dest_b, exist_ok=True)
        late: list[tuple[bytes, int]] = []  # §13.5: flags of hard-linked files, at the end
        self._extract_tree(self.snapshot(uid)["tree"], dest_b, {}, late)
        for path, flags in late:
            self._set_flags(path, flags)

    def _extract_tree(self, tree_hex: str, folder: bytes, links: dict,
                      late: list[tuple[bytes, int]]) -> None:
        for node in self.tree(tree_hex):  # names were validated by parse_node (§17 Paths)
            path = folder + b"/" + node.name
            if node.type == "dir":
                os.mkdir(path, 0o700)
                self._extract_tree(node.subtree, path, links, late)
            elif node.type == "file":
                # §13.3 nlink, §13.5: file nodes with nlink > 1 and equal (dev, ino) are one
                # file, up to the first node's nlink - 1 links; other types are separate.
                key = (node.dev, node.ino)
                if node.nlink > 1 and key in links:
                    first, to_come = links[key]
                    os.link(first, path, follow_symlinks=False)
                    if to_come > 1:
                        links[key] = (first, to_come - 1)
                    else:
                        del links[key]  # the group is complete: a further node starts anew
                    continue
                if node.nlink > 1:
                    links[key] = (path, node.nlink - 1)
                with open(path, "xb") as f:
                    for bid in node.content:
                        f.write(self.load_blob(bytes.fromhex(bid)))
            elif node.type == "symlink":
                os.symlink(node.target, path)
            elif node.type == "fifo":
                os.mkfifo(path, 0o600)
            elif os.geteuid() == 0:  # §13.3: rdev is Linux st_rdev (makedev)
                kind = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
                os.mknod(path, kind | 0o600, node.rdev)
            else:
                self.warnings.append(f"device {path!r} skipped (not root)")
                continue
            self._set_metadata(path, node)
            if node.type in ("file", "dir") and node.flags & STORED_FLAGS:  # §13.5: last
                if node.type == "file" and node.nlink > 1:
                    late.append((path, node.flags))  # link(2) refuses an immutable file
                else:
                    self._set_flags(path, node.flags)

    def _set_metadata(self, path: bytes, node: Node) -> None:
        # §13.5: owners only as root, xattrs where allowed, then the mode, then mtime (also as
        # atime), a folder's after its contents.
        if os.geteuid() == 0:
            os.chown(path, node.uid, node.gid, follow_symlinks=False)
        for name, value in node.xattrs:
            with contextlib.suppress(OSError):
                os.setxattr(path, name, value, follow_symlinks=False)
        if node.type != "symlink":
            os.chmod(path, node.mode)
        os.utime(path, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)

    def _set_flags(self, path: bytes, flags: int) -> None:
        # §13.6: the stored bits replaced, the file system's own kept
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            current = bytearray(4)
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, current)
            old = int.from_bytes(current, "little")
            new = old & ~STORED_FLAGS | flags & STORED_FLAGS
            if new != old:
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, new.to_bytes(4, "little"))
        except OSError as exc:
            self.warnings.append(f"flags of {path!r} not set: {exc.strerror}")
        finally:
            os.close(fd)
