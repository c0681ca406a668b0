"""``fogvault forget``: remove snapshots by uid or by retention policy (optionally prune)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import (
    DryRunOption,
    HostFilter,
    PathFilter,
    Printer,
    TagFilter,
    open_repository,
    table,
)
from fogvault.cli.prune_cmd import report_prune
from fogvault.sizes import counted

if TYPE_CHECKING:
    from fogvault.maintenance.forget import ForgetResult

Count = Annotated[int, typer.Option(help="-1 = unlimited")]
Span = Annotated[str, typer.Option(help="e.g. 1y6m2d3h")]


def register(app: typer.Typer) -> None:
    app.command("forget")(forget_cmd)


def forget_cmd(
    ctx: typer.Context,
    uids: Annotated[list[str] | None, typer.Argument(help="Snapshots to forget.")] = None,
    keep_last: Count = 0, keep_hourly: Count = 0, keep_daily: Count = 0,
    keep_weekly: Count = 0, keep_monthly: Count = 0, keep_yearly: Count = 0,
    keep_within: Span = "", keep_within_hourly: Span = "", keep_within_daily: Span = "",
    keep_within_weekly: Span = "", keep_within_monthly: Span = "",
    keep_within_yearly: Span = "",
    keep_tag: Annotated[list[str] | None, typer.Option("--keep-tag")] = None,
    host: HostFilter = None,
    tag: TagFilter = None,
    path: PathFilter = None,
    group_by: Annotated[str, typer.Option(help="host, paths, tags, or a combination.")] =
        "host,paths",
    run_prune: Annotated[bool, typer.Option("--prune", help="Prune afterwards.")] = False,
    dry_run: DryRunOption = False,
) -> None:
    """Forget snapshots (their data stays until prune). Refuses an empty policy."""
    from fogvault.cli.progress import make_phase_progress
    from fogvault.maintenance.forget import forget
    from fogvault.maintenance.prune import PruneOptions, prune
    from fogvault.maintenance.retention import RetentionPolicy, parse_group_by

    out = Printer.of(ctx)
    policy = RetentionPolicy(
        keep_last=keep_last, keep_hourly=keep_hourly, keep_daily=keep_daily,
        keep_weekly=keep_weekly, keep_monthly=keep_monthly, keep_yearly=keep_yearly,
        keep_within=keep_within, keep_within_hourly=keep_within_hourly,
        keep_within_daily=keep_within_daily, keep_within_weekly=keep_within_weekly,
        keep_within_monthly=keep_within_monthly, keep_within_yearly=keep_within_yearly,
        keep_tags=tuple(keep_tag or ()),
    )
    with open_repository(ctx, load_index=run_prune and not dry_run) as repo:
        with repo.lock():
            result = forget(repo, policy, uids=uids or [], host=host, tags=tag or [],
                            paths=path or [], group_by=parse_group_by(group_by),
                            dry_run=dry_run)
        _report(out, result)
        if run_prune and not dry_run:
            progress = make_phase_progress(out)
            try:
                report_prune(out, prune(repo, PruneOptions(), progress))
            finally:
                progress.close()


def _report(out: Printer, result: ForgetResult) -> None:
    if out.json_mode:  # one line: with --prune, prune's JSON lines follow
        out.json_line({
            "dry_run": result.dry_run,
            "removed": result.removed,
            "groups": [{
                "key": g.key,
                "keep": [{"uid": k.snapshot.uid, "reasons": k.reasons} for k in g.keep],
                "remove": [s.uid for s in g.remove],
            } for g in result.groups],
        })
        return
    for group in result.groups:
        out.line(f"{group.describe()}: keep {len(group.keep)}, remove {len(group.remove)}")
        rows = [[k.snapshot.uid, f"{k.snapshot.time:%Y-%m-%d %H:%M:%S}", ", ".join(k.reasons)]
                for k in group.keep]
        out.line(table(rows, ["Keep", "Time", "Reasons"]))
        if group.remove:
            out.line(table([[s.uid, f"{s.time:%Y-%m-%d %H:%M:%S}"] for s in group.remove],
                           ["Remove", "Time"]))
        out.line()
    if result.named:  # no group lists them
        rows = [[uid, "(cannot be read)" if time is None else f"{time:%Y-%m-%d %H:%M:%S}"]
                for uid, time in result.named.items()]
        out.line(table(rows, ["Remove (named)", "Time"]))
        out.line()
    verb = "would remove" if result.dry_run else "removed"
    out.line(f"{verb} {counted(len(result.removed), 'snapshot')}")
