"""``fogvault init``: create a repository on every given target."""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import DEFAULT_KDF, KdfOption, Printer, options
from fogvault.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    ctx: typer.Context,
    kdf: KdfOption = DEFAULT_KDF,
    compression_level: Annotated[int, typer.Option(help="zstd level, 0 = off.")] = 3,
    pack_size: Annotated[int, typer.Option(help="Target pack size in MiB.")] = 16,
) -> None:
    """Create a new repository (refuses a target that holds one, or other files)."""
    from fogvault.chunker import MIB
    from fogvault.crypto import KDF_PROFILES
    from fogvault.repo.config import RepoConfig
    from fogvault.repo.repository import Repository

    opts = options(ctx)
    if kdf not in KDF_PROFILES:
        raise UsageError(f"--kdf must be one of {', '.join(KDF_PROFILES)}")
    password = opts.password_source().read(confirm=True)
    config = RepoConfig(compression_level=compression_level, pack_size=pack_size * MIB)
    repo = Repository.init(
        opts.repo_urls(), password, config=config, kdf=KDF_PROFILES[kdf],
        cache_dir=opts.cache_path(), use_cache=not opts.no_cache, policy=opts.target_policy(),
    )
    out = Printer(opts)
    if out.json_mode:
        # key files an interrupted init left (named in warnings too): removed_keys, those init
        # deleted; stray_keys, those still on some target ('key remove' takes them)
        out.json({"id": repo.config.repo_id, "targets": repo.targets.urls,
                  "stray_keys": repo.stray_keys, "removed_keys": repo.removed_keys})
    else:
        out.line(f"created repository {repo.config.repo_id[:8]} at {', '.join(repo.targets.urls)}")
        out.line("Keep the password safe: without it the data cannot be read by anyone.")
    repo.close()
