"""``fogvault copy``: snapshots of another repository (``--from-repo``) saved in this one, as
restic's ``copy``."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import (
    DryRunOption,
    FromPasswordCommandOption,
    FromPasswordFileOption,
    FromRepoOption,
    HostFilter,
    PathFilter,
    Printer,
    SourceRepository,
    TagFilter,
    open_repository,
)
from fogvault.errors import FogVaultError, PartialSuccess
from fogvault.sizes import counted, format_size

if TYPE_CHECKING:
    from fogvault.maintenance.copy import CopyResult


def register(app: typer.Typer) -> None:
    app.command("copy")(copy_cmd)


def copy_cmd(
    ctx: typer.Context,
    uids: Annotated[list[str] | None, typer.Argument(
        help="Snapshots to copy: uids (prefixes) or 'latest' (default: every snapshot the "
        "filters select).")] = None,
    from_repo: FromRepoOption = None,
    from_password_file: FromPasswordFileOption = None,
    from_password_command: FromPasswordCommandOption = None,
    host: HostFilter = None,
    tag: TagFilter = None,
    path: PathFilter = None,
    dry_run: DryRunOption = False,
) -> None:
    """Copy snapshots from the repository --from-repo into this one (-r), oldest first;
    snapshots copied before are skipped. --no-lock applies to the source."""
    from fogvault.cli.progress import make_phase_progress
    from fogvault.maintenance.copy import CopyOptions, copy

    source = SourceRepository.given(ctx, from_repo, from_password_file, from_password_command)
    options = CopyOptions(uids=uids or [], host=host, tags=tag or [], paths=path or [],
                          dry_run=dry_run)
    out = Printer.of(ctx)
    progress = make_phase_progress(out)
    try:
        with open_repository(ctx, load_index=False) as destination, \
                open_repository(ctx, load_index=False, source=source) as source_repo:
            destination.use_locks = True  # --no-lock is the source's, as restic's: this is written
            result = copy(source_repo, destination, options, progress)
    finally:
        progress.close()
    _report(out, result)
    if result.failed:
        done = len(result.copied) + len(result.skipped)
        kind = PartialSuccess if done else FogVaultError
        damaged = [side for side in ("source", "destination")
                   if any(failed.repository == side for failed in result.failed)]
        check = (f"; 'fogvault check' of the {' and of the '.join(damaged)} tells more"
                 if damaged else "")  # else written by a newer FogVault: nothing is damaged
        raise kind(f"{len(result.failed)} of {counted(len(result.failed) + done, 'snapshot')} "
                   f"could not be copied (named above){check}")


def _report(out: Printer, result: CopyResult) -> None:
    if out.json_mode:
        out.json_line({"message_type": "summary", **asdict(result)})
        return
    for copied in result.copied:
        out.line(f"{copied.source_uid} -> {copied.uid or '(dry run)'}")
    notes = [f"{len(result.skipped)} copied before"] if result.skipped else []
    notes += [f"{len(result.failed)} failed"] if result.failed else []
    verb = "would copy" if result.dry_run else "copied"
    out.line(f"{verb} {counted(len(result.copied), 'snapshot')}"
             + (f" ({', '.join(notes)})" if notes else ""))
    if not result.copied:
        return
    read = (f"{counted(result.data_blobs_read, 'data blob')} and "
            f"{counted(result.tree_blobs_read, 'tree')} ({format_size(result.bytes_read)})")
    if result.dry_run:
        out.line(f"would read {read} from the source")
    else:
        out.line(f"read {read} from the source, added "
                 f"{counted(result.data_blobs_added + result.tree_blobs_added, 'blob')} "
                 f"({format_size(result.bytes_added)}) in {result.duration_s:.1f} s")
    if not result.same_ids:
        out.line("the two repositories have different identity keys, so all of the data is "
                 "read; a repository made with 'fogvault init --from-repo SOURCE "
                 "--copy-chunker-params' gets only what it lacks")
