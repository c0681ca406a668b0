"""A repository on a local folder and the real RGW whose packs are large enough for multipart
uploads (threshold 5 MiB here, 8 MiB packs), through the real CLI: backup, a repair killed in
the middle of a multipart copy, the repair that finishes it, check, restore from S3 alone."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

from fogvault.storage import open_storage
from fogvault.storage.fsspec_store import S3Storage

MiB = 1 << 20
MULTIPART = {"FOGVAULT_S3_MULTIPART_THRESHOLD": "5M", "FOGVAULT_S3_PART_SIZE": "5M"}


def _kill_after_first_part(args: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run the CLI in a process that SIGKILLs itself once it has sent one multipart part."""
    child = textwrap.dedent(f"""
        import os, signal, sys
        from fogvault.storage.fsspec_store import S3Storage
        real, sent = S3Storage._call, []
        def call(self, method, *args, **kwargs):
            if method == "upload_part":
                if sent:
                    os.kill(os.getpid(), signal.SIGKILL)
                sent.append(kwargs["PartNumber"])
            return real(self, method, *args, **kwargs)
        S3Storage._call = call
        sys.argv = ["fogvault", *{args!r}]
        from fogvault.cli.app import main
        main()
    """)
    return subprocess.run([sys.executable, "-c", child], env=env, cwd=cwd, timeout=300,
                          capture_output=True, check=False).returncode  # fmt: skip


def test_large_packs_go_multipart_and_a_killed_repair_copy_is_finished(
        tmp_path, s3_url, s3_env, fogvault, cli_env) -> None:
    env = {**s3_env, **MULTIPART}
    local = str(tmp_path / "local")
    repo = ["-r", local, "-r", s3_url]
    src = tmp_path / "src"
    src.mkdir()
    data = random.Random(1).randbytes(20 * MiB)  # incompressible: packs of ~8 MiB
    (src / "big").write_bytes(data)
    for args in (["init", "--pack-size", "8", "--kdf", "interactive"], ["backup", str(src)]):
        done = fogvault(*repo, *args, env=env)
        assert done.returncode == 0, done.stderr.decode()

    s3 = open_storage(s3_url, multipart_threshold="5M", part_size="5M")
    assert isinstance(s3, S3Storage)
    sizes = {o.name: o.size for o in s3.list("data/") if o.size >= 5 * MiB}
    assert sizes
    for name, size in sizes.items():  # a multipart object's ETag is "<md5 of md5s>-<parts>"
        head = s3.fs.call_s3("head_object", Bucket=s3.bucket, Key=s3._key(name))
        assert head["ETag"].endswith(f'-{-(-size // (5 * MiB))}"'), (size, head["ETag"])
    big = sorted(sizes)

    victim = big[0]
    good = Path(local, victim).read_bytes()
    s3.delete(victim)
    assert _kill_after_first_part([*repo, "repair"], {**cli_env, **env}, tmp_path) == -9
    assert not s3.exists(victim)  # one part sent, nothing visible
    assert s3.incomplete_uploads() == [victim]

    done = fogvault(*repo, "repair", env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert s3.read(victim) == good
    assert s3.incomplete_uploads() == []
    done = fogvault(*repo, "check", "--read-data", env=env)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    done = fogvault("-r", s3_url, "restore", "--version", "latest", "--target",
                    str(tmp_path / "out"), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    restored = next((tmp_path / "out").rglob("big"))
    assert restored.read_bytes() == data
