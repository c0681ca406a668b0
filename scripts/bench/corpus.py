"""Deterministic benchmark corpora, the mutation step, and hash trees to verify restores.

Everything here is a function of a seed and a size factor: the same arguments give the same
names, sizes and bytes on any machine (random bytes come from BLAKE3's extendable output, text
from ``random.Random``, both seeded), so runs on different days compare like with like.

* ``small``: a source tree: ~50,000 files at size 1.0 (code, docs, data and config files with
  log-normal sizes around 5 KiB, 1 % empty), a few binaries that take the rest of ~1 GiB
  (incompressible "media" and half-compressible "executables"), and some symlinks.
* ``big``: four large files, 1 GiB in all at size 1.0, made of 1-16 MiB segments of random,
  text-like, low-entropy and zero bytes, and copies of earlier segments (of the same or an
  earlier file) placed after 1-4095 bytes of padding, i.e. duplicated at shifted offsets.
* ``mutate``: about 1 % of the files change (appends, in-place edits, insertions that shift the
  rest of the file, deletions) and new files appear; for ``big`` each file gets one change.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import blake3

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

SMALL_FILES_AT_1 = 50_000
SMALL_BYTES_AT_1 = GIB
BIG_BYTES_AT_1 = GIB
BIG_SHARES = (0.4, 0.3, 0.2, 0.1)

# Maps every byte to one of 16 values: random bytes become 4-bit "tables" that compress ~2:1.
_LOW_ENTROPY = bytes((b & 0x0F) * 3 for b in range(256))

_KEYWORDS = ("def", "return", "if", "else", "for", "while", "import", "from", "class", "self",
             "None", "True", "False", "and", "or", "not", "in", "is", "with", "as", "try",
             "except", "raise", "yield", "lambda", "const", "int", "char", "void", "struct")


def random_bytes(seed: str, n: int) -> bytes:
    """``n`` pseudo-random bytes determined by ``seed`` (BLAKE3 XOF, GB/s)."""
    return blake3.blake3(seed.encode()).digest(length=n) if n > 0 else b""


class TextSource:
    """Source-code-like and prose-like text from a seeded vocabulary; zstd shrinks it ~3-5x."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"{seed}:vocabulary")
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = {"".join(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(6000)}
        self.words = sorted(words)
        self.code_lines = [self._code_line(rng) for _ in range(30_000)]
        self.prose_lines = [self._prose_line(rng) for _ in range(8_000)]
        self.data_lines = [self._data_line(rng) for _ in range(8_000)]

    def _ident(self, rng: random.Random) -> str:
        parts = rng.choices(self.words, k=rng.choice((1, 1, 2, 2, 3)))
        return "_".join(parts)

    def _code_line(self, rng: random.Random) -> str:
        indent = " " * (4 * rng.choice((0, 1, 1, 2, 2, 2, 3, 3, 4)))
        a, b, c = self._ident(rng), self._ident(rng), self._ident(rng)
        form = rng.randrange(9)
        if form == 0:
            body = f"def {a}({b}, {c}={rng.randint(0, 99)}):"
        elif form == 1:
            body = f"{a} = {b}.{c}({self._ident(rng)}, {rng.randint(0, 4096)})"
        elif form == 2:
            body = f"if {a} {rng.choice(('is', '==', '<', '>=', 'in'))} {b}:"
        elif form == 3:
            body = f"return {a}({b}) + {c}"
        elif form == 4:
            body = "# " + " ".join(rng.choices(self.words, k=rng.randint(3, 12)))
        elif form == 5:
            body = f"for {a} in {b}:"
        elif form == 6:
            body = f"{rng.choice(_KEYWORDS)} {a}.{b} = \"{c}\""
        elif form == 7:
            body = f"self.{a} = {b}[{rng.randint(0, 64)}:{rng.randint(64, 512)}]"
        else:
            body = ""
        return indent + body

    def _prose_line(self, rng: random.Random) -> str:
        words = rng.choices(self.words, k=rng.randint(4, 16))
        return " ".join(words).capitalize() + rng.choice((".", ".", ",", ":", "."))

    def _data_line(self, rng: random.Random) -> str:
        fields = [str(rng.randint(0, 10**rng.randint(1, 7))) for _ in range(rng.randint(3, 8))]
        return f"{self._ident(rng)},{','.join(fields)},{rng.random():.6f}"

    def text(self, rng: random.Random, nbytes: int, kind: str = "code") -> bytes:
        if nbytes <= 0:
            return b""
        pool = {"code": self.code_lines, "prose": self.prose_lines, "data": self.data_lines}[kind]
        out: list[str] = []
        size = 0
        while size < nbytes:
            lines = rng.choices(pool, k=max(8, (nbytes - size) // 32))
            block = "\n".join(lines) + "\n"
            out.append(block)
            size += len(block)
        return "".join(out).encode()[:nbytes]


@dataclass(slots=True)
class CorpusInfo:
    name: str
    root: Path
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    notes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"name": self.name, "root": str(self.root), "files": self.files,
                "dirs": self.dirs, "symlinks": self.symlinks, "bytes": self.bytes,
                **self.notes}


def _fresh(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)


# ---- small files -----------------------------------------------------------------------------

_TEXT_KINDS = (  # (weight, extension, text kind)
    (30, ".py", "code"), (12, ".c", "code"), (8, ".h", "code"), (10, ".js", "code"),
    (8, ".md", "prose"), (5, ".txt", "prose"), (3, ".rst", "prose"),
    (6, ".json", "data"), (4, ".csv", "data"), (6, ".toml", "data"), (4, ".yaml", "data"),
)
_BINARY_KINDS = ((".jpg", "random"), (".png", "random"), (".gz", "random"),
                 (".so", "mixed"), (".bin", "mixed"), (".db", "mixed"))


def _make_dirs(rng: random.Random, words: list[str], count: int) -> list[Path]:
    dirs = [Path(".")]
    depth = {Path("."): 0}
    names: dict[Path, set[str]] = {Path("."): set()}
    while len(dirs) < count:
        parent = rng.choice(dirs)
        if depth[parent] >= 6:
            continue
        name = rng.choice(words)
        if name in names[parent]:
            name = f"{name}{len(names[parent])}"
        names[parent].add(name)
        child = parent / name
        dirs.append(child)
        depth[child] = depth[parent] + 1
        names[child] = set()
    return dirs


def _binary(seed: str, size: int, kind: str, text: TextSource, rng: random.Random) -> bytes:
    if kind == "random":
        return random_bytes(seed, size)
    parts, done, i = [], 0, 0
    while done < size:  # an "executable": code-like tables, strings and random sections
        n = min(size - done, rng.randint(16 * KIB, 512 * KIB))
        pick = rng.randrange(4)
        if pick == 0:
            part = random_bytes(f"{seed}:{i}", n)
        elif pick == 1:
            part = random_bytes(f"{seed}:{i}", n).translate(_LOW_ENTROPY)
        elif pick == 2:
            part = text.text(rng, n, "data")
        else:
            part = bytes(n // 2) + random_bytes(f"{seed}:{i}", n - n // 2).translate(_LOW_ENTROPY)
        parts.append(part)
        done += n
        i += 1
    return b"".join(parts)


def make_small(root: Path, seed: int, size: float, text: TextSource) -> CorpusInfo:
    """The many-small-files tree below ``root`` (replaced if present)."""
    _fresh(root)
    rng = random.Random(f"{seed}:small")
    n_files = max(200, round(SMALL_FILES_AT_1 * size))
    budget = max(2 * MIB, round(SMALL_BYTES_AT_1 * size))
    dirs = _make_dirs(rng, text.words, max(8, n_files // 25))
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    n_binary = max(4, n_files // 200)
    n_links = max(2, n_files // 200)
    n_text = n_files - n_binary
    weights = [w for w, _, _ in _TEXT_KINDS]
    plan: list[tuple[Path, str, int, str]] = []  # path, kind, size, text kind or binary kind
    used: set[Path] = set()

    def unique(folder: Path, stem: str, ext: str) -> Path:
        path = folder / f"{stem}{ext}"
        while path in used:
            path = folder / f"{stem}_{rng.randrange(10**6)}{ext}"
        used.add(path)
        return path

    text_bytes = 0
    for _ in range(n_text):
        _, ext, kind = rng.choices(_TEXT_KINDS, weights=weights)[0]
        nbytes = 0 if rng.random() < 0.01 else min(512 * KIB, int(rng.lognormvariate(8.6, 1.2)))
        plan.append((unique(rng.choice(dirs), rng.choice(text.words), ext), "text", nbytes, kind))
        text_bytes += nbytes
    if text_bytes > 0.6 * budget:  # small --size: keep binaries at 40 % of the bytes
        scale = 0.6 * budget / text_bytes
        plan = [(p, k, int(n * scale), t) for p, k, n, t in plan]
        text_bytes = sum(n for _, _, n, _ in plan)
    binary_budget = max(n_binary * 4 * KIB, budget - text_bytes)
    shares = [rng.paretovariate(1.2) for _ in range(n_binary)]
    for share in shares:
        ext, kind = rng.choice(_BINARY_KINDS)
        nbytes = max(4 * KIB, int(binary_budget * share / sum(shares)))
        plan.append((unique(rng.choice(dirs), rng.choice(text.words), ext), "binary", nbytes,
                     kind))

    info = CorpusInfo("small", root, dirs=len(dirs))
    for number, (rel, kind, nbytes, sub) in enumerate(plan):
        if kind == "text":
            data = text.text(rng, nbytes, sub)
        else:
            data = _binary(f"{seed}:bin:{number}", nbytes, sub, text, rng)
        (root / rel).write_bytes(data)
        if rel.suffix in (".so", ".bin"):
            os.chmod(root / rel, 0o755)
        info.files += 1
        info.bytes += len(data)
    targets = [p for p, _, _, _ in plan]
    for i in range(n_links):
        target = rng.choice(targets)
        link = unique(rng.choice(dirs), f"link{i}", "")
        os.symlink(os.path.relpath(root / target, (root / link).parent), root / link)
        info.symlinks += 1
    info.notes["binaries"] = n_binary
    return info


# ---- big files -------------------------------------------------------------------------------


def make_big(root: Path, seed: int, size: float, text: TextSource) -> CorpusInfo:
    """A few large files of mixed content below ``root`` (replaced if present)."""
    _fresh(root)
    rng = random.Random(f"{seed}:big")
    total = max(8 * MIB, round(BIG_BYTES_AT_1 * size))
    info = CorpusInfo("big", root, dirs=1)
    written: list[tuple[Path, int, int]] = []  # (file, offset, length) of segments to copy
    dup_bytes = 0
    for number, share in enumerate(BIG_SHARES):
        path = root / f"large-{number}.img"
        target = int(total * share)
        with open(path, "w+b") as f:
            pos = 0
            while pos < target:
                n = min(target - pos, rng.randint(1 * MIB, 16 * MIB))
                data = _big_segment(rng, f"{seed}:big:{number}:{pos}", n, text, f, written)
                if data is None:
                    continue
                dup_bytes += data[1]
                f.write(data[0])
                written.append((path, pos, len(data[0])))
                pos += len(data[0])
        info.files += 1
        info.bytes += pos
    info.notes["duplicated_bytes"] = dup_bytes
    return info


def _big_segment(rng: random.Random, seed: str, n: int, text: TextSource, f,
                 written: list[tuple[Path, int, int]]) -> tuple[bytes, int] | None:
    """One segment: (bytes, how many of them repeat earlier content)."""
    pick = rng.choices(("random", "text", "low", "zero", "copy"), weights=(35, 30, 15, 5, 15))[0]
    if pick == "random":
        return random_bytes(seed, n), 0
    if pick == "text":
        return text.text(rng, n, rng.choice(("code", "prose", "data"))), 0
    if pick == "low":
        return random_bytes(seed, n).translate(_LOW_ENTROPY), 0
    if pick == "zero":
        return bytes(n), 0
    if not written:
        return None
    src, offset, length = rng.choice(written)
    length = min(length, n)
    pad = random_bytes(seed, rng.randint(1, 4095))  # shifts the copy off any chunk boundary
    f.flush()
    with open(src, "rb") as g:
        g.seek(offset)
        copy = g.read(length)
    return pad + copy, len(copy)


# ---- mutation --------------------------------------------------------------------------------


def _files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if stat.S_ISREG(path.lstat().st_mode):
                out.append(path)
    return out


def _insert(path: Path, offset: int, data: bytes) -> None:
    old = path.read_bytes()
    path.write_bytes(old[:offset] + data + old[offset:])


def _edit(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def mutate(info: CorpusInfo, seed: int, text: TextSource) -> dict[str, int]:
    """Change the corpus as a day of work would; returns counts of each kind of change."""
    rng = random.Random(f"{seed}:mutate:{info.name}")
    files = _files(info.root)
    counts = {"appended": 0, "edited": 0, "inserted": 0, "deleted": 0, "new": 0,
              "bytes_changed": 0}
    if info.name == "big":
        plans = ["inserted", "appended", "edited", "deleted"]
        chosen = files[: len(plans)]
    else:
        k = max(5, round(0.01 * len(files)))
        chosen = sorted(rng.sample(files, k))
        plans = [rng.choices(("appended", "edited", "inserted", "deleted"),
                             weights=(30, 25, 25, 20))[0] for _ in chosen]
    for path, plan in zip(chosen, plans, strict=True):
        size = path.stat().st_size
        scale = 4 * MIB if info.name == "big" else 16 * KIB
        change = text.text(rng, rng.randint(scale // 4, scale), "code")
        if plan == "deleted":
            counts["bytes_changed"] += size
            path.unlink()
        elif plan == "appended":
            _append(path, change)
            counts["bytes_changed"] += len(change)
        elif plan == "inserted":
            if info.name == "big":
                change = change[:4097]  # a few KiB in the middle: everything after it shifts
            _insert(path, rng.randint(0, size) if size else 0, change)
            counts["bytes_changed"] += len(change)
        else:
            change = change[:max(1, size // 3)] if size else b""
            _edit(path, rng.randint(0, max(0, size - len(change))), change)
            if not change:
                _append(path, b"x")
            counts["bytes_changed"] += max(1, len(change))
        counts[plan] += 1
    n_new = 1 if info.name == "big" else max(1, len(chosen) // 4)
    dirs = sorted({p.parent for p in files})
    for i in range(n_new):
        folder = rng.choice(dirs)
        if info.name == "big":
            nbytes = max(MIB, info.bytes // 50)
            data = random_bytes(f"{seed}:new:{i}", nbytes // 2) + text.text(rng, nbytes // 2)
        else:
            data = text.text(rng, int(rng.lognormvariate(8.3, 1.2)), "code")
        (folder / f"new-{seed}-{i}.txt").write_bytes(data)
        counts["new"] += 1
        counts["bytes_changed"] += len(data)
    return counts


# ---- hash trees ------------------------------------------------------------------------------


def hash_tree(root: Path) -> dict[str, tuple]:
    """relative path -> (type, mode, size, mtime_ns, content hash or link target)."""
    tree: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [*dirnames, *sorted(filenames)]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                tree[rel] = ("l", None, None, None, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                tree[rel] = ("d", mode, None, None, None)
            elif stat.S_ISREG(st.st_mode):
                hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
                with open(path, "rb") as f:
                    while block := f.read(8 * MIB):
                        hasher.update(block)
                tree[rel] = ("f", mode, st.st_size, st.st_mtime_ns, hasher.hexdigest())
            else:
                tree[rel] = ("other", mode, None, None, None)
    return tree


def compare_trees(expected: dict[str, tuple], actual: dict[str, tuple]) -> dict[str, list[str]]:
    """Differences: ``content`` (missing/extra entries, type, size, bytes, link target) and
    ``metadata`` (modes, file mtimes). Each list holds at most 10 example paths."""
    content: list[str] = []
    metadata: list[str] = []
    for rel in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(rel), actual.get(rel)
        if want is None or got is None:
            content.append(f"{'extra' if want is None else 'missing'}: {rel}")
        elif (want[0], want[2], want[4]) != (got[0], got[2], got[4]):
            content.append(f"differs: {rel}")
        elif want[1] != got[1] or (want[0] == "f" and want[3] != got[3]):
            metadata.append(f"metadata: {rel}")
    return {"content_errors": len(content), "metadata_errors": len(metadata),
            "examples": (content + metadata)[:10]}


def tree_size(path: Path) -> int:
    """Apparent size of every regular file below ``path``."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total
