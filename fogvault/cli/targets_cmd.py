"""``fogvault targets``: the state of each target. ``fogvault target add|remove URL``."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fogvault.cli.common import Printer, open_repository, options, table
from fogvault.cli.repair_cmd import repair_exit_code, report_repair
from fogvault.errors import EXIT_ERROR, EXIT_PARTIAL, FogVaultError
from fogvault.sizes import counted, format_size

if TYPE_CHECKING:
    from fogvault.repo.repository import Repository
    from fogvault.targets import Target

target_app = typer.Typer(help="Add or remove a target of the repository.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("targets")(targets)
    app.add_typer(target_app, name="target")


def targets(ctx: typer.Context) -> None:
    """Show each target: reachable, objects, size, what it lacks, known damage.

    Also the requests of the last operation on this machine. Exit code 3 if a target is not
    a complete copy (unreachable, holding no repository, lacking or damaged objects).
    """
    out = Printer.of(ctx)
    # an empty target (a disk that is not mounted) is what this report is asked about
    with open_repository(ctx, drop_empty_targets=True) as repo:
        rows = target_rows(repo)
    if out.json_mode:
        out.json(rows)
    else:
        _print_rows(out, rows)
    if not all(_complete(r) for r in rows):
        raise typer.Exit(EXIT_PARTIAL)


def _print_rows(out: Printer, rows: list[dict[str, Any]]) -> None:
    lines = []
    for r in rows:
        last = r["last_operation"] or {}
        requests = sum((last.get("requests") or {}).values())
        lines.append([
            r["url"], r["state"], str(r["objects"]), format_size(r["bytes"]),
            str(len(r["missing"])), str(len(r["corrupt"])),
            f"{last.get('command', '-')} {requests} req" if last else "-",
        ])
    out.result(table(lines, ["Target", "State", "Objects", "Size", "Missing", "Corrupt",
                           "Last operation"]))
    for r in rows:
        if r["error"]:
            out.problem(f"{r['url']}: {r['error']}")


def _complete(row: dict[str, Any]) -> bool:
    return row["state"] == "ok" and not (row["missing"] or row["wrong_size"] or row["corrupt"])


def target_rows(repo: Repository) -> list[dict[str, Any]]:
    """One record per target (the JSON of ``fogvault targets``)."""
    from fogvault.maintenance.inventory import take_inventory
    from fogvault.targets.ledger import Ledger

    repo.load_index()
    inventory = take_inventory(repo)
    last = Ledger(repo.config.repo_id).load()  # before this command records itself
    rows = []
    for target in repo.targets.targets:
        listing = inventory.listings.get(target.url)
        corrupt = sorted(n for u, n in repo.targets.damaged  # known damaged copies it holds
                         if u == target.url and n in (listing or {})
                         and (n in inventory.live or _unloaded_index_file(repo, n)))
        rows.append({
            "url": target.url,
            "reachable": listing is not None or target.empty,
            "state": _state(target, listing is not None),
            "error": target.dropped or target.behind,
            "objects": len(listing or {}),
            "bytes": listing.total_bytes() if listing is not None else 0,
            "missing": inventory.missing(target.url) if listing is not None else [],
            "wrong_size": inventory.wrong_size(target.url) if listing is not None else [],
            "corrupt": corrupt,
            "extra": len(inventory.extra(target.url)) if listing is not None else 0,
            "latency_ms": target.meter.snapshot()["latency_ms"],
            "last_operation": (last.get(target.url) or {}).get("last_operation"),
        })
    return rows


def _unloaded_index_file(repo: Repository, name: str) -> bool:
    """An index file that loading the index skipped (no good copy could be read): found
    damaged by 'check', it stays damage until 'repair --index' deletes it."""
    from fogvault.repo.format import INDEX_DIR, parse_hex_id

    if not name.startswith(INDEX_DIR):
        return False
    try:
        return parse_hex_id(name[len(INDEX_DIR):]) not in repo.index_ids()
    except FogVaultError:
        return False


def _state(target: Target, listed: bool) -> str:
    if target.empty:
        return "no repository"
    return target.state if listed else "unreachable"


@target_app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The new target (path or URL).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only show.")] = False,
) -> None:
    """Make URL a complete copy of the repository on the targets given with -r.

    Every object is copied and verified, the config last. Run it again to resume.
    """
    from fogvault.cli.progress import make_phase_progress
    from fogvault.maintenance.membership import add_target

    out = Printer.of(ctx)
    progress = make_phase_progress(out)
    try:
        with open_repository(ctx, load_index=False) as repo:
            result = add_target(repo, url, dry_run=dry_run, progress=progress)
    finally:
        progress.close()
    report_repair(out, result)
    code = repair_exit_code(result)
    if code == 0 and not dry_run:
        out.line(f"{url} holds the repository now: give it with -r (or in the config file's "
                 "targets) from now on")
    raise typer.Exit(code)


@target_app.command("remove")
def remove(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The target to stop using (path or URL).")],
    delete_data: Annotated[
        bool, typer.Option("--delete-data", help="Also delete the repository from URL.")
    ] = False,
) -> None:
    """Check that the other targets hold everything, so that URL can stop being used.

    Nothing is deleted unless --delete-data is given, and then only if the others hold
    everything.
    """
    from fogvault.maintenance.membership import remove_target

    out = Printer.of(ctx)
    opts = options(ctx)
    canonical = _canonical(url)
    given = {_canonical(u) for u in opts.repo_urls()}
    extra = () if canonical in given else (url,)
    with open_repository(ctx, load_index=False, extra_urls=extra) as repo:
        result = remove_target(repo, canonical, delete_data=delete_data,
                               retry_lock=opts.retry_lock)
    if out.json_mode:
        out.json_line({"message_type": "summary", **asdict(result),
                       "others_complete": result.others_complete})
    else:
        for other, names in result.lacking.items():
            out.line(f"{other} lacks {counted(len(names), 'object')}, e.g. {names[0]}")
        if delete_data:
            out.line(f"deleted {counted(result.deleted, 'object')} "
                     f"({format_size(result.bytes_deleted)}) from {url}")
        elif result.others_complete:
            out.line(f"the other targets hold everything: stop giving {url} and it is no longer "
                     "used (its copy is kept; --delete-data deletes it)")
        else:
            out.line(f"run 'fogvault repair' before you stop using {url}")
    if not result.others_complete:
        raise typer.Exit(EXIT_PARTIAL if not delete_data else EXIT_ERROR)


def _canonical(url: str) -> str:
    """The URL as the targets name themselves (local paths made absolute); no I/O."""
    from fogvault.storage import open_storage

    storage = open_storage(url)
    try:
        return storage.url
    finally:
        storage.close()
