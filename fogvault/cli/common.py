"""What every command shares: the common options, opening the repository, printing."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from fogvault.password import PasswordSource
from fogvault.repo.repository import Repository


@dataclass(slots=True)
class GlobalOptions:
    repos: list[str] = field(default_factory=list)
    password_file: str | None = None
    json: bool = False
    quiet: bool = False
    verbose: int = 0
    cache_dir: str | None = None
    no_cache: bool = False
    no_lock: bool = False
    retry_lock: float = 0.0

    def repo_urls(self) -> list[str]:
        if self.repos:
            return self.repos
        env = os.environ.get("FOGVAULT_REPO", "")
        return [u.strip() for u in env.split(",") if u.strip()]

    def password_source(self) -> PasswordSource:
        return PasswordSource.from_env(self.password_file)

    def cache_path(self) -> Path | None:
        return Path(self.cache_dir).expanduser() if self.cache_dir else None


def options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


@contextlib.contextmanager
def open_repository(ctx: typer.Context, *, load_index: bool = True) -> Iterator[Repository]:
    opts = options(ctx)
    repo = Repository.open(
        opts.repo_urls(),
        opts.password_source().read(),
        cache_dir=opts.cache_path(),
        use_cache=not opts.no_cache,
        load_index=load_index,
    )
    repo.use_locks = not opts.no_lock
    repo.lock_wait = opts.retry_lock
    try:
        yield repo
    finally:
        repo.close()


class Printer:
    """Text to stdout unless quiet; JSON documents to stdout; messages to stderr."""

    def __init__(self, opts: GlobalOptions) -> None:
        self.opts = opts

    @classmethod
    def of(cls, ctx: typer.Context) -> Printer:
        return cls(options(ctx))

    @property
    def json_mode(self) -> bool:
        return self.opts.json

    def line(self, text: str = "") -> None:
        if not self.opts.quiet and not self.opts.json:
            print(text)

    def json(self, document: Any) -> None:
        print(json.dumps(document, indent=None if self.opts.quiet else 2, default=str))

    def json_line(self, document: Any) -> None:
        print(json.dumps(document, separators=(",", ":"), default=str), flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=sys.stderr)


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)




def setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logger = logging.getLogger("fogvault")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
