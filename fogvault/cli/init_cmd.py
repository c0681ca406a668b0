"""``fogvault init``: create a repository on every given target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import (
    DEFAULT_KDF,
    FromPasswordCommandOption,
    FromPasswordFileOption,
    FromRepoOption,
    KdfOption,
    Printer,
    SourceRepository,
    kdf_params,
    open_repository,
    options,
)
from fogvault.errors import UsageError

if TYPE_CHECKING:
    from fogvault.repo.config import RepoConfig


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    ctx: typer.Context,
    kdf: KdfOption = DEFAULT_KDF,
    compression_level: Annotated[int, typer.Option(help="zstd level, 0 = off.")] = 3,
    pack_size: Annotated[int, typer.Option(help="Target pack size in MiB.")] = 16,
    from_repo: FromRepoOption = None,
    from_password_file: FromPasswordFileOption = None,
    from_password_command: FromPasswordCommandOption = None,
    copy_chunker_params: Annotated[bool, typer.Option(
        "--copy-chunker-params", help="Take the chunker parameters and the identity key (blob "
        "ids) of the repository --from-repo: the same data gets the same chunks and ids in "
        "both, and 'copy' between them moves only what is missing.")] = False,
) -> None:
    """Create a new repository (refuses a target that holds one, or other files)."""
    from fogvault.chunker import MIB
    from fogvault.repo.config import MAX_PACK_SIZE, RepoConfig
    from fogvault.repo.repository import Repository

    opts = options(ctx)
    kdf_cost = kdf_params(kdf)
    if not 1 <= pack_size <= MAX_PACK_SIZE // MIB:  # the config's own range is in bytes
        raise UsageError(f"--pack-size must be 1 to {MAX_PACK_SIZE // MIB} (MiB)")
    if (from_repo or from_password_file or from_password_command) and not copy_chunker_params:
        raise UsageError("init reads the repository --from-repo only with "
                         "--copy-chunker-params")  # restic ignores it: say what it does
    source, identity = (_source_identity(ctx, from_repo, from_password_file,
                                         from_password_command)
                        if copy_chunker_params else (None, None))
    password = opts.password_source().read(confirm=True)
    config = RepoConfig(compression_level=compression_level, pack_size=pack_size * MIB)
    if source is not None:
        config.chunker = source.chunker
    repo = Repository.init(
        opts.repo_urls(), password, config=config, kdf=kdf_cost,
        cache_dir=opts.cache_path(), use_cache=not opts.no_cache, policy=opts.target_policy(),
        identity=identity,
    )
    out = Printer(opts)
    if out.json_mode:
        # key files an interrupted init left (named in warnings too): removed_keys, those init
        # deleted; stray_keys, those still on some target ('key remove' takes them)
        out.json({"id": repo.config.repo_id, "targets": repo.targets.urls,
                  "stray_keys": repo.stray_keys, "removed_keys": repo.removed_keys,
                  "chunker_params_from": source.repo_id if source is not None else None})
    else:
        out.line(f"created repository {repo.config.repo_id[:8]} at {', '.join(repo.targets.urls)}")
        if source is not None:
            out.line("with the chunker parameters and blob ids of repository "
                     f"{source.repo_id[:8]}: 'fogvault copy' between the two moves only what "
                     "is missing")
        out.line("Keep the password safe: without it the data cannot be read by anyone.")
    repo.close()


def _source_identity(ctx: typer.Context, repos: list[str] | None, password_file: str | None,
                     password_command: str | None) -> tuple[RepoConfig, bytes]:
    """The config and the identity key of the repository --from-repo names."""
    source = SourceRepository.given(ctx, repos, password_file, password_command)
    with open_repository(ctx, load_index=False, source=source) as repo:
        return repo.config, repo.master.identity
