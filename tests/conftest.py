"""Shared fixtures: real repositories on real folders, and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fogvault.chunker import ChunkerParams
from fogvault.crypto import KDF_PROFILES
from fogvault.repo.config import RepoConfig
from fogvault.repo.repository import Repository

PASSWORD = b"correct horse battery staple"
FAST_KDF = KDF_PROFILES["interactive"]
# Small chunks and packs so that small test data still spans many chunks and packs.
SMALL_CHUNKS = ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--extended", action="store_true", help="run long stress tests too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--extended"):
        return
    skip = pytest.mark.skip(reason="extended run only (--extended)")
    for item in items:
        if "extended" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def make_repo(tmp_path: Path, cache_dir: Path) -> Callable[..., Repository]:
    """Create a repository on local folders below tmp_path; small chunks and packs."""
    opened: list[Repository] = []

    def make(*names: str, pack_size: int = 256 * 1024, **config: object) -> Repository:
        urls = [str(tmp_path / n) for n in (names or ("repo",))]
        cfg = RepoConfig(chunker=SMALL_CHUNKS, pack_size=pack_size, **config)  # type: ignore[arg-type]
        repo = Repository.init(urls, PASSWORD, config=cfg, kdf=FAST_KDF, cache_dir=cache_dir)
        opened.append(repo)
        return repo

    yield make
    for repo in opened:
        repo.close()


@pytest.fixture
def reopen(cache_dir: Path) -> Callable[[Repository], Repository]:
    def do(repo: Repository) -> Repository:
        return Repository.open(repo.targets.urls, PASSWORD, cache_dir=cache_dir)

    return do


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGVAULT_")}
    env.update(
        FOGVAULT_PASSWORD=PASSWORD.decode(),
        XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        XDG_STATE_HOME=str(tmp_path / "xdg-state"),
    )
    return env


@pytest.fixture
def fogvault(cli_env: dict[str, str], tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run the real ``fogvault`` CLI in a subprocess; returns the CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, input: bytes | None = None,
            cwd: Path | None = None, wrap: list[str] | None = None,
            ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*(wrap or []), sys.executable, "-m", "fogvault", *args],
            env={**cli_env, **(env or {})}, input=input, capture_output=True,
            cwd=cwd or tmp_path, timeout=300, check=False,
        )

    return run
