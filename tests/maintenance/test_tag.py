"""``tag``: snapshots retagged by writing them anew (new uid, the rest unchanged) on every target,
then deleting the old manifest; through the library and the real CLI."""

from __future__ import annotations

import json
import re

import pytest

from fogvault.errors import UsageError
from fogvault.maintenance.tag import TagOptions, tag
from fogvault.repo.format import SNAPSHOTS_DIR


@pytest.fixture
def two_snapshots(fogvault, tmp_path):
    """Two snapshots of ``src`` on two targets, tagged ``a`` and ``a``, ``b``."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    assert fogvault("init", "-r", "one", "-r", "two", "--kdf", "interactive").returncode == 0
    for tags in (["--tag", "a"], ["--tag", "a", "--tag", "b"]):
        assert fogvault("backup", "-r", "one", "-r", "two", "src", *tags).returncode == 0
    return _snapshots(fogvault)


def _snapshots(fogvault) -> list[dict]:
    done = fogvault("snapshots", "-r", "one", "-r", "two", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _manifests(tmp_path, target: str) -> set[str]:
    return {p.name for p in (tmp_path / target / SNAPSHOTS_DIR).iterdir()}


def test_add_remove_and_set_write_new_manifests_and_delete_the_old(fogvault, two_snapshots,
                                                                   tmp_path):
    first, second = two_snapshots
    done = fogvault("tag", "-r", "one", "-r", "two", "--add", "keep", "--remove", "a",
                    first["uid"][:6], "--json")
    assert done.returncode == 0, done.stderr
    [change] = json.loads(done.stdout)["changed"]
    assert (change["old_uid"], change["tags"]) == (first["uid"], ["keep"])
    after = _snapshots(fogvault)
    assert [s["uid"] for s in after] == [change["new_uid"], second["uid"]]
    unchanged = ("time", "host", "paths", "tree", "parent", "summary")
    assert {k: after[0][k] for k in unchanged} == {k: first[k] for k in unchanged}
    for target in ("one", "two"):  # every copy changed
        assert _manifests(tmp_path, target) == {change["new_uid"], second["uid"]}
    done = fogvault("tag", "-r", "one", "-r", "two", "--set", "", "--tag", "b")
    assert done.returncode == 0, done.stderr
    assert [s["tags"] for s in _snapshots(fogvault)] == [["keep"], []]


def test_a_tag_keeps_a_snapshot_from_forget_keep_tag(fogvault, two_snapshots):
    """What tags are for: protecting an old snapshot from the retention policy."""
    first, _ = two_snapshots
    assert fogvault("tag", "-r", "one", "-r", "two", "--add", "keep",
                    first["uid"]).returncode == 0
    done = fogvault("forget", "-r", "one", "-r", "two", "--keep-last", "1", "--keep-tag", "keep")
    assert done.returncode == 0, done.stderr
    assert [s["tags"] for s in _snapshots(fogvault)] == [["a", "keep"], ["a", "b"]]


def test_dry_run_and_tags_already_as_asked_change_nothing(fogvault, two_snapshots, tmp_path):
    before = _manifests(tmp_path, "one")
    done = fogvault("tag", "-r", "one", "-r", "two", "--add", "new", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[-1] == "would change 2 snapshots"
    done = fogvault("tag", "-r", "one", "-r", "two", "--add", "a")
    assert done.stdout.decode().splitlines()[-1] == "changed 0 snapshots, 2 already as asked"
    assert _manifests(tmp_path, "one") == before == _manifests(tmp_path, "two")


@pytest.mark.parametrize(("options", "says"), [
    (TagOptions(), "nothing to change: give --add, --remove or --set"),
    (TagOptions(set=["x"], add=["y"]), "--set cannot be combined with --add or --remove"),
    (TagOptions(add=[""]), "a tag cannot be empty"),
    (TagOptions(set=["x,y"]), "tag 'x,y' holds a comma: give --tag once for each tag (restic "
                              "splits 'a,b' into two tags; FogVault keeps a tag as written)"),
    (TagOptions(add=["x"], uids=["ab"], host="h"),
     "give snapshot uids or --host/--tag/--path filters, not both"),
])
def test_options_that_make_no_sense_are_refused_before_anything_changes(
        make_repo, options, says):
    repo = make_repo("repo")
    with pytest.raises(UsageError, match=f"^{re.escape(says)}$"):
        tag(repo, options)


def test_usage_errors_come_before_the_password(fogvault):
    done = fogvault("tag", "-r", "nowhere", env={"FOGVAULT_PASSWORD": ""})
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: nothing to change: give --add, --remove or --set"]


def test_a_snapshot_on_some_targets_only_is_retagged_there_only(fogvault, two_snapshots,
                                                                 tmp_path):
    """A k-of-N backup left a snapshot on 'one' only: its retagged copy must not appear on
    'two', which lacks its data (it would look restorable there and is not)."""
    (tmp_path / "two").rename(tmp_path / "two.away")
    (tmp_path / "src" / "g").write_text("only on one")
    done = fogvault("backup", "-r", "one", "-r", "two", "--min-targets", "1", "src", "--json")
    assert done.returncode == 3, done.stderr
    partial = json.loads(done.stdout.decode().splitlines()[-1])["snapshot"]
    (tmp_path / "two.away").rename(tmp_path / "two")
    done = fogvault("tag", "-r", "one", "-r", "two", "--add", "keep", partial, "--json")
    assert done.returncode == 0, done.stderr
    [change] = json.loads(done.stdout)["changed"]
    assert change["new_uid"] in _manifests(tmp_path, "one")
    assert change["new_uid"] not in _manifests(tmp_path, "two")
    assert partial not in _manifests(tmp_path, "one") | _manifests(tmp_path, "two")
    [retagged] = [s for s in _snapshots(fogvault) if s["uid"] == change["new_uid"]]
    assert retagged["targets"] == [str(tmp_path / "one")]
