"""``fogvault check``: verify snapshots, index and packs on every target."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, open_repository
from fogvault.errors import EXIT_ERROR
from fogvault.sizes import counted

if TYPE_CHECKING:
    from fogvault.maintenance.check import CheckResult


def register(app: typer.Typer) -> None:
    app.command("check")(check_cmd)


def check_cmd(
    ctx: typer.Context,
    read_data: Annotated[bool, typer.Option(help="Read and verify every pack.")] = False,
    read_data_subset: Annotated[
        str | None, typer.Option(help="Read a subset: a percentage (5%) or a group (n/m).")
    ] = None,
) -> None:
    """Check the repository; exit code 1 if anything is wrong."""
    from fogvault.cli.progress import make_phase_progress
    from fogvault.maintenance.check import CheckOptions, check

    out = Printer.of(ctx)
    progress = make_phase_progress(out)
    try:
        with open_repository(ctx, load_index=False) as repo:
            result = check(repo, CheckOptions(read_data, read_data_subset), progress)
    finally:
        progress.close()
    _report(out, result)
    if not result.ok:
        raise typer.Exit(EXIT_ERROR)


#: what becomes of packs no index lists: with data missing from the index, they may hold it
_UNINDEXED_FATE = {
    False: "('prune' removes them)",
    True: "(they may hold the missing data: 'fogvault repair --index' lists them again)",
}


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
        say(f"{target.url}: {'ok' if target.ok else 'DAMAGED'}{read}")
        for kind in ("missing", "wrong_size", "corrupt"):
            for name in getattr(target, kind):
                say(f"  {kind.replace('_', ' ')}: {name}")
        if target.unindexed_packs:
            say(f"  note: {counted(target.unindexed_packs, 'pack')} no index lists "
                + _UNINDEXED_FATE[bool(result.problems)])
    if result.ok:
        out.line("no errors were found")
    else:
        out.problem("errors were found")
