"""Retention against the real restic: the same snapshots, the same policy, the same verdict.

Snapshots are made with ``restic backup --time`` (in an explicit ``TZ``), read back with
``restic snapshots --json`` and turned into FogVault :class:`Snapshot` objects with the same
instants (through FogVault's own manifest encoding, so their times carry fixed UTC offsets as
FogVault's stored snapshots do). Each policy is then given to ``restic forget --dry-run
--json`` and to :func:`apply_policy` (``tz`` = the zone restic ran in); the keep/remove sets and
the reasons must agree, group by group.

What is allowed to differ, and why:

* **The oldest snapshot** (restic 0.16, restic/restic#3624, PR #4366; the ``oldest`` reason
  prefix: PR #5039). FogVault follows the newer restic (docs/retention.md); for an older restic
  the ``oldest ...`` reasons are dropped from FogVault's answer before comparing (a snapshot
  kept only by them counts as removed). Only the group's oldest snapshot can be affected.
* **Calendar durations across a DST change**, only when restic's ``forget`` runs in another
  zone than the snapshots were made in. ``keep_within*`` subtracts years, months and days on
  the ``tz`` wall clock; restic does it in the zone of the machine running ``forget`` if the
  newest snapshot's recorded offset is one of that zone's (Go's ``time.Parse``), else in that
  fixed offset (docs/retention.md, "Differences from restic"). Everywhere else ``forget`` runs
  in the snapshots' zone and no difference is allowed.
* **Ties.** Snapshots with the same time are compared as a multiset (restic keeps them in
  listing order, FogVault orders them by uid); tied snapshots here have the same tags.
* ``-1`` (unlimited) only with restic >= 0.16: restic 0.14 reads ``--keep-daily -1`` as "rule
  off" and removes everything that no other rule keeps.

The default suite runs one small series (a few seconds); ``--extended`` runs seeded random
schedules in several zones and the targeted edge cases. Without restic the default test is
skipped and the extended ones fail.

restic derives its key with scrypt (~0.5 s) on every command, and ``backup`` waits 200 ms after
taking its lock. The test repository is therefore initialised once per module and its key file
is rewritten with cheap scrypt parameters (same master key; needs the ``cryptography``
package, else the slow key stays), and ``forget`` runs with ``--no-lock``. The default test
makes its snapshots with ``restic backup --time``; the extended ones write restic's snapshot
files directly (:meth:`ResticRepo.forge`), which the default test checks against real backups.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fogvault.maintenance.retention import GroupResult, RetentionPolicy, apply_policy
from fogvault.repo.snapshot import Snapshot

RESTIC = shutil.which("restic")
RESTIC_PASSWORD = "fogvault-vs-restic"
NOW = datetime.now(UTC)

# --- restic -------------------------------------------------------------------------------


def _require_restic(config: pytest.Config) -> str:
    if RESTIC is None:
        message = ("restic is not installed (apt-get install restic): the retention "
                   "differential test cannot run")
        if config.getoption("--extended"):
            pytest.fail(message)
        pytest.skip(message)
    return RESTIC


def _version(binary: str) -> tuple[int, int]:
    text = subprocess.run([binary, "version"], capture_output=True, text=True,
                          check=True).stdout
    match = re.search(r"restic (\d+)\.(\d+)", text)
    assert match, f"unexpected 'restic version' output: {text!r}"
    return int(match[1]), int(match[2])


def _aes(key: bytes, mode: object) -> object:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    return Cipher(algorithms.AES(key), mode).encryptor()  # type: ignore[arg-type]


def _mac(key: bytes, iv: bytes, data: bytes) -> bytes:
    """restic's Poly1305-AES: one-time key r || AES-128_k(nonce); ``key`` = enc || k || r."""
    from cryptography.hazmat.primitives.ciphers import modes
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    aes = _aes(key[32:48], modes.ECB())
    return Poly1305.generate_tag(key[48:64] + aes.update(iv) + aes.finalize(), data)


def _crypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import modes

    ctr = _aes(key[:32], modes.CTR(iv))
    return ctr.update(data) + ctr.finalize()


def _seal(key: bytes, plaintext: bytes) -> bytes:
    iv = os.urandom(16)
    body = _crypt(key, iv, plaintext)
    return iv + body + _mac(key, iv, body)


def _cheapen_key(repo: Path, password: str) -> bytes | None:
    """Re-encrypt the repository's master key under scrypt N=16, r=1, p=1 (test speed only);
    return the master key (encryption || mac k || mac r), None without ``cryptography``."""
    try:
        import cryptography.hazmat.primitives.poly1305  # noqa: F401
    except ImportError:  # pragma: no cover - slower, still correct
        return None
    (old,) = (repo / "keys").iterdir()
    doc = json.loads(old.read_bytes())
    user = hashlib.scrypt(password.encode(), salt=base64.b64decode(doc["salt"]), n=doc["N"],
                          r=doc["r"], p=doc["p"], maxmem=1 << 30, dklen=64)
    sealed = base64.b64decode(doc["data"])
    iv, body, tag = sealed[:16], sealed[16:-16], sealed[-16:]
    assert _mac(user, iv, body) == tag, "could not open restic's key file"
    master = json.loads(_crypt(user, iv, body))
    salt = os.urandom(64)
    cheap = hashlib.scrypt(password.encode(), salt=salt, n=16, r=1, p=1, dklen=64)
    doc.update(N=16, r=1, p=1, salt=base64.b64encode(salt).decode(),
               data=base64.b64encode(_seal(cheap, json.dumps(master).encode())).decode())
    raw = json.dumps(doc).encode()
    (repo / "keys" / hashlib.sha256(raw).hexdigest()).write_bytes(raw)
    old.unlink()
    return b"".join(base64.b64decode(x) for x in (master["encrypt"], master["mac"]["k"],
                                                  master["mac"]["r"]))


@dataclass(frozen=True)
class Spec:
    """One snapshot to make: local wall time in the repository's zone, host, paths, tags."""

    when: str  # "YYYY-MM-DD HH:MM:SS"
    host: str = "h1"
    paths: tuple[str, ...] = ("a",)
    tags: tuple[str, ...] = ()
    zone: str | None = None  # TZ for this backup only (default: the repository's zone)


@dataclass(frozen=True)
class Template:
    binary: str
    version: tuple[int, int]
    repo: Path
    master: bytes | None  # None: snapshots cannot be written directly


class ResticRepo:
    def __init__(self, template: Template, root: Path, zone: str) -> None:
        self.template, self.zone, self.root = template, zone, root
        self.binary, self.version = template.binary, template.version
        self.tz = ZoneInfo(zone)
        shutil.copytree(template.repo, root / "repo")
        for name in ("a", "b"):
            (root / "src" / name).mkdir(parents=True, exist_ok=True)
            (root / "src" / name / "f").write_text(name)
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
                    "TZ": zone, "RESTIC_PASSWORD": RESTIC_PASSWORD,
                    "RESTIC_REPOSITORY": str(root / "repo")}

    def run(self, *args: str, zone: str | None = None) -> str:
        env = self.env if zone is None else {**self.env, "TZ": zone}
        done = subprocess.run([self.binary, "--no-cache", "-q", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"restic {' '.join(args)}: {done.stderr}"
        return done.stdout

    def backup(self, specs: Sequence[Spec]) -> list[Snapshot]:
        """``restic backup --time`` per spec, one after the other (restic 0.14's backups in
        parallel stall for tens of seconds retrying to load each other's vanished locks)."""
        for spec in specs:
            flags = [f"--tag={tag}" for tag in spec.tags]
            self.run("backup", "--time", spec.when, "--host", spec.host, *flags,
                     *(self.path(p) for p in spec.paths), zone=spec.zone)
        return self.snapshots()

    def forge(self, specs: Sequence[Spec]) -> list[Snapshot]:
        """Many snapshots fast: one real backup gives a tree; the others are written as restic
        writes snapshot files (JSON sealed with the master key, named by its SHA-256). Wall
        times are read as Go's ``time.ParseInLocation`` does (checked by the default test): in
        a doubled hour the second pass, in a gap the offset before it. Falls back to
        :meth:`backup` without the master key."""
        if self.template.master is None:  # pragma: no cover
            return self.backup(specs)
        (first,) = self.backup([Spec("2000-01-01 00:00:00", host="forge-seed")])
        self.run("forget", first.uid)  # the tree stays; only the manifest goes
        for spec in specs:
            wall = datetime.strptime(spec.when, "%Y-%m-%d %H:%M:%S")
            doc = {"time": _go_local(wall, ZoneInfo(spec.zone or self.zone)).isoformat(),
                   "tree": first.tree.hex(), "paths": [self.path(p) for p in spec.paths],
                   "hostname": spec.host, "username": "root"}
            if spec.tags:
                doc["tags"] = list(spec.tags)
            sealed = _seal(self.template.master, json.dumps(doc).encode())
            (self.root / "repo" / "snapshots" / hashlib.sha256(sealed).hexdigest()).write_bytes(
                sealed)
        return self.snapshots()

    def path(self, name: str) -> str:
        return str(self.root / "src" / name)

    def snapshots(self) -> list[Snapshot]:
        """restic's snapshots as FogVault sees its own: through the manifest encoding."""
        found = []
        for doc in json.loads(self.run("--no-lock", "snapshots", "--json")):
            snap = Snapshot(uid=doc["id"][:16], time=_parse_go_time(doc["time"]),
                            host=doc["hostname"], user=doc.get("username", ""),
                            paths=list(doc["paths"]), tree=bytes.fromhex(doc["tree"]),
                            tags=list(doc.get("tags") or []))
            found.append(Snapshot.decode(snap.encode(), snap.uid))
        return found

    def forget(self, policy: Policy, group_by: str, zone: str | None = None) -> list[dict]:
        out = self.run("--no-lock", "forget", "--dry-run", "--json", "--group-by", group_by,
                       *policy.flags(), zone=zone)
        return json.loads(out) if out.strip() else []


def _go_local(wall: datetime, tz: tzinfo) -> datetime:
    later = wall.replace(tzinfo=tz, fold=1)
    if later.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return later.astimezone(UTC).astimezone(tz)  # exists (doubled: the second pass)
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)  # in a gap


def _parse_go_time(text: str) -> datetime:
    # Go writes up to nanoseconds; Python reads up to microseconds.
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))


# --- policies -----------------------------------------------------------------------------

_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_WITHINS = ("within", "within_hourly", "within_daily", "within_weekly", "within_monthly",
            "within_yearly")


@dataclass(frozen=True)
class Policy:
    counts: tuple[tuple[str, int], ...] = ()
    withins: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()

    @classmethod
    def of(cls, tags: Iterable[str] = (), **rules: int | str) -> Policy:
        counts = tuple((k, v) for k, v in rules.items() if k in _COUNTS)
        withins = tuple((k, v) for k, v in rules.items() if k in _WITHINS)
        assert len(counts) + len(withins) == len(rules), rules
        return cls(counts, withins, tuple(tags))  # type: ignore[arg-type]

    def flags(self) -> list[str]:
        out = [f"--keep-{k.replace('_', '-')}={v}" for k, v in self.counts + self.withins]
        return out + [f"--keep-tag={t}" for t in self.tags]

    def fogvault(self) -> RetentionPolicy:
        fields = {f"keep_{k}": v for k, v in self.counts + self.withins}
        return RetentionPolicy(keep_tags=self.tags, **fields)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return " ".join(self.flags()) or "(empty policy)"


# --- comparison ---------------------------------------------------------------------------

GroupKey = tuple[str, tuple[str, ...], tuple[str, ...]]
Verdict = tuple[str, ...]  # the reasons, or ("REMOVE",)
REMOVE: Verdict = ("REMOVE",)


@dataclass
class Outcome:
    """One group's verdicts, keyed by what tells tied snapshots apart (nothing, by design)."""

    entries: Counter = field(default_factory=Counter)  # (instant, tags, verdict) -> count

    def add(self, when: datetime, tags: Iterable[str], verdict: Verdict) -> None:
        self.entries[(when.astimezone(UTC), tuple(sorted(tags)), verdict)] += 1


def _restic_outcome(groups: list[dict]) -> dict[GroupKey, Outcome]:
    result: dict[GroupKey, Outcome] = {}
    for group in groups:
        key = (group.get("host") or "", tuple(group.get("paths") or ()),
               tuple(group.get("tags") or ()))
        outcome = result.setdefault(key, Outcome())
        kept = group.get("keep") or []
        reasons = group.get("reasons") or []
        assert len(kept) == len(reasons)
        for snap, reason in zip(kept, reasons, strict=True):
            outcome.add(_parse_go_time(snap["time"]), snap.get("tags") or [],
                        tuple(reason["matches"]))
        for snap in group.get("remove") or []:
            outcome.add(_parse_go_time(snap["time"]), snap.get("tags") or [], REMOVE)
    return result


def _restic_reason(reason: str, version: tuple[int, int]) -> str | None:
    """FogVault's reason as the given restic would print it (None: that restic has no such
    rule)."""
    if reason.startswith("oldest "):
        if version < (0, 16):
            return None  # restic/restic#3624: the oldest snapshot rule came in 0.16
        reason = reason.removeprefix("oldest ")  # the prefix (PR #5039): compare without it

    return reason


def _strip_oldest(outcome: Outcome) -> Outcome:
    out = Outcome()
    for (when, tags, verdict), n in outcome.entries.items():
        verdict = tuple(r.removeprefix("oldest ") for r in verdict)
        out.entries[(when, tags, verdict)] += n
    return out


def _fogvault_outcome(groups: list[GroupResult[Snapshot]],
                      version: tuple[int, int]) -> dict[GroupKey, Outcome]:
    result: dict[GroupKey, Outcome] = {}
    for group in groups:
        key = (str(group.key.get("host", "")), tuple(group.key.get("paths", ())),
               tuple(group.key.get("tags", ())))
        outcome = result.setdefault(key, Outcome())
        for kept in group.keep:
            reasons = [r for r in (_restic_reason(x, version) for x in kept.reasons) if r]
            outcome.add(kept.snapshot.time, kept.snapshot.tags, tuple(reasons) or REMOVE)
        for snap in group.remove:
            outcome.add(snap.time, snap.tags, REMOVE)
    return result


def _go_add_date(moment: datetime, years: int, months: int, days: int) -> datetime:
    """Go's ``t.AddDate(years, months, days)`` in ``t``'s own (fixed) offset."""
    index = moment.year * 12 + moment.month - 1 + years * 12 + months
    year, month0 = divmod(index, 12)
    return moment.replace(year=year, month=month0 + 1, day=1) + timedelta(
        days=moment.day - 1 + days)


def _cutoffs(snaps: Sequence[Snapshot], policy: Policy, tz: tzinfo) -> list[tuple[datetime,
                                                                                  datetime]]:
    """Per ``keep_within*`` rule: (restic's cutoff, FogVault's cutoff), both in UTC."""
    past = [s.time for s in snaps if s.time < NOW]
    if not past:
        return []
    latest = max(past, key=lambda t: t.astimezone(UTC))
    pairs = []
    for _, text in policy.withins:
        parts = {u: int(n) for n, u in re.findall(r"(\d+)([ymdh])", text)}
        y, m, d, h = (parts.get(u, 0) for u in "ymdh")
        hours = timedelta(hours=h)
        restic = _go_add_date(latest, -y, -m, -d) - hours
        wall = _go_add_date(latest.astimezone(tz).replace(tzinfo=None), -y, -m, -d)
        ours = wall.replace(tzinfo=tz).astimezone(UTC) - hours
        pairs.append((restic.astimezone(UTC), ours))
    return pairs


def compare(repo: ResticRepo, snaps: Sequence[Snapshot], policy: Policy,
            group_by: str = "host,paths", forget_zone: str | None = None,
            ) -> tuple[list[str], int]:
    """Differences between restic and FogVault, as text; and how many differences were the
    documented one (snapshots between the two cutoffs of a ``keep_within*`` rule), which is
    only allowed when restic's ``forget`` runs in another zone (``forget_zone``)."""
    restic = _restic_outcome(repo.forget(policy, group_by, zone=forget_zone))
    groups = apply_policy(snaps, policy.fogvault(), group_by=group_by, tz=repo.tz, now=NOW)
    ours = _fogvault_outcome(groups, repo.version)
    if repo.version >= (0, 16):
        restic = {k: _strip_oldest(v) for k, v in restic.items()}
    if policy.fogvault().is_empty():
        # restic prints nothing for an empty policy; FogVault keeps everything.
        assert not restic, restic
        assert all(v == ("policy is empty",) for o in ours.values() for (_, _, v) in o.entries)
        return [], 0
    problems: list[str] = []
    documented = 0
    for key in sorted(set(restic) | set(ours)):
        theirs_e = restic.get(key, Outcome()).entries
        ours_e = ours.get(key, Outcome()).entries
        if theirs_e == ours_e:
            continue
        group_snaps = [s for s in snaps if _in_group(s, key, group_by)]
        windows = _cutoffs(group_snaps, policy, repo.tz) if forget_zone else []
        for entry in sorted(set(theirs_e) | set(ours_e)):
            if theirs_e[entry] == ours_e[entry]:
                continue
            when = entry[0]
            if any(min(a, b) <= when <= max(a, b) for a, b in windows if a != b):
                documented += 1
                continue
            problems.append(
                f"[{policy} --group-by '{group_by}'] group {key}: {when.astimezone(repo.tz)}"
                f" tags={list(entry[1])} {entry[2]}: restic x{theirs_e[entry]},"
                f" fogvault x{ours_e[entry]}")
    return problems, documented


def _in_group(snap: Snapshot, key: GroupKey, group_by: str) -> bool:
    fields = {f.strip().rstrip("s") for f in group_by.split(",") if f.strip()}
    host, paths, tags = key
    return (("host" not in fields or snap.host == host)
            and ("path" not in fields or tuple(sorted(snap.paths)) == paths)
            and ("tag" not in fields or tuple(sorted(snap.tags)) == tags))


def assert_same(repo: ResticRepo, snaps: Sequence[Snapshot], cases: Iterable[tuple[Policy, str]],
                ) -> int:
    problems: list[str] = []
    documented = 0
    for policy, group_by in cases:
        found, doc = compare(repo, snaps, policy, group_by)
        problems += found
        documented += doc
    assert not problems, (f"{len(problems)} differences from restic {repo.version} "
                          f"(zone {repo.zone}):\n" + "\n".join(problems[:40]))
    return documented


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restic_template(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Template:
    binary = _require_restic(request.config)
    root = tmp_path_factory.mktemp("restic-template")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
           "RESTIC_PASSWORD": RESTIC_PASSWORD, "RESTIC_REPOSITORY": str(root / "repo")}
    subprocess.run([binary, "--no-cache", "-q", "init"], env=env, check=True,
                   capture_output=True, timeout=120)
    master = _cheapen_key(root / "repo", RESTIC_PASSWORD)
    return Template(binary, _version(binary), root / "repo", master)


@pytest.fixture
def make_restic(restic_template: Template, tmp_path: Path):
    count = 0

    def make(zone: str) -> ResticRepo:
        nonlocal count
        count += 1
        return ResticRepo(restic_template, tmp_path / f"r{count}", zone)

    return make


# --- the default-suite test ---------------------------------------------------------------

# Berlin: the spring-forward gap (2021-03-28 02:00-03:00), the doubled hour of the fall back
# (2021-10-31 02:00-03:00), ISO week 53 of 2020 (Mon 2020-12-28 .. Sun 2021-01-03), a tie.
SMALL = [
    Spec("2020-12-27 23:30:00"),                       # Sun, 2020-W52
    Spec("2020-12-31 23:59:59", tags=("x",)),          # Thu, W53, last second of 2020
    Spec("2021-01-01 00:00:00"),                       # Fri, W53, first second of 2021
    Spec("2021-01-03 12:00:00"),                       # Sun, still 2020-W53
    Spec("2021-01-04 00:00:00", tags=("x",)),          # Mon, 2021-W01
    Spec("2021-03-28 01:59:00"),                       # CET
    Spec("2021-03-28 02:30:00"),                       # in the gap: 03:30 CEST
    Spec("2021-03-28 03:01:00"),                       # CEST, two minutes later
    Spec("2021-10-31 02:20:00", tags=("y",)),          # ambiguous hour
    Spec("2021-10-31 03:10:00"),
    Spec("2021-11-01 12:00:00", host="h2"),
    Spec("2021-11-01 12:00:00", host="h2"),            # a tie
]
SMALL_POLICIES = [
    Policy.of(last=3), Policy.of(hourly=4), Policy.of(daily=4), Policy.of(weekly=3),
    Policy.of(monthly=2, yearly=2), Policy.of(within="7m3d"), Policy.of(within_daily="1y"),
    Policy.of(tags=("x",), weekly=1), Policy.of(tags=("nothing",)),
]


def _facts(snaps: Iterable[Snapshot]) -> list[tuple]:
    return sorted((s.time.astimezone(UTC), s.time.utcoffset(), s.host, len(s.paths), s.tags)
                  for s in snaps)


def test_small_series_agrees_with_restic(make_restic) -> None:
    repo = make_restic("Europe/Berlin")
    snaps = repo.backup(SMALL)
    assert len(snaps) == len(SMALL)
    cases = [(p, "host,paths") for p in SMALL_POLICIES] + [(Policy.of(weekly=2), "")]
    assert_same(repo, snaps, cases)
    # The extended tests write their snapshots directly: they must equal real backups.
    forged = make_restic("Europe/Berlin")
    assert _facts(forged.forge(SMALL)) == _facts(snaps)
    assert_same(forged, forged.snapshots(), cases[:3])


# --- extended: targeted edge cases --------------------------------------------------------


def _edge_policies(version: tuple[int, int]) -> list[Policy]:
    policies = [
        Policy.of(last=1), Policy.of(last=2), Policy.of(hourly=3), Policy.of(hourly=30),
        Policy.of(daily=2), Policy.of(daily=10), Policy.of(weekly=1), Policy.of(weekly=4),
        Policy.of(weekly=60), Policy.of(monthly=3), Policy.of(yearly=1), Policy.of(yearly=5),
        Policy.of(last=1, daily=2, weekly=2, monthly=2, yearly=2),
        Policy.of(within="1d"), Policy.of(within="2d"), Policy.of(within="1m"),
        Policy.of(within="1y"), Policy.of(within="5h"), Policy.of(within="1d12h"),
        Policy.of(within_hourly="1d"), Policy.of(within_daily="7d"),
        Policy.of(within_weekly="1m"), Policy.of(within_monthly="1y"),
        Policy.of(within_yearly="3y"), Policy.of(within="1d", daily=3),
        Policy.of(tags=("x",)), Policy.of(tags=("x,y",)), Policy.of(tags=("",)),
        Policy.of(tags=("x", "y")), Policy.of(tags=("zzz",)), Policy.of(tags=("x",), last=1),
        Policy(),
    ]
    if version >= (0, 16):
        policies += [Policy.of(daily=-1), Policy.of(weekly=-1, last=1)]
    return policies


def _edge_series(zone: str) -> list[Spec]:
    """Around DST changes in ``zone``, year ends with and without ISO week 53, ties."""
    if zone == "Europe/Berlin":
        spring, fall = date(2021, 3, 28), date(2021, 10, 31)
    else:
        spring, fall = date(2021, 3, 14), date(2021, 11, 7)
    specs: list[Spec] = []
    for day in (spring, fall):
        for delta in (-2, -1, 0, 1, 2):
            d = day + timedelta(days=delta)
            hours = range(0, 5) if delta == 0 else (2, 12)
            for hour in hours:
                for minute in (10, 50) if delta == 0 else (30,):
                    specs.append(Spec(f"{d} {hour:02}:{minute:02}:00",
                                      tags=("x",) if minute == 50 else ()))
    for year in (2015, 2020, 2021, 2026):  # 2015, 2020, 2026 have an ISO week 53
        for d in (date(year, 12, 27), date(year, 12, 28), date(year, 12, 31),
                  date(year + 1, 1, 1), date(year + 1, 1, 3), date(year + 1, 1, 4)):
            specs.append(Spec(f"{d} 23:59:59", tags=("x", "y") if d.day == 31 else ()))
    specs += [Spec("2021-06-15 12:00:00", tags=("y",))] * 3  # ties
    specs += [Spec("2040-01-01 00:00:00"), Spec("2041-06-01 00:00:00", tags=("x",))]  # future
    return specs


@pytest.mark.extended
@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "UTC"])
def test_edge_cases_agree_with_restic(make_restic, zone: str) -> None:
    repo = make_restic(zone)
    snaps = repo.forge(_edge_series(zone))
    cases = [(p, "host,paths") for p in _edge_policies(repo.version)]
    assert_same(repo, snaps, cases)


@pytest.mark.extended
def test_only_future_snapshots(make_restic) -> None:
    repo = make_restic("UTC")
    snaps = repo.backup([Spec("2040-01-01 00:00:00"), Spec("2040-01-02 00:00:00"),
                         Spec("2045-03-01 00:00:00")])
    assert_same(repo, snaps, [(Policy.of(within="1d"), "host,paths"),
                              (Policy.of(within_daily="1d"), "host,paths"),
                              (Policy.of(last=1), "host,paths")])


@pytest.mark.extended
def test_groups_agree_with_restic(make_restic) -> None:
    rng = random.Random(7)
    hosts, paths, tagsets = ("h1", "h2"), (("a",), ("a", "b"), ("b",)), ((), ("x",), ("x", "y"),
                                                                         ("y",))
    start = datetime(2022, 1, 1)
    specs = [Spec(str(start + timedelta(hours=rng.randrange(24 * 120), minutes=rng.randrange(60))),
                  rng.choice(hosts), rng.choice(paths), rng.choice(tagsets)) for _ in range(60)]
    repo = make_restic("Europe/Berlin")
    snaps = repo.forge(specs)
    policies = [Policy.of(last=2), Policy.of(daily=3, weekly=2), Policy.of(within="10d"),
                Policy.of(tags=("x",)), Policy.of(monthly=2, within_daily="20d")]
    group_bys = ["host,paths", "", "host", "paths", "tags", "host,tags", "host,paths,tags"]
    assert_same(repo, snaps, [(p, g) for p in policies for g in group_bys])


# --- extended: seeded random schedules ----------------------------------------------------


def _random_series(rng: random.Random) -> list[Spec]:
    """A mixture of schedules: nightly with gaps, bursts, sparse years, duplicates."""
    base = datetime(rng.choice([2014, 2019, 2020, 2023]), rng.randint(1, 12), rng.randint(1, 28),
                    rng.randint(0, 23), rng.choice([0, 15, 30, 59]))
    specs: list[datetime] = []
    kind = rng.choice(["nightly", "burst", "sparse", "mixed"])
    if kind in ("nightly", "mixed"):
        specs += [base + timedelta(days=i) for i in range(rng.randint(30, 70))
                  if rng.random() < 0.8]
    if kind in ("burst", "mixed"):
        at = base + timedelta(days=rng.randint(0, 40))
        specs += [at + timedelta(minutes=rng.randint(0, 60 * 72)) for _ in range(25)]
    if kind in ("sparse", "mixed"):
        specs += [base + timedelta(days=rng.randint(0, 365 * 4), minutes=rng.randint(0, 1439))
                  for _ in range(25)]
    specs += rng.sample(specs, k=min(3, len(specs)))  # exact duplicates
    tags = ((), ("x",), ("x", "y"))
    out = []
    by_time: dict[datetime, tuple[str, ...]] = {}
    for when in specs:
        tag = by_time.setdefault(when, rng.choice(tags))  # ties get the same tags
        out.append(Spec(when.strftime("%Y-%m-%d %H:%M:%S"), rng.choice(("h1", "h2")),
                        ("a",), tag))
    return out


def _random_policy(rng: random.Random, version: tuple[int, int]) -> Policy:
    rules: dict[str, int | str] = {}
    low = -1 if version >= (0, 16) else 1
    for name in rng.sample(_COUNTS, k=rng.randint(0, 3)):
        rules[name] = rng.choice([low, 1, 2, 3, 5, 8, 13, 40])
    durations = ["1h", "5h", "1d", "2d", "3d", "7d", "14d", "1m", "2m", "6m", "1y", "2y",
                 "1d12h", "1m15d", "1y2m", "30d"]
    for name in rng.sample(_WITHINS, k=rng.choice([0, 0, 1, 2])):
        rules[name] = rng.choice(durations)
    tags = rng.choice([(), (), (), ("x",), ("x,y",), ("",), ("y", "x")])
    if not rules and not tags:
        rules["daily"] = rng.randint(1, 10)
    return Policy.of(tags=tags, **rules)


@pytest.mark.extended
@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"])
def test_random_schedules_agree_with_restic(make_restic, zone: str) -> None:
    rng = random.Random(f"fogvault-restic-{zone}")
    for _ in range(6):
        repo = make_restic(zone)
        snaps = repo.forge(_random_series(rng))
        cases = [(_random_policy(rng, repo.version), rng.choice(["host,paths", "", "tags"]))
                 for _ in range(60)]
        assert_same(repo, snaps, cases)


# --- differences found --------------------------------------------------------------------

# Europe/Berlin falls back on 2021-10-31: 02:00-02:59 happens twice. 02:30 CEST (00:30Z) is
# older than 02:10 CET (01:10Z), although its wall clock reads later.
FOLD = [Spec("2021-10-31 02:30:00", zone="Etc/GMT-2"),  # +02:00, CEST
        Spec("2021-10-31 02:10:00", zone="Etc/GMT-1")]  # +01:00, CET


@pytest.mark.parametrize("zoned", [
    pytest.param(False, id="fixed-offsets"),
    pytest.param(True, id="zoneinfo"),
])
def test_fall_back_hour_order(make_restic, zoned: bool) -> None:
    """restic keeps the newer snapshot with ``--keep-last 1``. So does FogVault, whether the
    times carry fixed offsets (as its stored snapshots do) or the same instants carry the
    shared ``ZoneInfo`` of the zone (the ``SnapshotLike`` protocol only asks for aware times;
    Python compares two such datetimes by their wall clock, which read the older one as the
    newer until retention compared instants)."""
    repo = make_restic("Europe/Berlin")
    snaps = repo.backup(FOLD)
    assert sorted(s.time.utcoffset() for s in snaps) == [timedelta(hours=1), timedelta(hours=2)]
    if zoned:
        snaps = [replace(s, time=s.time.astimezone(repo.tz)) for s in snaps]
    assert compare(repo, snaps, Policy.of(last=1)) == ([], 0)


@pytest.mark.extended
def test_documented_dst_difference_keep_within(make_restic) -> None:
    """docs/retention.md, "Differences from restic": restic reads a snapshot's time in the
    zone of the machine running ``forget`` only if its recorded offset is one of that zone's;
    otherwise in the fixed offset. Run in New York, both subtract the day on New York's wall
    clock and agree. Run in UTC, restic subtracts it in the newest snapshot's fixed -04:00:
    newest 2024-03-10 12:00 EDT, one day back is 2024-03-09 12:00 EST (17:00Z) for FogVault
    (tz New York) but 12:00 -04:00 (16:00Z) for restic, so the snapshot at 11:30 EST (16:30Z)
    is kept by restic and forgotten by FogVault."""
    repo = make_restic("America/New_York")
    snaps = repo.backup([Spec("2024-03-09 11:30:00"), Spec("2024-03-10 12:00:00")])
    policy = Policy.of(within="1d")
    assert compare(repo, snaps, policy) == ([], 0)
    problems, documented = compare(repo, snaps, policy, forget_zone="UTC")
    assert not problems
    assert documented == 2  # one entry each side: restic "within 1d", FogVault REMOVE
