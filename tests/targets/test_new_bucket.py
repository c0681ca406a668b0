"""A repository in an S3 bucket that does not exist yet, on the real Ceph RGW: a new bucket is
a target without a repository (reading its config finds nothing), so 'run JOB --init' and
'fogvault init' create the bucket and the repository there, alone or with other targets."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import FAST_KDF, PASSWORD

from fogvault.errors import NoRepository
from fogvault.jobs.config import load_config
from fogvault.jobs.runner import RunOptions, run_job
from fogvault.repo.repository import Repository
from fogvault.storage import ObjectNotFound, PermanentStorageError, open_storage


@pytest.fixture
def job_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_env: dict[str, str]) -> Path:
    """The run log, job lock and cache under tmp_path; a source folder; a password file."""
    for kind in ("cache", "config", "state"):
        monkeypatch.setenv(f"XDG_{kind.upper()}_HOME", str(tmp_path / f"xdg-{kind}"))
    for name in ("FOGVAULT_REPO", "FOGVAULT_PASSWORD", "FOGVAULT_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("alpha\n" * 1000)
    (tmp_path / "password").write_bytes(PASSWORD + b"\n")
    return tmp_path


def _config(root: Path, targets: list[str]) -> Path:
    path = root / "config.toml"
    quoted = ", ".join(f'"{t}"' for t in targets)
    path.write_text(f'[repositories.r]\ntargets = [{quoted}]\npassword_file = "password"\n\n'
                    f'[jobs.j]\nrepository = "r"\npaths = ["src"]\n')
    return path


def _new_bucket() -> str:
    return f"s3://fogvault-new-{uuid.uuid4().hex[:8]}/vault"


@pytest.mark.parametrize("with_local", [False, True], ids=["bucket-alone", "local-and-bucket"])
def test_run_init_creates_the_repository_in_a_bucket_that_does_not_exist(
        job_env: Path, with_local: bool) -> None:
    bucket = _new_bucket()
    targets = [str(job_env / "local"), bucket] if with_local else [bucket]
    config = load_config(_config(job_env, targets))

    first = run_job(config, "j", RunOptions(init=True, kdf=FAST_KDF))

    assert (first.exit_code, first.error) == (0, None), first
    assert first.snapshot and first.targets_behind == []
    assert any(m.startswith("created repository") for m in first.messages), first.messages
    for target in targets:  # each target alone holds the repository and the snapshot
        with Repository.open([target], PASSWORD, use_cache=False) as repo:
            assert [s.uid for s in repo.snapshots()] == [first.snapshot]
    second = run_job(config, "j", RunOptions())  # no --init needed any more
    assert second.exit_code == 0 and second.snapshot not in (None, first.snapshot), second


def test_without_init_a_new_bucket_is_no_repository_and_nothing_is_created(job_env) -> None:
    """Exit 10 with the hint to use --init (not an unreachable target, exit 1), and the
    bucket is not created by a run that was not asked to."""
    bucket = _new_bucket()
    config = load_config(_config(job_env, [bucket]))
    record = run_job(config, "j", RunOptions())
    assert record.exit_code == 10 and "--init" in (record.error or ""), record
    with pytest.raises(NoRepository):
        Repository.open([bucket], PASSWORD, use_cache=False)
    storage = open_storage(bucket)
    with pytest.raises(ObjectNotFound):
        storage.read("config")
    with pytest.raises(PermanentStorageError, match="NoSuchBucket"):
        list(storage.list())  # still no bucket


def test_init_on_the_cli_creates_a_missing_bucket(fogvault, s3_env) -> None:
    bucket = _new_bucket()
    env = {k: v for k, v in s3_env.items() if k.startswith(("AWS_", "FOGVAULT_S3_"))}
    done = fogvault("-r", bucket, "init", "--kdf", "interactive", env=env)
    assert done.returncode == 0, done.stderr
    assert fogvault("-r", bucket, "snapshots", env=env).returncode == 0
