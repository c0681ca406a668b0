"""The tools under test and how each phase runs with each of them, with comparable settings.

* Encryption on everywhere: FogVault XChaCha20-Poly1305 with keyed BLAKE3 ids; restic's only
  mode (AES-256-CTR + Poly1305-AES, SHA-256 ids); borg ``repokey-blake2`` (AES-256-CTR +
  keyed BLAKE2b ids).
* Compression: FogVault zstd level 3 (its default); restic 0.14 knows only ``--compression
  auto|max|off``, and ``auto`` is klauspost/zstd "SpeedDefault" (about level 3); borg
  ``--compression zstd,3``.
* Password KDF: FogVault ``init`` with its default profile (Argon2id ``standard``: 32 MiB, 8
  passes) unless ``--fogvault-kdf`` names one; restic scrypt as restic calibrates it; borg 1.2
  PBKDF2-SHA256 (100,000 rounds). Passwords come from a file (``FOGVAULT_PASSWORD_FILE``,
  ``RESTIC_PASSWORD_FILE``, ``BORG_PASSCOMMAND="cat FILE"``).
* Chunkers at their defaults: FogVault FastCDC 512 KiB/1 MiB/8 MiB, restic Rabin
  512 KiB/1 MiB/8 MiB, borg buzhash 512 KiB/2 MiB/8 MiB. Packs: 16 MiB for FogVault and
  restic; borg writes 500 MiB segment files.
* Caches in the work dir: ``--cache-dir``, ``RESTIC_CACHE_DIR``, ``BORG_BASE_DIR``.
* check: each tool's default ``check`` (FogVault and restic read no pack data; borg's default
  also reads every segment to verify its CRCs). forget + prune: ``forget --keep-last 1
  --prune`` (FogVault, restic); ``prune --keep-last 1`` then ``compact`` (borg 1.2 frees
  space only in compact).

Every phase is one or more commands run directly (no shell), so their rusage is the tool's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HOST = "bench-host"


@dataclass(slots=True)
class Command:
    argv: list[str]
    cwd: Path | None = None
    ok_codes: tuple[int, ...] = (0,)


@dataclass(slots=True)
class Setup:
    """Where one tool's repository, cache and password live for one corpus."""

    repo: Path
    cache: Path
    password_file: Path
    source: Path


@dataclass(slots=True)
class Tool:
    name: str
    executable: str
    settings: str
    kdf: str | None = None  # FogVault only: an init --kdf profile; None: its default
    pythonpath: str | None = None  # FogVault only: a frozen copy of the package (bench.py)

    def version(self) -> str:
        flag = "version" if self.name == "restic" else "--version"
        try:
            out = subprocess.run([self.executable, flag], capture_output=True, text=True,
                                 timeout=60, check=False)
        except OSError as exc:
            return f"unavailable ({exc})"
        return (out.stdout or out.stderr).strip().splitlines()[0]

    def env(self, s: Setup) -> dict[str, str]:
        if self.name == "fogvault":
            env = {"FOGVAULT_PASSWORD_FILE": str(s.password_file)}
            if self.pythonpath:
                env["PYTHONPATH"] = self.pythonpath
            return env
        if self.name == "restic":
            return {"RESTIC_REPOSITORY": str(s.repo), "RESTIC_PASSWORD_FILE": str(s.password_file),
                    "RESTIC_CACHE_DIR": str(s.cache)}
        return {"BORG_REPO": str(s.repo), "BORG_PASSCOMMAND": f"cat {s.password_file}",
                "BORG_BASE_DIR": str(s.cache), "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def _fv(self, s: Setup, *args: str) -> list[str]:
        return [self.executable, "-r", str(s.repo), "--cache-dir", str(s.cache), *args]

    def phase(self, phase: str, s: Setup, *, label: str = "", target: Path | None = None
              ) -> list[Command]:
        """The commands of ``phase`` (init, backup, snapshots, restore, check, prune)."""
        exe, src = self.executable, str(s.source)
        if self.name == "fogvault":
            table = {
                "init": [self._fv(s, "init", *(["--kdf", self.kdf] if self.kdf else []))],
                "backup": [self._fv(s, "backup", "--host", HOST, src)],
                "snapshots": [self._fv(s, "snapshots")],
                "restore": [self._fv(s, "restore", "--version", "latest", "--target",
                                     str(target))],
                "check": [self._fv(s, "check")],
                "prune": [self._fv(s, "forget", "--keep-last", "1", "--prune")],
            }
            return [Command(argv) for argv in table[phase]]
        if self.name == "restic":
            table = {
                "init": [[exe, "init", "--repository-version", "2"]],
                "backup": [[exe, "backup", "--compression", "auto", "--host", HOST, src]],
                "snapshots": [[exe, "snapshots"]],
                "restore": [[exe, "restore", "latest", "--target", str(target)]],
                "check": [[exe, "check"]],
                "prune": [[exe, "forget", "--keep-last", "1", "--prune",
                           "--compression", "auto"]],
            }
            return [Command(argv) for argv in table[phase]]
        table_borg = {
            "init": [Command([exe, "init", "--encryption", "repokey-blake2"])],
            "backup": [Command([exe, "create", "--compression", "zstd,3", f"::{label}", src])],
            "snapshots": [Command([exe, "list"])],
            "restore": [Command([exe, "extract", "::" + label], cwd=target)],
            "check": [Command([exe, "check"])],
            "prune": [Command([exe, "prune", "--keep-last", "1"]), Command([exe, "compact"])],
        }
        return table_borg[phase]


def fogvault_executable() -> str:
    """The project's own entry point (.venv/bin/fogvault beside this interpreter)."""
    here = Path(sys.executable).parent / "fogvault"
    if here.exists():
        return str(here)
    found = shutil.which("fogvault")
    if found is None:
        raise SystemExit("fogvault is not installed: run scripts/test.sh or pip install -e .")
    return found


def ensure_tools(names: list[str], install: bool, kdf: str | None = None) -> dict[str, Tool]:
    """Find each tool; install restic/borgbackup with apt-get when missing and allowed."""
    missing = [n for n in names if n != "fogvault" and shutil.which(n) is None]
    if not os.access("/usr/bin/time", os.X_OK):
        missing.append("time")  # GNU time measures peak RSS (see measure.py)
    if missing and install:
        packages = [{"restic": "restic", "borg": "borgbackup", "time": "time"}[n]
                    for n in missing]
        print(f"installing {' '.join(packages)} with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)
    tools: dict[str, Tool] = {}
    for name in names:
        if name == "fogvault":
            tools[name] = Tool(name, fogvault_executable(),
                               f"init --kdf {kdf or '(default)'}; zstd 3 (repository default); "
                               "XChaCha20-Poly1305; 16 MiB packs", kdf=kdf)
            continue
        path = shutil.which(name)
        if path is None:
            raise SystemExit(f"{name} is not installed (run as root to let the script install "
                             f"it, or apt-get install {'borgbackup' if name == 'borg' else name})")
        if name == "restic":
            settings = ("repository version 2; --compression auto (zstd SpeedDefault, about "
                        "level 3); AES-256-CTR + Poly1305; 16 MiB packs")
        else:
            settings = "repokey-blake2; --compression zstd,3; default chunker (avg 2 MiB)"
        tools[name] = Tool(name, path, settings)
    return tools
