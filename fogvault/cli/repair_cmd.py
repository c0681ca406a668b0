"""``fogvault repair``: copy missing and damaged objects from healthy targets to the others;
with ``--snapshots``, instead, cut what is lost on every target out of copies of snapshots."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import HostFilter, PathFilter, Printer, TagFilter, open_repository
from fogvault.errors import EXIT_ERROR, EXIT_PARTIAL, UsageError
from fogvault.sizes import counted, format_size

if TYPE_CHECKING:
    from fogvault.maintenance.repair import RepairResult, TargetRepair
    from fogvault.maintenance.repair_snapshots import (
        RepairedSnapshot,
        RepairSnapshotsOptions,
        RepairSnapshotsResult,
    )

#: lost paths listed per snapshot in the text report without -v: one lost pack can cut
#: thousands of files, and the same ones again in every snapshot that holds them (--json and
#: -v list them all; each copy's warnings keep the first 1,000)
SHOWN_CUTS = 10


def register(app: typer.Typer) -> None:
    app.command("repair")(repair_cmd)


def repair_cmd(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only show.")] = False,
    read_data: Annotated[
        bool, typer.Option(help="Also read every pack on every target to find damage.")
    ] = False,
    index: Annotated[bool, typer.Option(
        "--index", help="First list in new index files the packs no index lists (after an "
        "index file was lost on every target); reads each such pack in full, takes the "
        "exclusive lock. Also take out of the index the packs no target holds intact, "
        "keeping what still reads of them, so that a backup stores the rest again.")] = False,
    snapshots: Annotated[bool, typer.Option(
        "--snapshots", help="Instead: save copies of the snapshots that use data lost on "
        "every target, without it (files keep their intact chunks, lost folders are left "
        "empty), tagged 'repaired'. Run repair and repair --index first.")] = False,
    uids: Annotated[list[str] | None, typer.Argument(
        help="With --snapshots: the snapshots to repair (default: those the filters "
        "select).", show_default=False)] = None,
    forget: Annotated[bool, typer.Option(
        "--forget", help="With --snapshots: delete each original once its copy is saved "
        "wherever it was.")] = False,
    host: HostFilter = None,
    tag: TagFilter = None,
    path: PathFilter = None,
) -> None:
    """Restore full redundancy: copy what targets lack or hold damaged from good copies.

    Exit code 1 if something could not be repaired, 3 if a target was unreachable.

    With --snapshots, only that: copies of snapshots without data lost on every target.
    """
    from fogvault.cli.progress import make_phase_progress
    from fogvault.maintenance.repair import RepairOptions, repair

    if snapshots:
        if index or read_data:
            raise UsageError("--snapshots does only that: give --index or --read-data in a "
                             "run of their own, before it")
        _repair_snapshots(ctx, _snapshot_options(uids, forget, host, tag, path, dry_run))
        return
    if uids or forget or host is not None or tag or path:
        raise UsageError("snapshot uids, --forget, --host, --tag and --path go with "
                         "--snapshots")
    out = Printer.of(ctx)
    progress = make_phase_progress(out)
    try:
        with open_repository(ctx, load_index=False) as repo:
            options = RepairOptions(dry_run=dry_run, read_data=read_data, index=index)
            result = repair(repo, options, progress)
    finally:
        progress.close()
    report_repair(out, result)
    raise typer.Exit(repair_exit_code(result))


def repair_exit_code(result: RepairResult) -> int:
    if result.unrecoverable or result.blobs_lost or any(t.failed or t.skipped
                                                        for t in result.targets):
        return EXIT_ERROR
    return EXIT_PARTIAL if any(not t.reachable for t in result.targets) else 0


#: what repair does to a target's objects: (list, verb, past tense, noun, plural)
_ACTIONS = (("copied", "copy", "copied", "object", "objects"),
            ("replaced", "replace", "replaced", "damaged copy", "damaged copies"),
            ("rewritten", "rewrite", "rewrote", "unreadable copy", "unreadable copies"),
            ("deleted", "delete", "deleted", "object the others deleted",
             "objects the others deleted"))


def _target_summary(target: TargetRepair, dry_run: bool) -> str:
    """What repair does (or would do) to one target, in a phrase: 'would copy 504 objects
    (12.3 MiB)', 'copied 2 objects, replaced 1 damaged copy (1.2 MiB); 1 failed'."""
    done = []
    for kind, verb, past, noun, nouns in _ACTIONS:
        count = len(getattr(target, kind))
        if count:
            done.append(f"{verb if dry_run else past} {count} {noun if count == 1 else nouns}")
    text = (("would " if dry_run else "") + ", ".join(done)) if done else "nothing to copy"
    if target.bytes_copied:
        text += f" ({format_size(target.bytes_copied)})"
    if target.failed:
        text += f"; {len(target.failed)} failed"
    if target.skipped:
        text += f"; {len(target.skipped)} held back"
    return text


def report_repair(out: Printer, result: RepairResult) -> None:
    if out.json_mode:
        out.json_line({"message_type": "summary", **asdict(result), "ok": result.ok})
        return
    verb = "would " if result.dry_run else ""
    for name in result.indexed:
        out.line(f"{verb}index: {name}")
    for name in result.left_out:
        out.line(f"not indexed: {name} (a prune or forget deleted it elsewhere)")
    for name in result.retired:
        out.line(f"{verb}delete: {name} (no target holds a good copy; the packs it may list are "
                 "listed by other index files)")
    for moved in result.moved:
        out.line(f"{verb}move into its folder: {moved.url} {moved.name} (as {moved.to})")
    copied = ("a real run copies it" if result.dry_run else "copied below")
    for name in result.found:
        out.line(f"found intact: {name} (not lost: {copied} where it is missing or damaged)")
    for name in result.lost_packs:
        out.line(f"{verb}take out of the index: {name} (no target holds it intact)")
    if result.lost_packs:
        say = out.problem if result.blobs_lost else out.line
        say(f"{verb}keep {counted(result.blobs_salvaged, 'chunk')} of "
            f"{'them' if len(result.lost_packs) > 1 else 'it'} in new packs; "
            f"{counted(result.blobs_lost, 'chunk')} lost"
            + (": back up the same files again to store them, or 'fogvault repair --snapshots'"
               " cuts them out of the snapshots" if result.blobs_lost else ""))
    for target in result.targets:
        if not target.reachable:
            out.problem(f"{target.url}: skipped ({target.error})")
            continue
        say = out.problem if target.failed or target.skipped else out.line
        say(f"{target.url}: {_target_summary(target, result.dry_run)}")
        # what went as planned, object by object, only on request: a new target gets them all
        listed = ("copied", "replaced", "rewritten", "deleted") if out.opts.verbose else ()
        for kind in (*listed, "failed", "skipped"):
            for item in getattr(target, kind):
                say(f"  {kind}: {item}")
    for item in result.unrecoverable:
        out.problem(f"unrecoverable: {item}")
    code = repair_exit_code(result)
    if result.dry_run:
        out.line(f"dry run: {counted(result.changes, 'change')} planned, nothing was changed")
    elif code == EXIT_ERROR:
        out.problem("some objects could not be repaired" if result.unrecoverable or
                    not result.blobs_lost else "data was lost on every target (see above)")
    elif code == EXIT_PARTIAL:
        out.line("the reachable targets hold every object; repair again for the skipped ones")
    else:
        out.line("every target holds every object" if result.changes else "nothing to repair")


def _snapshot_options(uids: list[str] | None, forget: bool, host: str | None,
                      tags: list[str] | None, paths: list[str] | None,
                      dry_run: bool) -> RepairSnapshotsOptions:
    from fogvault.maintenance.repair_snapshots import RepairSnapshotsOptions

    options = RepairSnapshotsOptions(uids=uids or [], host=host, tags=tags or [],
                                     paths=paths or [], forget=forget, dry_run=dry_run)
    options.validate()  # before the password is asked for
    return options


def _repair_snapshots(ctx: typer.Context, options: RepairSnapshotsOptions) -> None:
    from fogvault.maintenance.repair_snapshots import repair_snapshots

    with open_repository(ctx, load_index=False) as repo:  # loaded under the lock
        result = repair_snapshots(repo, options)
    report_repaired_snapshots(Printer.of(ctx), result, options.forget)


def report_repaired_snapshots(out: Printer, result: RepairSnapshotsResult, forget: bool
                              ) -> None:
    if out.json_mode:
        out.json_line({"message_type": "summary", "dry_run": result.dry_run,
                       "intact": result.intact,
                       "already_repaired": result.already_repaired, "repaired": [
                           {"old_uid": r.old_uid, "new_uid": r.new_uid,
                            "saved_before": r.saved_before,
                            "cuts": [asdict(c) for c in r.cuts],
                            "summary": asdict(r.summary), "original_kept": r.kept_original}
                           for r in result.repaired]})
        return
    for repaired in result.repaired:
        _report_repaired(out, repaired)
    verb = "would repair" if result.dry_run else "repaired"
    before = sum(r.saved_before for r in result.repaired)
    hint = ""
    if result.repaired and not result.dry_run:
        hint = ("; run 'fogvault prune' to free the data" if forget else
                "; the originals stay, and check and prune fail on them (forget them, or run "
                "again with --forget)")
    forgotten = sum(not r.kept_original for r in result.repaired) if forget else 0
    out.line(f"{verb} {counted(len(result.repaired), 'snapshot')}"
             + (f" ({before} by an earlier run)" if before else "")
             # a dry run does not know which originals a target that lacks the copy keeps
             + (f", {'would forget up to' if result.dry_run else 'forgot'} "
                f"{counted(forgotten, 'original')}" if forgotten else "")
             + f", {result.intact} intact"
             + (f", {result.already_repaired} already repaired (earlier runs' copies)"
                if result.already_repaired else "") + hint)


def _report_repaired(out: Printer, repaired: RepairedSnapshot) -> None:
    files, folders = repaired.files_cut, repaired.folders_emptied
    cut = ", ".join(part for part in (
        f"{counted(files, 'file')} cut" if files else "",
        f"{counted(folders, 'folder')} emptied" if folders else "") if part)
    before = " (copy saved by an earlier run)" if repaired.saved_before else ""
    out.line(f"{repaired.old_uid} -> {repaired.new_uid}{before}: {cut}; "
             f"{counted(repaired.summary.files, 'file')}, "
             f"{format_size(repaired.summary.total_bytes)} left")
    shown = repaired.cuts if out.opts.verbose else repaired.cuts[:SHOWN_CUTS]
    for item in shown:
        out.line(f"  {item.describe()}")
    if len(repaired.cuts) > len(shown):
        out.line(f"  ... and {len(repaired.cuts) - len(shown)} more (-v or --json lists them)")
    if repaired.kept_original:
        out.problem(f"  original kept: {repaired.kept_original}")
