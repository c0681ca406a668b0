"""Medians over repeats, the side-by-side tables (Markdown), and the issue-7 target checks."""

from __future__ import annotations

import math
import statistics

PHASES = ("init", "backup_initial", "open", "backup_nochange", "backup_mutated", "restore",
          "check", "forget_prune")
PHASE_LABELS = {
    "init": "init",
    "backup_initial": "initial backup",
    "open": "list snapshots (open cost)",
    "backup_nochange": "no-change backup",
    "backup_mutated": "backup after mutation",
    "restore": "full restore",
    "check": "check",
    "forget_prune": "forget + prune",
}
METRICS = {  # key -> (title, unit scale, format)
    "wall_s": ("Wall time, seconds", 1.0, "{:.2f}"),
    "cpu_s": ("CPU time (user + sys), seconds", 1.0, "{:.2f}"),
    "peak_rss_mib": ("Peak RSS, MiB", 1.0, "{:.0f}"),
    "repo_bytes": ("Repository size after the phase, MiB", 1 / 2**20, "{:.1f}"),
}
WRITING_PHASES = ("init", "backup_initial", "backup_nochange", "backup_mutated", "forget_prune")
MEDIAN_KEYS = ("wall_s", "cpu_s", "user_s", "sys_s", "peak_rss_mib", "repo_bytes", "bg_cores")


def medians(runs: list[dict]) -> dict:
    """runs[i][corpus][tool][phase] -> median[corpus][tool][phase][metric] (+ all ok)."""
    out: dict = {}
    for corpus in runs[0]:
        for tool in runs[0][corpus]:
            for phase in runs[0][corpus][tool]:
                samples = [r[corpus][tool][phase] for r in runs
                           if phase in r.get(corpus, {}).get(tool, {})]
                entry = {k: statistics.median(s[k] for s in samples) for k in MEDIAN_KEYS
                         if all(k in s for s in samples)}
                entry["ok"] = all(s.get("ok", False) for s in samples)
                entry["samples"] = len(samples)
                out.setdefault(corpus, {}).setdefault(tool, {})[phase] = entry
    return out


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return "–"
    return f"{a / b:.2f}"


def tables(median: dict, tools: list[str]) -> str:
    """One Markdown table per metric: a row per (corpus, phase), a column per tool, and the
    FogVault/restic and FogVault/borg ratios (below 1.00 means FogVault is better)."""
    others = [t for t in tools if t != "fogvault"]
    blocks = []
    for key, (title, scale, fmt) in METRICS.items():
        header = ["corpus", "phase", *tools]
        if "fogvault" in tools:
            header += [f"fogvault/{o}" for o in others]
        if key == "wall_s":
            header.append("other load, cores")
        lines = [f"**{title}**", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
        for corpus, by_tool in median.items():
            for phase in PHASES:
                if key == "repo_bytes" and phase not in WRITING_PHASES:
                    continue  # reading phases leave the repository as it was
                values = {}
                for tool in tools:
                    entry = by_tool.get(tool, {}).get(phase)
                    values[tool] = entry[key] * scale if entry and key in entry else None
                if all(v is None for v in values.values()):
                    continue
                cells = [corpus, PHASE_LABELS[phase]]
                for tool in tools:
                    entry = by_tool.get(tool, {}).get(phase)
                    v = values[tool]
                    text = "–" if v is None else fmt.format(v)
                    if entry is not None and not entry.get("ok", True):
                        text += " (failed)"
                    cells.append(text)
                if "fogvault" in tools:
                    cells += [_ratio(values["fogvault"], values[o]) for o in others]
                if key == "wall_s":
                    loads = [by_tool[t][phase]["bg_cores"] for t in tools
                             if phase in by_tool.get(t, {}) and "bg_cores" in by_tool[t][phase]]
                    cells.append(f"{statistics.mean(loads):.2f}" if loads else "–")
                lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def targets(median: dict, extras: dict) -> list[dict]:
    """The issue-7 targets, each with met (True/False/None = not measured) and the numbers."""
    out: list[dict] = []

    def get(corpus: str, tool: str, phase: str, key: str) -> float | None:
        entry = median.get(corpus, {}).get(tool, {}).get(phase)
        return entry.get(key) if entry else None

    def compare(title: str, key: str, phases: tuple[str, ...]) -> None:
        misses, compared = [], 0
        for corpus in median:
            for phase in phases:
                fv, rs = get(corpus, "fogvault", phase, key), get(corpus, "restic", phase, key)
                if fv is None or rs is None:
                    continue
                compared += 1
                if fv > rs:
                    misses.append(f"{corpus}/{phase}: {fv:.4g} vs {rs:.4g} ({fv / rs:.2f}x)")
        out.append({"target": title, "met": (not misses) if compared else None,
                    "detail": "; ".join(misses) if misses else f"{compared} comparisons"})

    issue_phases = tuple(p for p in PHASES if p != "open")
    compare("every phase: FogVault wall time <= restic's", "wall_s", issue_phases)
    compare("peak RSS <= restic's in every phase", "peak_rss_mib", issue_phases)
    compare("repository bytes <= restic's", "repo_bytes",
            ("backup_initial", "backup_nochange", "backup_mutated", "forget_prune"))

    ceiling = extras.get("ceiling")
    wall = get("big", "fogvault", "backup_initial", "wall_s")
    if ceiling and "ceiling_share" not in extras:
        out.append({"target": "big files: initial backup >= 70 % of the in-memory ceiling",
                    "met": False, "detail": "no FogVault backup of the big corpus succeeded"})
    elif ceiling and wall:
        share = extras["ceiling_share"]
        runs = ", ".join(f"{100 * s:.0f}" for s in extras["ceiling_shares"])
        detail = (f"median of each run's backup against the ceiling measured around it: "
                  f"{100 * share:.0f} % (runs {runs} %); medians: "
                  f"{ceiling['bytes'] / 1e6 / wall:.0f} MB/s of {ceiling['mb_per_s']:.0f} MB/s")
        cpu = get("big", "fogvault", "backup_initial", "cpu_s")
        if "cpu_s" in ceiling and cpu:
            detail += (f" (CPU: {ceiling['cpu_s']:.1f} s in memory vs {cpu:.1f} s for the "
                       f"backup; other load {ceiling.get('bg_cores', 0):.2f} vs "
                       f"{get('big', 'fogvault', 'backup_initial', 'bg_cores') or 0:.2f} cores)")
        out.append({"target": "big files: initial backup >= 70 % of the in-memory ceiling",
                    "met": share >= 0.70, "detail": detail})
    walk = extras.get("walk")
    nochange = get("small", "fogvault", "backup_nochange", "wall_s")
    if walk and nochange:
        opened = get("small", "fogvault", "open", "wall_s") or 0.0
        per_entry = 1e6 * max(0.0, nochange - opened) / walk["entries"]
        factor = per_entry / walk["us_per_entry"]
        read = extras.get("nochange_read", "?")
        restic = get("small", "restic", "backup_nochange", "wall_s")
        restic_open = get("small", "restic", "open", "wall_s") or 0.0
        versus = "" if restic is None else (
            f"; restic: {1e6 * max(0.0, restic - restic_open) / walk['entries']:.0f} us/entry")
        out.append({"target": "no-change backup bounded by metadata (lstat), not content "
                              "(here: reads no content, within 10x of a bare walk)",
                    "met": read == "0 B" and factor <= 10,
                    "detail": f"{nochange:.2f} s for {walk['entries']:,} entries; minus the "
                              f"{opened:.2f} s open cost = {per_entry:.0f} us/entry vs "
                              f"{walk['us_per_entry']:.1f} us/entry for a bare scandir+lstat "
                              f"walk ({factor:.0f}x){versus}; content read: {read}"})
    index = extras.get("index")
    if index and index.get("ok"):
        out.append({"target": f"index of {index['blobs']:,} blobs: <= 64 bytes per blob",
                    "met": index["bytes_per_blob"] <= 64,
                    "detail": f"{index['bytes_per_blob']:.1f} B/blob (RSS growth "
                              f"{index['rss_growth_per_blob']:.1f} B/blob)"})
        lookups = min(index["lookups_present_per_s"], index["lookups_absent_per_s"])
        out.append({"target": "index: >= 1 million lookups per second",
                    "met": lookups >= 1e6,
                    "detail": f"{index['lookups_present_per_s']:,.0f}/s present, "
                              f"{index['lookups_absent_per_s']:,.0f}/s absent"})
    return out


def targets_table(rows: list[dict]) -> str:
    lines = ["| target | met | measured |", "|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        lines.append(f"| {row['target']} | {met} | {row['detail']} |")
    return "\n".join(lines)
