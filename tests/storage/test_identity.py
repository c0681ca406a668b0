"""Which spellings of a target name the same place (fogvault/storage/identity.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fogvault.storage.identity import repeated_target, target_identity
from fogvault.storage.urls import hide_password


@pytest.mark.parametrize("other", [
    "repo", "./repo", "repo/", "./repo//", "sub/../repo", "{tmp}/repo", "file://{tmp}/repo",
    "file://{tmp}//repo/", "file://localhost{tmp}/repo", "link",
])
@pytest.mark.parametrize("exists", [True, False], ids=["folder", "no-folder"])
def test_local_spellings_of_one_folder_are_one_target(tmp_path, monkeypatch, other, exists):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    if exists:
        (tmp_path / "repo").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "repo")
    spelled = other.format(tmp=tmp_path)
    assert target_identity(spelled) == target_identity("repo")
    assert repeated_target(["repo", "other", spelled]) == ("repo", spelled)


def test_home_folder_spelling(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert target_identity("~/repo") == target_identity(str(tmp_path / "repo"))


def test_different_local_folders_are_different_targets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    assert repeated_target(["a", "b", "a/b", str(tmp_path / "c")]) is None


def test_a_bind_mount_of_a_folder_is_the_same_target(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "mnt").mkdir()
    mount = subprocess.run(["mount", "--bind", str(tmp_path / "repo"), str(tmp_path / "mnt")],
                           capture_output=True, check=False)
    if mount.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mount.stderr.decode().strip()}")
    try:
        assert os.path.realpath(tmp_path / "mnt") != os.path.realpath(tmp_path / "repo")
        assert target_identity(str(tmp_path / "mnt")) == target_identity(str(tmp_path / "repo"))
        # a folder not made yet (init) below it: the same place either way too
        assert target_identity(str(tmp_path / "mnt" / "new" / "vault")) == target_identity(
            str(tmp_path / "repo" / "new" / "vault"))
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], check=True)


@pytest.mark.parametrize(("first", "second"), [
    ("sftp://nas/srv/vault", "sftp://nas/srv/vault/"),
    ("sftp://nas/srv/vault", "sftp://nas//srv//vault"),
    ("sftp://nas/srv/vault", "sftp://NAS:22/srv/./vault"),
    ("sftp://ann:secret@nas/srv/vault", "sftp://ann@nas/srv/vault"),
    ("sftp://ann@nas/~/vault", "sftp://ann@nas:22/~/vault/"),
    ("sftp://nas", "sftp://nas/~/"),
    ("s3://bucket/vault", "s3://bucket/vault/"),
    ("s3://bucket/vault", "s3://bucket//vault"),
    ("memory://t", "memory://t/"),
])
def test_remote_spellings_of_one_place_are_one_target(first, second):
    assert target_identity(first) == target_identity(second)


@pytest.mark.parametrize(("first", "second"), [
    ("sftp://nas/srv/vault", "sftp://nas:2222/srv/vault"),
    ("sftp://nas/srv/vault", "sftp://nas/srv/vault2"),
    ("sftp://nas/srv/vault", "sftp://other/srv/vault"),
    ("sftp://ann@nas/~/vault", "sftp://bob@nas/~/vault"),  # two home folders
    ("sftp://ann@nas/srv/vault", "sftp://bob@nas/srv/vault"),  # two chroots, maybe
    ("sftp://nas/srv/vault", "sftp://ann@nas/srv/vault"),
    ("sftp://nas/~/vault", "sftp://nas/vault"),  # under the home folder, and under /
    ("s3://bucket/a/b", "s3://bucket/a//b"),  # two S3 keys
    ("s3://bucket/vault", "s3://other/vault"),
    ("s3://bucket/vault", "sftp://bucket/vault"),
    ("s3://bucket/vault", "bucket/vault"),
])
def test_different_remote_places_are_different_targets(first, second):
    assert target_identity(first) != target_identity(second)


def test_one_bucket_and_prefix_at_two_endpoints_are_two_targets():
    options = {"s3://backups/laptop": {"endpoint_url": "https://s3.one.example"},
               "s3://backups/laptop/": {"endpoint_url": "https://s3.two.example"}}
    assert repeated_target(list(options), options) is None
    assert repeated_target(["s3://backups/laptop", "s3://backups/laptop/"]) is not None


def test_passwords_are_hidden_from_messages():
    assert hide_password("sftp://ann:secret@nas/x") == "sftp://ann:***@nas/x"
    assert hide_password("sftp://ann@nas/x") == "sftp://ann@nas/x"
    assert hide_password(str(Path("/a:b@c"))) == "/a:b@c"
