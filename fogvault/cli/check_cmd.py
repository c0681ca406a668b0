"""``fogvault check``: verify snapshots, index and packs on every target."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, open_repository
from fogvault.errors import EXIT_ERROR
from fogvault.sizes import counted

if TYPE_CHECKING:
    from fogvault.maintenance.check import CheckResult, TargetReport


def register(app: typer.Typer) -> None:
    app.command("check")(check_cmd)


def check_cmd(
    ctx: typer.Context,
    read_data: Annotated[bool, typer.Option(help="Read and verify every pack.")] = False,
    read_data_subset: Annotated[
        str | None,
        typer.Option(help="Read a subset: a group (n/m), a percentage (5%) or a size (500M)."),
    ] = None,
) -> None:
    """Check the repository; exit code 1 if anything is wrong."""
    from fogvault.cli.progress import make_phase_progress
    from fogvault.maintenance.check import CheckOptions, check

    out = Printer.of(ctx)
    progress = make_phase_progress(out)
    try:
        with open_repository(ctx, drop_empty_targets=True, load_index=False) as repo:
            result = check(repo, CheckOptions(read_data, read_data_subset), progress)
    finally:
        progress.close()
    _report(out, result)
    if not result.ok:
        raise typer.Exit(EXIT_ERROR)


def _report(out: Printer, result: CheckResult) -> None:
    if out.json_mode:
        out.json_line({"message_type": "summary", **asdict(result), "ok": result.ok,
                       "targets": [{**asdict(t), "ok": t.ok} for t in result.targets]})
        return
    out.line(", ".join(counted(n, noun) for n, noun in (
        (result.snapshots, "snapshot"), (result.trees, "tree"), (result.blobs, "blob"),
        (result.packs, "pack"))))
    for problem in result.problems:
        out.problem(f"error: {problem}")
    for target in result.targets:
        if not target.reachable:
            out.problem(f"{target.url}: UNREACHABLE ({target.error})")
            continue
        say = out.line if target.ok else out.problem
        read = f", {counted(target.packs_read, 'pack')} read" if target.packs_read else ""
        say(f"{target.url}: {_state(target)}{read}")
        for kind in ("missing", "wrong_size", "corrupt"):
            for name in getattr(target, kind):
                say(f"  {kind.replace('_', ' ')}: {name}")
        for name, why in target.unreadable.items():
            say(f"  unreadable: {name} ({why})")
        for note in _notes(result, target):
            say(f"  note: {note}")
    if result.data_missing and not any(t.unindexed_packs - t.unindexed_pruned
                                       for t in result.targets):
        first = ("'fogvault repair' copies back what a target or the local cache still holds "
                 "('repair --index' takes the rest out of the index); a backup of the same "
                 "files then stores it again" if result.missing_data_indexed else
                 "a backup of the same files stores it again")
        out.problem(f"the snapshots named above use data no target holds intact: {first}, and "
                    "'fogvault repair --snapshots' saves copies of the snapshots without what "
                    "stays lost")
    if result.ok:
        out.line("no errors were found")
    else:
        out.problem("errors were found")


def _state(target: TargetReport) -> str:
    """A reachable target's state: damage first, then copies that could not be read."""
    if target.damaged:
        return "DAMAGED"
    return "SOME COPIES UNREADABLE" if target.unreadable else "ok"


def _notes(result: CheckResult, target: TargetReport) -> list[str]:
    """Which of the target's missing or damaged copies can be had elsewhere, and what it
    holds under data/ beyond the live packs, and what becomes of it."""
    notes = []
    if target.recoverable:
        count = len(target.recoverable)
        whole = count == len(target.missing) + len(target.wrong_size) + len(target.corrupt)
        what = ("all of them" if count > 1 else "it") if whole else f"{count} of them"
        notes.append(f"another target or the local cache may hold a good copy of {what}: "
                     f"'fogvault repair' copies {'them' if count > 1 else 'it'} here (an index "
                     "file once the packs it lists are here, a snapshot once the index is)")
    pruned = target.unindexed_pruned
    others = target.unindexed_packs - pruned
    if others:
        fate = ("they may hold the missing data: 'fogvault repair --index' lists them again"
                if result.data_missing else "'prune' removes them")
        notes.append(f"{counted(others, 'pack')} no index lists ({fate})")
    if pruned:
        notes.append(f"{counted(pruned, 'pack')} no index lists, which a prune deleted "
                     "elsewhere ('prune' removes them)")
    from fogvault.repo.format import pack_name  # not at import: --help loads every command

    for name in target.misplaced:
        place = pack_name(bytes.fromhex(name.rsplit("/", 1)[-1]))
        notes.append(f"{name} is a copy of a pack outside its folder: prune leaves it (move it "
                     f"to {place} if that is missing, else delete it)")
    for name in target.foreign:
        notes.append(f"{name} is not a pack: FogVault leaves it (delete it by hand if it is "
                     "not yours)")
    return notes
