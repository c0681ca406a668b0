"""Real mounts: ``fogvault mount`` in a subprocess, waited for with a deadline, and always
unmounted in teardown (``fusermount -u``, else ``umount -l``), even after a failed test or a
killed process, so that no test leaves a mount behind.

Where the machine cannot mount FUSE file systems (no libfuse, no /dev/fuse) the tests that
mount are skipped, saying so; ``.ci/run`` installs Debian's fuse package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.mount.mounting import MountProcess, fuse_missing


@pytest.fixture(scope="session")
def fuse() -> None:
    why = fuse_missing()
    if why:
        pytest.skip(f"FUSE is not available here: {why}")


@pytest.fixture
def start_mount(fuse: None, cli_env: dict[str, str], tmp_path: Path
                ) -> Iterator[Callable[..., MountProcess]]:
    """``start_mount(*args, point=...)``: a mount started (not waited for) at ``point``
    (default tmp_path/mnt, made empty), with the CLI's test environment; ended in teardown."""
    started: list[MountProcess] = []

    def start(*args: str, point: Path | None = None, env: dict[str, str] | None = None
              ) -> MountProcess:
        point = point or tmp_path / "mnt"
        point.mkdir(exist_ok=True)
        started.append(MountProcess(point, list(args), {**cli_env, **(env or {})}, tmp_path))
        return started[-1]

    yield start
    for mount in started:
        mount.clean_up()
