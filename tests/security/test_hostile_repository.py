"""Hostile or damaged repositories that are not about paths (those are in tests/restore):
a config from a newer FogVault, a forged config, a snapshot that names another uid."""

from __future__ import annotations

import json

import pytest
from conftest import PASSWORD

from fogvault.errors import IntegrityError, MalformedObject, UnsupportedFormat
from fogvault.repo.format import ObjectKind
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, new_uid, now


def _reseal_config(repo: Repository, doc: dict) -> None:
    sealed = repo._seal(ObjectKind.CONFIG, b"", json.dumps(doc).encode())
    repo.targets.write("config", sealed, overwrite=True)


def test_config_from_a_newer_format_is_refused_clearly(make_repo):
    repo = make_repo()
    doc = json.loads(repo.config.encode())
    doc["version"] = 2
    _reseal_config(repo, doc)
    with pytest.raises(UnsupportedFormat, match="upgrade FogVault"):
        Repository.open(repo.targets.urls, PASSWORD, use_cache=False)


@pytest.mark.parametrize("change", [
    {"version": 1.0}, {"version": True}, {"pack_size": "16"}, {"chunker": 5},
    {"compression": {"algorithm": "lz4", "level": 3}}, {"id": "../../x"},
])
def test_malformed_configs_are_refused(make_repo, change):
    repo = make_repo()
    doc = json.loads(repo.config.encode())
    doc.update(change)
    _reseal_config(repo, doc)
    with pytest.raises(IntegrityError):  # MalformedObject, or "fails on every target"
        Repository.open(repo.targets.urls, PASSWORD, use_cache=False)


def test_cli_newer_format_is_a_one_line_error(fogvault, make_repo):
    repo = make_repo()
    doc = json.loads(repo.config.encode())
    doc["version"] = 7
    _reseal_config(repo, doc)
    done = fogvault("snapshots", "-r", repo.targets.urls[0])
    assert done.returncode == 1
    assert b"upgrade FogVault" in done.stderr and b"Traceback" not in done.stderr


def test_snapshot_claiming_another_uid_is_skipped_in_listings(make_repo):
    repo = make_repo()
    real, claimed = new_uid(), new_uid()
    snap = Snapshot(uid=claimed, time=now(), host="h", user="u", paths=["/"], tree=b"\0" * 32)
    sealed = repo._seal(ObjectKind.SNAPSHOT, real.encode(), snap.encode())
    repo.targets.write(f"snapshots/{real}", sealed)
    assert repo.snapshots() == []  # unreadable manifests are skipped with a warning
    with pytest.raises(MalformedObject):
        repo.load_snapshot(real)


def test_a_snapshot_whose_time_is_out_of_range_is_skipped_not_fatal(make_repo):
    """0001-01-01T00:30+01:00 is a valid ISO time in year 0 of UTC: ordering snapshots by the
    instant overflowed, and every command that lists snapshots stopped."""
    repo = make_repo()
    good = Snapshot(uid=new_uid(), time=now(), host="h", user="u", paths=["/"], tree=b"\0" * 32)
    repo.save_snapshot(good)
    bad_uid = new_uid()
    doc = json.loads(good.encode())
    doc.update(uid=bad_uid, time="0001-01-01T00:30:00+01:00")
    sealed = repo._seal(ObjectKind.SNAPSHOT, bad_uid.encode(), json.dumps(doc).encode())
    repo.targets.write(f"snapshots/{bad_uid}", sealed)
    assert [s.uid for s in repo.snapshots()] == [good.uid]
    with pytest.raises(MalformedObject, match="out of range"):
        repo.load_snapshot(bad_uid)
