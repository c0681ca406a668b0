"""``fogvault repair``: copy missing and damaged objects from healthy targets to the others."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, open_repository
from fogvault.errors import EXIT_ERROR, EXIT_PARTIAL
from fogvault.sizes import counted, format_size

if TYPE_CHECKING:
    from fogvault.maintenance.repair import RepairResult, TargetRepair


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
        "exclusive lock.")] = False,
) -> None:
    """Restore full redundancy: copy what targets lack or hold damaged from good copies.

    Exit code 1 if something could not be repaired, 3 if a target was unreachable.
    """
    from fogvault.cli.progress import make_phase_progress
    from fogvault.maintenance.repair import RepairOptions, repair

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
    if result.unrecoverable or any(t.failed or t.skipped for t in result.targets):
        return EXIT_ERROR
    return EXIT_PARTIAL if any(not t.reachable for t in result.targets) else 0


#: what repair does to a target's objects: (list, verb, past tense, noun, plural)
_ACTIONS = (("copied", "copy", "copied", "object", "objects"),
            ("replaced", "replace", "replaced", "damaged copy", "damaged copies"),
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
        out.line(f"{verb}delete: {name} (damaged on every target; the packs it may list are "
                 "listed by other index files)")
    for target in result.targets:
        if not target.reachable:
            out.problem(f"{target.url}: skipped ({target.error})")
            continue
        say = out.problem if target.failed or target.skipped else out.line
        say(f"{target.url}: {_target_summary(target, result.dry_run)}")
        # what went as planned, object by object, only on request: a new target gets them all
        listed = ("copied", "replaced", "deleted") if out.opts.verbose else ()
        for kind in (*listed, "failed", "skipped"):
            for item in getattr(target, kind):
                say(f"  {kind}: {item}")
    for item in result.unrecoverable:
        out.problem(f"unrecoverable: {item}")
    code = repair_exit_code(result)
    if result.dry_run:
        out.line(f"dry run: {counted(result.changes, 'change')} planned, nothing was changed")
    elif code == EXIT_ERROR:
        out.problem("some objects could not be repaired")
    elif code == EXIT_PARTIAL:
        out.line("the reachable targets hold every object; repair again for the skipped ones")
    else:
        out.line("every target holds every object" if result.changes else "nothing to repair")
