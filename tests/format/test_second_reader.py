"""docs/format.md is enough to read a repository: tests of the independent second reader.

Repositories are made with the real ``fogvault`` CLI (a black box here) from real files; then
``second_reader`` (written from the format document alone, no ``fogvault`` import) lists,
verifies and extracts them, and re-chunks the source files. Appendix A's vectors are checked
with the same code.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import nacl.pwhash.argon2id
import pyfastcdc
import pytest
import zstandard

sys.path.insert(0, str(Path(__file__).parent))
import second_reader as sr

SPEC = Path(__file__).parents[2] / "docs" / "format.md"
PASSWORD = "pässwörd ✓ fog"  # §6.3: the CLI uses the UTF-8 bytes of FOGVAULT_PASSWORD
MiB = 1024 * 1024
SHARED = 4 * MiB  # prefix.bin starts with the first 4 MiB of big.bin


# ----------------------------------------------------------------------------- Appendix A, B

MK = bytes(range(64))
K_ENC, K_ID = MK[:32], MK[32:]
HELLO = b"hello, fogvault\n"
HELLO_ID = "b15247138c5f8fb2fd4de8fef9633d9e1808e2a73a6e906897e6575bea2d0b51"
SEED = 0x243760B54EFF786C
VECTOR_SMALL = [257, 1049, 1152, 1231, 2016, 1288, 1186, 615, 1067, 1293, 812, 569, 2568,
                1333, 2621, 1235, 1158, 1103, 432, 1262, 1071, 2377, 400, 1544, 1086, 1137,
                737, 1141, 1304, 1037, 1239, 1505, 1349, 1073, 888, 851, 1273, 2024, 1110, 754,
                1487, 1596, 1670, 765, 3258, 1529, 1258, 912, 1037, 445, 857, 283, 1046, 1246]
VECTOR_DEFAULT = [1170263, 1515268, 2805055, 1518796, 1170686, 1304709, 969841, 653734,
                  1109230, 1290598, 1904473, 761008, 603555]
DEFAULTS = (512 * 1024, MiB, 8 * MiB)


def vector_input(n: int) -> bytes:
    return blake3.blake3(b"fogvault chunker test vector").digest(length=n)


def test_appendix_a_crypto_vectors() -> None:
    assert sr.content_hash(b"").hex() == (
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
    bid = sr.blob_id(K_ID, HELLO)
    assert bid.hex() == HELLO_ID
    blob_ad = sr.ad("blob", b"\x00" + bid)
    assert blob_ad.hex() == "666f677661756c7400626c6f620000" + HELLO_ID
    sealed = sr.seal(K_ENC, b"\x00" + HELLO, blob_ad, bytes(range(24)))
    assert sealed.hex() == ("000102030405060708090a0b0c0d0e0f1011121314151617"
                            "9eaa6a13fcbda18e552b41b8aa27c49c41"
                            "d2bcb8f7c9194e5e63123c11b46aa8c8")
    assert sr.decode_payload(sr.unseal(K_ENC, sealed, blob_ad), len(HELLO)) == HELLO
    ads = {
        ("pack-header", b""): "666f677661756c74007061636b2d68656164657200",
        ("index", b""): "666f677661756c7400696e64657800",
        ("config", b""): "666f677661756c7400636f6e66696700",
        ("snapshot", b"0123456789abcdef"):
            "666f677661756c7400736e617073686f740030313233343536373839616263646566",
        ("key", b"fedcba9876543210"):
            "666f677661756c74006b65790066656463626139383736353433323130",
        ("lock", b"0123456789abcdef"):
            "666f677661756c74006c6f636b0030313233343536373839616263646566",
    }
    for (kind, ident), want in ads.items():
        assert sr.ad(kind, ident).hex() == want
    kek = nacl.pwhash.argon2id.kdf(32, b"correct horse battery staple", bytes(range(16)),
                                   opslimit=2, memlimit=67108864)
    assert kek.hex() == "c05ce4c4dd7e0e45ee6011cc59d068ade47df1b01fc0cf9cd4678bdf68a5b7b0"
    assert sr.chunker_seed(K_ID) == SEED == 2609660840915204204


def test_appendix_b_gear_table_is_the_documents() -> None:
    encoded = struct.pack("<256Q", *sr.GEAR)
    assert blake3.blake3(encoded).hexdigest() == (
        "9af822d1e10df25d0157a43ccd0a73b56d1c1d0a5d77acb4e6e979522d0fe149")
    appendix = SPEC.read_text().split("## Appendix B")[1]
    rows = re.findall(r"^ *(\d+): (.*)$", appendix, re.MULTILINE)
    assert [int(i) for i, _ in rows] == list(range(0, 256, 4))
    assert [int(x, 16) for _, row in rows for x in row.split()] == sr.GEAR


def test_appendix_a_chunker_vectors() -> None:
    assert list(sr.chunk_lengths(vector_input(65536), SEED, 256, 1024, 4096)) == VECTOR_SMALL
    data = vector_input(16 * MiB)
    # Our pure-Python §10.2 on the first chunks (a generator: exactly as in a whole run; the
    # whole 16 MiB takes about 2 s, see the extended test), and pyfastcdc, which §10 names as
    # the definition, on all of them.
    assert list(itertools.islice(sr.chunk_lengths(data, SEED, *DEFAULTS), 2)) == \
        VECTOR_DEFAULT[:2]
    cdc = pyfastcdc.FastCDC(DEFAULTS[1], min_size=DEFAULTS[0], max_size=DEFAULTS[2],
                            normalized_chunking=1, seed=SEED)
    assert [c.length for c in cdc.cut_buf(data)] == VECTOR_DEFAULT
    assert sr.blob_id(K_ID, data[:VECTOR_DEFAULT[0]]).hex() == (
        "b38e0e5a980d8522f5c777c023c76467f6ba9db039fd9d51079da714fee6d5bc")


@pytest.mark.extended
def test_appendix_a_chunker_vector_whole_in_pure_python() -> None:
    assert list(sr.chunk_lengths(vector_input(16 * MiB), SEED, *DEFAULTS)) == VECTOR_DEFAULT


def test_payload_framing_rules() -> None:
    """§8: raw or one zstd frame with a content size, bounded, nothing after the frame."""
    frame = zstandard.ZstdCompressor(level=3).compress(b"a" * 1000)
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(b"a" * 1000)
    assert sr.decode_payload(b"\x01" + frame, 1000) == b"a" * 1000
    assert sr.decode_payload(b"\x00abc", 3) == b"abc"
    # A frame that holds 10 MiB but declares 1000 bytes: decoding stops at the declared size.
    liar = bytearray(zstandard.ZstdCompressor(level=3).compress(bytes(10 * MiB)))
    assert liar[4] == 0b10000000  # header: 4-byte content size right after the window byte
    liar[6:10] = (1000).to_bytes(4, "little")
    assert zstandard.frame_content_size(bytes(liar)) == 1000
    for payload, limit in [(b"", 1000), (b"\x02abc", 1000), (b"\x00abc", 2),
                           (b"\x01" + frame, 999), (b"\x01" + frame + b"x", 1000),
                           (b"\x01" + no_size, 1000), (b"\x01" + frame[:-2], 1000),
                           (b"\x01" + liar, 1000)]:
        with pytest.raises(sr.FormatError):
            sr.decode_payload(payload, limit)


# ----------------------------------------------------------------------------- the source tree


@dataclass
class Entry:
    type: str
    mode: int
    mtime_ns: int
    data: bytes | None = None  # file content
    target: bytes | None = None  # symlink target
    links: tuple[bytes, ...] = ()  # every path of a hard-linked file, sorted
    xattrs: dict[bytes, bytes] = field(default_factory=dict)


@dataclass
class World:
    src: Path
    repo: Path
    env: dict[str, str]
    states: list[dict[bytes, Entry]] = field(default_factory=list)  # source at each snapshot
    uids: list[str] = field(default_factory=list)
    restored: list[Path] = field(default_factory=list)  # `fogvault restore` of each snapshot

    def run(self, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "fogvault", "-r", str(self.repo), *args],
                              env=self.env, capture_output=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return proc


def scan(root: Path) -> dict[bytes, Entry]:
    """Everything below ``root`` (itself included, as b""), by relative path bytes."""
    top = os.fsencode(root)
    found: dict[bytes, Entry] = {}
    inodes: dict[int, list[bytes]] = {}
    for folder, dirs, files in os.walk(top):
        for path in [os.path.join(folder, n) for n in dirs + files] + [folder] * (folder == top):
            rel = b"" if path == top else os.path.relpath(path, top)
            st = os.lstat(path)
            kind = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
                    stat.S_IFIFO: "fifo"}[stat.S_IFMT(st.st_mode)]
            entry = found[rel] = Entry(kind, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            if kind != "symlink":
                entry.xattrs = {os.fsencode(n): os.getxattr(path, n) for n in os.listxattr(path)}
            if kind == "file":  # hard links of files only, as restores make them (§13.3)
                entry.data = Path(os.fsdecode(path)).read_bytes()
                inodes.setdefault(st.st_ino, []).append(rel)
            elif kind == "symlink":
                entry.target = os.readlink(path)
                entry.mode = 0  # symlink modes are not restorable on Linux
    for paths in inodes.values():
        if len(paths) > 1:
            for p in paths:
                found[p].links = tuple(sorted(paths))
    return found


def words(rng: random.Random, size: int) -> bytes:
    vocab = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9)))
             for _ in range(500)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(vocab, k=12)) + b".\n"
    return bytes(out[:size])


def set_times(root: Path, base_ns: int) -> None:
    """Distinct nanosecond mtimes on every entry, folders last (bottom-up)."""
    top = os.fsencode(root)
    for i, (folder, dirs, files) in enumerate(os.walk(top, topdown=False)):
        for j, name in enumerate(files + dirs):
            t = base_ns + i * 10**12 + j * 10**9 + 123456789
            os.utime(os.path.join(folder, name), ns=(t, t), follow_symlinks=False)
        os.utime(folder, ns=(base_ns + i * 10**12 + 7, base_ns + i * 10**12 + 7))


def make_source(src: Path, rng: random.Random) -> None:
    big = rng.randbytes(5 * MiB)
    (src / "text").mkdir(parents=True)
    (src / "copy").mkdir()
    (src / "a" / "b" / "c" / "d").mkdir(parents=True)
    (src / "hl").mkdir()
    (src / "big.bin").write_bytes(big)
    (src / "copy" / "big-copy.bin").write_bytes(big)  # whole-file duplicate
    (src / "prefix.bin").write_bytes(big[:SHARED] + rng.randbytes(MiB))  # shared prefix
    (src / "text" / "compressible.txt").write_bytes(words(rng, 4 * MiB))
    (src / "empty").write_bytes(b"")
    (src / "a" / "b" / "c" / "d" / "deep.txt").write_bytes(b"deep\n" * 1000)
    (src / "日本語.txt").write_text("UTF-8 name, \\u escapes in the tree\n")
    os.symlink("text/compressible.txt", src / "link-rel")
    os.symlink("/nonexistent/abs target", src / "link-abs")
    os.symlink(b"\xff\xfe-not-utf8", os.fsencode(src) + b"/link-bad")  # target_b64
    Path(os.fsdecode(os.fsencode(src) + b"/caf\xe9.txt")).write_bytes(b"latin-1 name\n")
    (src / "hl" / "one").write_bytes(b"hard link\n" * 100)
    os.link(src / "hl" / "one", src / "hl" / "two")
    os.mkfifo(src / "pipe", 0o640)
    # Hard-linked fifo and symlink: §13.3 says "nodes"; `fogvault restore` links only files.
    os.link(src / "pipe", src / "pipe2")
    os.link(src / "link-abs", src / "link-abs2", follow_symlinks=False)
    with contextlib.suppress(OSError):  # xattrs where the file system has them (§13.3)
        os.setxattr(src / "hl" / "one", b"user.tag", b"blue\x00\xff")
        os.setxattr(src / "hl" / "one", b"user.4", b"4")  # sorts after user.! as bytes,
        os.setxattr(src / "hl" / "one", b"user.!", b"!")  # before it as base64 text
        os.setxattr(src / "text", b"user.empty", b"")
    unreadable = 0o000 if os.geteuid() == 0 else 0o400  # a user's backup could not read it
    for name, mode in [("setuid", 0o4751), ("private", 0o600), ("nothing", unreadable)]:
        (src / name).write_bytes(name.encode())
        os.chmod(src / name, mode)
    (src / "sticky").mkdir()
    (src / "sticky" / "f").write_bytes(b"x")
    os.chmod(src / "sticky", 0o1777)
    (src / "ro-dir").mkdir()
    (src / "ro-dir" / "f").write_bytes(b"y")
    os.chmod(src / "ro-dir", 0o555)
    set_times(src, 1_700_000_000 * 10**9)
    old = -123_456_789_012_345_678  # 1966: §13.3 allows negative mtime_ns
    os.utime(src / "a" / "b" / "c" / "d" / "deep.txt", ns=(old, old))


def change_source(src: Path, rng: random.Random) -> None:
    text = src / "text" / "compressible.txt"
    data = text.read_bytes()
    text.write_bytes(data[:2 * MiB] + b"INSERTED " * 111 + data[2 * MiB:])  # re-synchronises
    (src / "prefix.bin").unlink()
    (src / "new.bin").write_bytes(rng.randbytes(MiB + 12345))
    os.chmod(src / "private", 0o640)
    (src / "link-rel").unlink()
    os.symlink("big.bin", src / "link-rel")
    os.link(src / "hl" / "one", src / "hl" / "three")
    (src / "empty2").write_bytes(b"")
    set_times(src, 1_800_000_000 * 10**9)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("format")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGVAULT_")}
    env.update(FOGVAULT_PASSWORD=PASSWORD, XDG_CACHE_HOME=str(base / "xdg-cache"),
               XDG_CONFIG_HOME=str(base / "xdg-config"), XDG_STATE_HOME=str(base / "xdg-state"))
    # A backed-up path that is not UTF-8: the snapshot's `paths` hold "\udce9" (§14).
    w = World(src=base / os.fsdecode(b"src-\xe9"), repo=base / "repo", env=env)
    rng = random.Random(20261124)
    make_source(w.src, rng)
    # The cheapest KDF profile the CLI offers (§6.3) and small packs, so there are several.
    w.run("init", "--kdf", "interactive", "--pack-size", "1")
    for step in range(2):
        if step:
            change_source(w.src, rng)
        w.states.append(scan(w.src))
        out = json.loads(w.run("--json", "-q", "backup", str(w.src)).stdout.splitlines()[-1])
        w.uids.append(out["snapshot"])
    for i, uid in enumerate(w.uids):
        w.restored.append(base / f"restored-{i}")
        w.run("restore", "-V", uid, "-t", str(w.restored[-1]))
    return w


@pytest.fixture(scope="module")
def repo(world: World) -> sr.Repository:
    return sr.Repository(world.repo, PASSWORD.encode())


# ----------------------------------------------------------------------------- the tests


def test_unlock_and_config(world: World, repo: sr.Repository) -> None:
    assert repo.warnings == []
    (key_name,) = os.listdir(world.repo / "keys")
    assert repo.key_id == key_name
    key = json.loads((world.repo / "keys" / key_name).read_text())
    assert (key["kdf"]["opslimit"], key["kdf"]["memlimit"]) == (2, 67108864)  # interactive
    assert repo.config["chunker"] == {"algorithm": "fastcdc2020", "min_size": 524288,
                                      "avg_size": 1048576, "max_size": 8388608}
    assert repo.config["pack_size"] == MiB
    with pytest.raises(sr.FormatError, match="wrong password"):
        sr.Repository(world.repo, b"not the password")


def test_snapshots_list_as_the_cli_says(world: World, repo: sr.Repository) -> None:
    cli = json.loads(world.run("--json", "snapshots").stdout)
    ours = repo.snapshots()
    assert [s["uid"] for s in ours] == [s["uid"] for s in cli] == world.uids
    for mine, theirs in zip(ours, cli, strict=True):
        # `snapshots --json` adds the targets holding each snapshot and those it could not
        # list; the rest is the manifest.
        added = {"targets", "targets_unknown"}
        assert set(theirs) - set(mine) == added
        assert mine == {k: v for k, v in theirs.items() if k not in added}
        assert [repo.path_bytes(p) for p in mine["paths"]] == [os.fsencode(world.src)]
        assert b"\xe9" in os.fsencode(world.src)
    assert ours[1]["parent"] == ours[0]["uid"]


def test_every_pack_and_index_entry_verifies(world: World, repo: sr.Repository) -> None:
    on_disk = repo.pack_ids()
    assert len(on_disk) > 5
    listed = {p.hex() for p in repo.packs}
    assert listed == set(on_disk)  # no orphans after clean runs, nothing missing
    blobs, flags = 0, set()
    for pack_hex in on_disk:  # name == BLAKE3(bytes), header == index listing, blobs open
        entries = repo.verify_pack(pack_hex)
        assert entries == repo.packs[bytes.fromhex(pack_hex)]
        blobs += len(entries)
        pack = (world.repo / "data" / pack_hex[:2] / pack_hex).read_bytes()
        flags |= {sr.unseal(repo.k_enc, pack[e.offset:e.offset + e.length],
                            sr.ad("blob", bytes([e.type]) + e.id))[0] for e in entries}
    assert blobs == len(repo.index)  # each blob stored once
    assert flags == {0, 1}  # both raw and zstd payloads (§8) were read
    for p in (world.repo / "index").iterdir():
        assert sr.content_hash(p.read_bytes()).hex() == p.name


INT_FIELDS = ("mode", "uid", "gid", "mtime_ns", "ctime_ns", "size", "dev", "ino", "nlink",
              "rdev")


def test_trees_are_canonical(repo: sr.Repository) -> None:
    """§13.1: exactly Python's json.dumps(sort_keys, compact); fields as in the §13.3 table."""
    trees = [repo.load_blob(e.id) for e in repo.index.values() if e.type == 1]
    assert len(trees) > 10
    for data in trees:
        doc = json.loads(data)
        assert json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() == data
        for node in doc["nodes"]:
            kind = node["type"]
            assert ("name" in node) != ("name_b64" in node)
            assert all(node[k] != 0 for k in INT_FIELDS if k in node)  # written if != 0
            assert all(node[k] != "" for k in ("user", "group") if k in node)
            assert ("content" in node) == (kind == "file")
            assert ("subtree" in node) == (kind == "dir")
            assert ("target" in node or "target_b64" in node) == (kind == "symlink")
            assert "size" not in node or kind == "file"
            if "xattrs" in node:  # §13.3: by the names' characters, not their base64 text
                names = [base64.b64decode(n).decode("utf-8", "surrogateescape")
                         for n, _ in node["xattrs"]]
                assert names and names == sorted(names)


def snapshot_files(repo: sr.Repository, uid: str, src: Path) -> dict[bytes, sr.Node]:
    """The nodes below the backed-up folder, by path relative to it (b"" for itself)."""
    top = os.fsencode(src)
    nodes = {}
    for path, node in repo.walk(repo.snapshot(uid)["tree"]):
        if path == top or path.startswith(top + b"/"):
            nodes[path[len(top) + 1:]] = node
    return nodes


CHUNKED: dict[bytes, list[str]] = {}  # file content -> blob ids, across both snapshots


@pytest.mark.parametrize("step", [0, 1])
def test_trees_and_rechunking(world: World, repo: sr.Repository, step: int) -> None:
    state = world.states[step]
    nodes = snapshot_files(repo, world.uids[step], world.src)
    assert set(nodes) == set(state)
    chunked = CHUNKED
    for rel, node in nodes.items():
        want = state[rel]
        assert (node.type, node.mtime_ns) == (want.type, want.mtime_ns), rel
        if node.type != "symlink":
            assert node.mode == want.mode, rel
            assert dict(node.xattrs) == want.xattrs, rel
        if node.type == "symlink":
            assert node.target == want.target
        if node.type == "file":
            assert want.data is not None
            assert node.size == len(want.data)
            if want.data not in chunked:  # §10: the same cut points and blob ids
                chunked[want.data] = sr.file_blob_ids(want.data, repo.k_id,
                                                      repo.config["chunker"])
            assert node.content == chunked[want.data], rel
            assert b"".join(repo.load_blob(bytes.fromhex(b)) for b in node.content) == \
                want.data
    # Multi-chunk files were tested. (The cut points depend on the random K_id: a 5 MiB file
    # stays one chunk with a chance of about e^-8; all of them, far less.)
    assert max(len(n.content) for n in nodes.values()) >= 2
    assert nodes[b"big.bin"].content == nodes[b"copy/big-copy.bin"].content
    assert nodes[b"empty"].content == [] and nodes[b"empty"].size == 0
    assert nodes[b"link-bad"].target == b"\xff\xfe-not-utf8"
    assert nodes[b"setuid"].mode == 0o4751 and nodes[b"sticky"].mode == 0o1777
    hl = [n for rel, n in nodes.items() if rel.startswith(b"hl/")]
    assert len({(n.dev, n.ino) for n in hl}) == 1 and all(n.nlink == len(hl) for n in hl)
    if step == 0:
        # Chunks of big.bin that end before the shared 4 MiB are prefix.bin's too (§10).
        big = nodes[b"big.bin"].content
        ends = itertools.accumulate(repo.index[bytes.fromhex(b)].raw_length for b in big)
        shared = sum(end < SHARED for end in ends)
        assert nodes[b"prefix.bin"].content[:shared] == big[:shared]
        assert nodes[b"a/b/c/d/deep.txt"].mtime_ns < 0


@pytest.mark.parametrize("step", [0, 1])
def test_extract_matches_source_and_fogvault_restore(
        world: World, repo: sr.Repository, step: int, tmp_path: Path) -> None:
    out = tmp_path / "out"
    repo.extract(world.uids[step], out)
    assert scan(out / world.src.relative_to("/")) == world.states[step]
    ours, theirs = scan(out), scan(world.restored[step])
    del ours[b""], theirs[b""]  # the destination itself: "/" has no node (§13.4)
    assert ours == theirs  # the ancestor folders of the backed-up path included


def repo_packs(root: Path) -> list[str]:
    return [p.name for p in root.glob("data/*/*")]


def test_after_forget_and_prune(world: World, tmp_path: Path) -> None:
    """Prune's index files carry a supersedes list (§12); the reader must honour it."""
    copy = World(src=world.src, repo=tmp_path / "repo", env=world.env)
    shutil.copytree(world.repo, copy.repo)
    copy.run("forget", world.uids[0])
    copy.run("prune", "--max-unused", "0")
    # Put back the index files prune deleted: the state a prune killed before its deletions
    # leaves. They name packs that are gone; only their being superseded keeps them out.
    index = copy.repo / "index"
    old = [p for p in (world.repo / "index").iterdir() if not (index / p.name).exists()]
    gone = set(repo_packs(world.repo)) - set(repo_packs(copy.repo))
    assert old and gone
    for p in old:
        shutil.copy(p, copy.repo / "index" / p.name)
    repo = sr.Repository(copy.repo, PASSWORD.encode())
    assert [s["uid"] for s in repo.snapshots()] == [world.uids[1]]
    assert {p.hex() for p in repo.packs} == set(repo.pack_ids())
    for pack_hex in repo.pack_ids():
        repo.verify_pack(pack_hex)
    superseded = {sid.hex() for p in (copy.repo / "index").iterdir()
                  for sid in sr.parse_index(sr.decode_payload(sr.unseal(
                      repo.k_enc, p.read_bytes(), sr.ad("index")), 1 << 30))[0]}
    assert {p.name for p in old} <= superseded
    assert gone.isdisjoint(p.hex() for p in repo.packs)
    repo.extract(world.uids[1], tmp_path / "out")
    assert scan(tmp_path / "out" / world.src.relative_to("/")) == world.states[1]
