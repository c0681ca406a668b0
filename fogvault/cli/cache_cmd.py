"""``fogvault cache``: the local cache's folders, one per repository (copies of its index files
and tree packs), and removing old ones."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, RefusedOption, options, refuse_options, table
from fogvault.errors import FogVaultError, PartialSuccess, UsageError

if TYPE_CHECKING:
    from fogvault.repo.cache import CacheFolder

#: restic's default for --max-age
DEFAULT_MAX_AGE_DAYS = 30

_NO_REPOSITORY = "it opens no repository"
#: what ``cache`` would ignore: it reads only the cache folder (--cache-dir)
CACHE_REFUSES = (
    RefusedOption("-r/--repo", ("repo",), _NO_REPOSITORY),
    RefusedOption("--password-file/--password-command", ("password_file", "password_command"),
                  _NO_REPOSITORY),
    RefusedOption("--min-targets", ("min_targets",), _NO_REPOSITORY),
    RefusedOption("--no-lock", ("no_lock",), f"{_NO_REPOSITORY}, so it takes no lock"),
    RefusedOption("--retry-lock", ("retry_lock",), f"{_NO_REPOSITORY}, so it takes no lock"),
    RefusedOption("--no-cache", ("no_cache",), "it is about the cache"),
)


def register(app: typer.Typer) -> None:
    app.command("cache")(cache_cmd)


def cache_cmd(
    ctx: typer.Context,
    cleanup: Annotated[
        bool, typer.Option("--cleanup", help="Remove the folders of repositories not opened "
                           "for --max-age days.")
    ] = False,
    max_age: Annotated[
        int, typer.Option("--max-age", min=0, help="Days after which a folder is old.")
    ] = DEFAULT_MAX_AGE_DAYS,
) -> None:
    """List the cache's folders (per repository: size, tree packs, last use); remove old ones."""
    refuse_options(ctx, CACHE_REFUSES)
    from datetime import datetime

    from fogvault.repo.cache import default_cache_dir, is_old, remove_folder

    out = Printer.of(ctx)
    root = options(ctx).cache_path() or default_cache_dir()
    folders = _folders_in(root)
    removed, kept = [], []
    for folder in (f for f in folders if cleanup and is_old(f, max_age)):
        try:
            remove_folder(folder)
            removed.append(folder)
        except (OSError, ValueError) as exc:  # the others are still removed
            kept.append(f"{folder.path}: {getattr(exc, 'strerror', None) or exc}")
    if out.json_mode:
        out.json({"cache_dir": str(root), "folders": [
            {"repo_id": f.repo_id, "size": f.size, "tree_packs": f.tree_packs,
             "tree_pack_size": f.tree_pack_size,
             "last_used": datetime.fromtimestamp(f.last_used).astimezone().isoformat(),
             "old": is_old(f, max_age), "removed": f in removed} for f in folders]})
    else:
        _print_table(out, root, folders, removed, cleanup, max_age)
    if kept:
        raise PartialSuccess("not removed: " + "; ".join(kept))


def _folders_in(root: Path) -> list[CacheFolder]:
    from fogvault.repo.cache import cache_folders

    try:
        return list(cache_folders(root))
    except NotADirectoryError as exc:
        raise UsageError(f"the cache path {root} is not a folder") from exc
    except OSError as exc:
        raise FogVaultError(f"cannot list the cache folder {root}: "
                            f"{exc.strerror or exc}") from exc


def _print_table(out: Printer, root: Path, folders: list[CacheFolder],
                 removed: list[CacheFolder], cleanup: bool, max_age: int) -> None:
    from datetime import datetime

    from fogvault.repo.cache import is_old
    from fogvault.sizes import format_size

    rows = [[f.repo_id, format_size(f.size),
             f"{f.tree_packs} ({format_size(f.tree_pack_size)})" if f.tree_packs else "",
             datetime.fromtimestamp(f.last_used).strftime("%Y-%m-%d %H:%M"),
             "removed" if f in removed else "old" if is_old(f, max_age) else ""]
            for f in folders]
    out.result(f"cache: {root}")
    if rows:
        out.result(table(rows, ["Repository", "Size", "Tree packs", "Last used", ""]))
    old = sum(1 for f in folders if is_old(f, max_age) and f not in removed)
    if old and not cleanup:
        out.line(f"{old} of them not used for {max_age} days: 'fogvault cache --cleanup' "
                 "removes them")
