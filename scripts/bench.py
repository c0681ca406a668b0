#!/usr/bin/env python3
"""Side-by-side benchmark of FogVault, restic and borg on generated corpora (issue 7).

    .venv/bin/python scripts/bench.py [--size 1.0] [--repeat 1] [--tools fogvault,restic,borg]
        [--corpora small,big] [--workdir DIR] [--json-out FILE] [--index-blobs 10000000]

For each corpus (``small``: a source tree of ~50,000 files, ~1 GiB at ``--size 1``; ``big``:
four large files of mixed content, 1 GiB) and each tool, it times init, the initial backup,
a no-change backup, a backup after a ~1 % mutation, a full restore (verified against the
source by hash trees), check, and forget --keep-last 1 + prune: wall time, CPU time
(``os.wait4``) and peak RSS (GNU time) of the tool's process, and the repository's bytes after
the phase.
It also measures FogVault's in-memory pipeline ceiling on the big corpus (just before and just
after FogVault's initial backup of it, which is compared with their mean; so only when FogVault
is among ``--tools``), a bare scandir+lstat walk of the small corpus, and the blob index's bytes
per blob and lookup rate.

Prints Markdown tables with FogVault/restic and FogVault/borg ratios (medians of ``--repeat``
runs) and the issue-7 targets; ``--json-out`` saves everything. restic and borgbackup are
installed with apt-get when missing and the script runs as root (``--no-install`` to refuse).
Repositories, caches and corpora live in ``--workdir`` (one disk); the page cache is warm.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import corpus as corpora
from bench import measure, report
from bench.tools import Setup, Tool, ensure_tools

PASSWORD = "bench-password-not-secret"
PROJECT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1.0,
                        help="scale both corpora (1.0: ~1 GiB each; 0.1 for a quick run)")
    parser.add_argument("--seed", type=int, default=7, help="corpus seed")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the tables show medians")
    parser.add_argument("--tools", default="fogvault,restic,borg")
    parser.add_argument("--corpora", default="small,big")
    parser.add_argument("--workdir", default="/var/tmp/fogvault-bench",
                        help="corpora, repositories, caches and restores (one disk)")
    parser.add_argument("--json-out", help="write all results here")
    parser.add_argument("--index-blobs", type=int, default=10_000_000,
                        help="blobs in the synthetic index (0: skip)")
    parser.add_argument("--fogvault-kdf", choices=("standard", "interactive", "moderate",
                                                   "sensitive"),
                        help="FogVault's Argon2id profile (default: the benchmarked revision's "
                        "own default)")
    parser.add_argument("--fogvault-rev", metavar="REV",
                        help="benchmark the fogvault package as committed at this git revision "
                             "(e.g. HEAD) instead of a copy of the work tree")
    parser.add_argument("--live-code", action="store_true",
                        help="run the work tree's fogvault package instead of a copy taken at "
                             "the start (the copy keeps a long run consistent while it is edited)")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install missing tools")
    parser.add_argument("--keep", action="store_true",
                        help="keep repositories and corpora in the work dir afterwards")
    args = parser.parse_args()
    args.tool_list = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.corpus_list = [c.strip() for c in args.corpora.split(",") if c.strip()]
    unknown = set(args.tool_list) - {"fogvault", "restic", "borg"}
    if unknown or not args.tool_list:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    if set(args.corpus_list) - {"small", "big"} or not args.corpus_list:
        parser.error("--corpora takes small and/or big")
    if args.size <= 0 or args.repeat < 1:
        parser.error("--size must be > 0 and --repeat >= 1")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"cpu": model, "cores": os.cpu_count(), "mem_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg()}


class Runner:
    """One repeat over one corpus: every tool through every phase."""

    def __init__(self, args: argparse.Namespace, tools: dict[str, Tool], workdir: Path) -> None:
        self.args = args
        self.tools = tools
        self.workdir = workdir
        self.trash = Trash(workdir / "trash", args)
        self.password_file = workdir / "password"
        self.password_file.write_text(PASSWORD + "\n")
        self.log_file = workdir / "bench.log"

    def setup(self, corpus_name: str, tool: str, source: Path) -> Setup:
        repo = self.workdir / "repos" / corpus_name / tool
        cache = self.workdir / "cache" / corpus_name / tool
        for path in (repo, cache):
            if path.exists():
                shutil.rmtree(path)
        repo.parent.mkdir(parents=True, exist_ok=True)
        cache.mkdir(parents=True)
        if tool == "fogvault":
            repo.mkdir()
        return Setup(repo, cache, self.password_file, source)

    def phase(self, tool: Tool, setup: Setup, phase: str, name: str, **kw) -> dict:
        os.sync()  # start each phase with no dirty pages from the previous one
        commands = tool.phase(phase, setup, **kw)
        result = measure.run_phase(commands, tool.env(setup), self.log_file)
        result["repo_bytes"] = measure.dir_bytes(setup.repo)
        result["cache_bytes"] = measure.dir_bytes(setup.cache)
        status = "ok" if result["ok"] else f"FAILED rc={result['rc']} (see {self.log_file})"
        log(f"  {tool.name:8} {name:16} {result['wall_s']:8.2f} s wall "
            f"{result['cpu_s']:8.2f} s cpu {result['peak_rss_mib']:7.0f} MiB "
            f"repo {result['repo_bytes'] / 2**20:8.1f} MiB  bg {result['bg_cores']:.2f} "
            f"{status}")
        return result

    def restore(self, tool: Tool, setup: Setup, expected: dict) -> dict:
        target = self.workdir / "restore" / tool.name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        result = self.phase(tool, setup, "restore", "restore", label="b3", target=target)
        restored = target / setup.source.relative_to(setup.source.anchor)
        if result["ok"] and restored.is_dir():
            verdict = corpora.compare_trees(expected, corpora.hash_tree(restored))
        else:
            verdict = {"content_errors": -1, "metadata_errors": -1,
                       "examples": [f"nothing restored at {restored}"]}
        result["verify"] = verdict
        result["ok"] = result["ok"] and verdict["content_errors"] == 0
        log(f"  {tool.name:8} verify           content errors {verdict['content_errors']}, "
            f"metadata errors {verdict['metadata_errors']} {verdict['examples'][:3]}")
        # Kept until the corpus run ends, and then in the trash (Trash).
        return result

    def backup_against_ceiling(self, tool: Tool, setup: Setup, extras: dict) -> dict:
        """The initial backup, between two measurements of the in-memory pipeline ceiling over
        the same files; records their mean and, if the backup worked, its share of it."""
        files = sorted(p for p in setup.source.iterdir() if p.is_file())
        before = self.ceiling(files)
        result = self.phase(tool, setup, "backup", "backup_initial", label="b1")
        extras["ceiling"] = measure.paired_ceiling(before, self.ceiling(files))
        if result["ok"]:  # a backup that failed at once must not count as a fast one
            extras["ceiling_share"] = measure.ceiling_share(extras["ceiling"], result["wall_s"])
            log(f"  backup at {100 * extras['ceiling_share']:.0f} % of the ceiling")
        return result

    def ceiling(self, files: list[Path]) -> dict:
        ceiling = measure.pipeline_ceiling(files)
        log(f"  in-memory pipeline ceiling (2 workers): {ceiling['mb_per_s']:.0f} MB/s, "
            f"{ceiling['cpu_s']:.1f} s cpu, bg {ceiling['bg_cores']:.2f}")
        return ceiling

    def run(self, corpus_name: str, repeat: int, text: corpora.TextSource) -> tuple[dict, dict]:
        """Returns (results[tool][phase], extras)."""
        source = self.workdir / "src" / corpus_name
        self.trash.discard(source)
        log(f"repeat {repeat + 1}: generating the {corpus_name} corpus (size {self.args.size})")
        make = corpora.make_small if corpus_name == "small" else corpora.make_big
        info = make(source, self.args.seed, self.args.size, text)
        os.sync()
        extras: dict = {"corpus": info.to_json()}
        log(f"  {info.files:,} files, {info.bytes / 2**20:,.0f} MiB")
        if corpus_name == "small":
            measure.bare_walk(source)  # warm the dentry and inode caches
            extras["walk"] = measure.bare_walk(source)
            log(f"  bare walk: {extras['walk']['entries']:,} entries, "
                f"{extras['walk']['seconds']:.3f} s")
        names = list(self.tools)
        order = names[repeat % len(names):] + names[: repeat % len(names)]
        setups = {name: self.setup(corpus_name, name, source) for name in order}
        results: dict[str, dict] = {name: {} for name in order}
        for name in order:
            tool, s, r = self.tools[name], setups[name], results[name]
            r["init"] = self.phase(tool, s, "init", "init")
            measure.warm_cache(source)
            if corpus_name == "big" and name == "fogvault":
                r["backup_initial"] = self.backup_against_ceiling(tool, s, extras)
            else:
                r["backup_initial"] = self.phase(tool, s, "backup", "backup_initial", label="b1")
            r["open"] = self.phase(tool, s, "snapshots", "open")
            r["backup_nochange"] = self.phase(tool, s, "backup", "backup_nochange", label="b2")
        extras["mutation"] = corpora.mutate(info, self.args.seed, text)
        os.sync()
        log(f"  mutated: {extras['mutation']}")
        expected = corpora.hash_tree(source)
        for name in order:
            tool, s, r = self.tools[name], setups[name], results[name]
            measure.warm_cache(source)
            r["backup_mutated"] = self.phase(tool, s, "backup", "backup_mutated", label="b3")
            r["restore"] = self.restore(tool, s, expected)
            r["check"] = self.phase(tool, s, "check", "check")
            r["forget_prune"] = self.phase(tool, s, "prune", "forget_prune")
        self.trash.discard(self.workdir / "restore")
        if not self.args.keep:
            for s in setups.values():
                shutil.rmtree(s.repo, ignore_errors=True)
                shutil.rmtree(s.cache, ignore_errors=True)
        return results, extras


def combine_extras(all_extras: list[dict]) -> dict:
    """Medians of the per-repeat extras (ceiling, walk), and what the summary needs."""
    out: dict = {}
    ceilings = [e["ceiling"] for e in all_extras if "ceiling" in e]
    if ceilings:
        best = dict(ceilings[0])
        best["mb_per_s"] = statistics.median(c["mb_per_s"] for c in ceilings)
        for key in ("seconds", "cpu_s", "bg_cores"):
            if all(key in c for c in ceilings):
                best[key] = statistics.median(c[key] for c in ceilings)
        out["ceiling"] = best
    shares = [e["ceiling_share"] for e in all_extras if "ceiling_share" in e]
    if shares:
        out["ceiling_share"] = statistics.median(shares)
        out["ceiling_shares"] = shares
    walks = [e["walk"] for e in all_extras if "walk" in e]
    if walks:
        out["walk"] = {"entries": walks[0]["entries"],
                       "seconds": statistics.median(w["seconds"] for w in walks),
                       "us_per_entry": statistics.median(w["us_per_entry"] for w in walks)}
    return out


def nochange_read(runs: list[dict]) -> str:
    """What FogVault's no-change backup of the small corpus says it read ("Read X of Y")."""
    for run in runs:
        tail = run.get("small", {}).get("fogvault", {}).get("backup_nochange", {})
        match = re.search(r"Read (\S+ \S+) of", tail.get("output_tail", ""))
        if match:
            return match.group(1)
    return "?"


# The copy imports, and where it has compiled parts, they are in use (not the fallbacks).
IMPORT_CHECK = """
import fogvault.cli.app, fogvault.repo.index as index
if not getattr(index, "COMPILED_SLOT_TABLE", True):  # older code: nothing to build
    raise SystemExit("fogvault/repo/_probe.c did not build")
"""


def committed(rev: str, path: str) -> list[str]:
    """``[path]`` if ``path`` is in the tree of ``rev``, else ``[]``."""
    found = subprocess.run(["git", "-C", str(PROJECT), "cat-file", "-e", f"{rev}:{path}"],
                           capture_output=True, check=False)
    return [path] if found.returncode == 0 else []


def freeze_code(workdir: Path, rev: str | None) -> tuple[str, dict]:
    """Copy the fogvault package (the work tree's, or as committed at ``rev``) into the work
    dir and check that it imports; returns the PYTHONPATH that selects the copy (ahead of the
    editable install) and the git state."""
    code = workdir / "code"
    if code.exists():
        shutil.rmtree(code)
    code.mkdir()
    if rev:
        archive = subprocess.run(["git", "-C", str(PROJECT), "archive", rev, "fogvault",
                                  *committed(rev, "setup.py")], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    else:
        shutil.copytree(PROJECT / "fogvault", code / "fogvault",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        shutil.copy(PROJECT / "setup.py", code)
    if (code / "setup.py").exists():  # the compiled parts, built as pip install builds them
        built = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                               cwd=code, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise SystemExit(f"building the C extension failed:\n{built.stderr}")
    # compiled up front, as an installed package is: with PYTHONDONTWRITEBYTECODE set, every
    # command would otherwise compile its modules again
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(code)], check=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    probe = subprocess.run([sys.executable, "-c", IMPORT_CHECK], env=env, capture_output=True,
                           text=True, check=False)
    if probe.returncode != 0:
        raise SystemExit(f"the fogvault package does not import:\n{probe.stderr}")
    state = git_state()
    if rev:
        state = {"commit": subprocess.run(
            ["git", "-C", str(PROJECT), "rev-parse", "--short", rev], capture_output=True,
            text=True, check=True).stdout.strip(), "fogvault_dirty_files": 0}
    return str(code), state


class Trash:
    """Trees the benchmark is done with (restored trees, last repeat's corpus), moved aside and
    deleted when nothing is timed any more. ext4's inode allocator passes over inodes freed in
    the last minutes (``recently_deleted``; up to 6 minutes while their inode table blocks are
    dirty): deleting the 150,000 restored files of a repeat made whichever tool restored some 5
    minutes later take 2x the wall time and 3x the CPU time, the kernel's (docs/performance-log.md,
    "Session 7"). Without room for everything, trees are deleted at once, as before."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.root = root
        # per repeat and corpus: the corpus and one restore per tool, ~1 GiB each at size 1.0
        trees = len(args.corpus_list) * (1 + len(args.tool_list)) * args.repeat
        needed = trees * 2**30 * args.size
        root.parent.mkdir(parents=True, exist_ok=True)
        self.enabled = shutil.disk_usage(root.parent).free > 2 * needed
        self._count = 0
        if not self.enabled:
            log(f"not enough free space to keep {needed / 2**30:.0f} GiB of finished trees "
                "until the end: deleting them at once (restores may be slower after that)")

    def discard(self, path: Path) -> None:
        if not path.exists():
            return
        if not self.enabled:
            shutil.rmtree(path)
            return
        self.root.mkdir(exist_ok=True)
        self._count += 1
        path.rename(self.root / f"{self._count}-{path.name}")

    def empty(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def git_state() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(PROJECT), *args], capture_output=True,
                              text=True, check=False)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "fogvault")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "fogvault_dirty_files": len(dirty.splitlines())}


def main() -> None:
    args = parse_args()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    install = not args.no_install and os.geteuid() == 0
    tools = ensure_tools(args.tool_list, install, args.fogvault_kdf)
    code_env: dict[str, str] = {}
    if args.live_code:
        code = git_state()
    else:
        pythonpath, code = freeze_code(workdir, args.fogvault_rev)
        code_env = {"PYTHONPATH": pythonpath}
        sys.path.insert(0, pythonpath)  # the pipeline ceiling imports fogvault here too
        if "fogvault" in tools:
            tools["fogvault"].pythonpath = pythonpath
    meta = {"machine": machine(), "args": {k: v for k, v in vars(args).items()
                                           if not k.endswith("_list")},
            "versions": {name: t.version() for name, t in tools.items()},
            "settings": {name: t.settings for name, t in tools.items()},
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "code": code}
    log(f"tools: {meta['versions']}; load average {meta['machine']['loadavg_start']}")
    runner = Runner(args, tools, workdir)
    text = corpora.TextSource(args.seed)
    runs: list[dict] = []
    extras_by_repeat: list[dict] = []
    corpus_info: dict = {}
    mutations: dict = {}
    started = time.monotonic()
    for repeat in range(args.repeat):
        run: dict = {}
        merged: dict = {}
        for corpus_name in args.corpus_list:
            run[corpus_name], extras = runner.run(corpus_name, repeat, text)
            corpus_info[corpus_name] = extras.pop("corpus")
            mutations[corpus_name] = extras.pop("mutation")
            merged.update(extras)
        runs.append(run)
        extras_by_repeat.append(merged)
    if not args.keep:
        shutil.rmtree(workdir / "src", ignore_errors=True)
    runner.trash.empty()

    extras = combine_extras(extras_by_repeat)
    extras["nochange_read"] = nochange_read(runs)
    if args.index_blobs > 0:
        log(f"index: {args.index_blobs:,} blobs (scripts/index_memory.py)")
        extras["index"] = measure.index_memory(args.index_blobs, runner.log_file, code_env)
    meta["machine"]["loadavg_end"] = os.getloadavg()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    median = report.medians(runs)
    target_rows = report.targets(median, extras)

    print(f"\n## Results: size {args.size}, seed {args.seed}, {args.repeat} run(s), medians\n")
    for name, info in corpus_info.items():
        print(f"- corpus `{name}`: {info['files']:,} files, {info['bytes'] / 2**20:,.0f} MiB; "
              f"mutation: {mutations[name]}")
    print(f"- versions: {meta['versions']}; FogVault code: {code}")
    print(f"- load average {meta['machine']['loadavg_start']} at the start, "
          f"{meta['machine']['loadavg_end']} at the end; bench took {meta['elapsed_s']:.0f} s\n")
    print(report.tables(median, list(tools)))
    if "ceiling" in extras:
        c = extras["ceiling"]
        print(f"\nIn-memory pipeline ceiling (big corpus, {c['workers']} workers): "
              f"{c['mb_per_s']:.0f} MB/s ({c['bytes'] / 2**20:,.0f} MiB in {c['seconds']:.2f} s, "
              f"{c['unique_chunks']:,} of {c['chunks']:,} chunks unique)")
    if "walk" in extras:
        w = extras["walk"]
        print(f"Bare scandir+lstat walk (small corpus): {w['entries']:,} entries in "
              f"{w['seconds']:.3f} s = {w['us_per_entry']:.1f} us/entry")
    if "index" in extras and extras["index"].get("ok"):
        i = extras["index"]
        print(f"Index ({i['blobs']:,} blobs): {i['bytes_per_blob']:.1f} B/blob, "
              f"{i['lookups_present_per_s']:,.0f} lookups/s present, "
              f"{i['lookups_absent_per_s']:,.0f} absent, {i['inserts_per_s']:,.0f} inserts/s")
    print("\n### Issue 7 targets\n")
    print(report.targets_table(target_rows))

    if args.json_out:
        document = {"meta": meta, "corpora": corpus_info, "mutations": mutations,
                    "runs": runs, "median": median, "extras": extras, "targets": target_rows,
                    "tables_markdown": report.tables(median, list(tools))}
        Path(args.json_out).write_text(json.dumps(document, indent=1, default=str))
        log(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
