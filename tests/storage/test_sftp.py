"""What is particular to sftp:// targets: URL and key settings, host-key checking, temporaries,
and reconnecting after a dropped connection. Runs against the real OpenSSH of conftest."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import asyncssh
import pytest

from fogvault.storage import (
    ObjectExists,
    PermanentStorageError,
    RetryingStorage,
    TransientStorageError,
    open_storage,
)
from fogvault.storage.fsspec_store import SftpStorage, sftp_options

# ----------------------------------------------------------------------------- settings


def test_url_parts_become_connection_options() -> None:
    env = {"FOGVAULT_SFTP_KEY": "/keys/id", "FOGVAULT_SFTP_KNOWN_HOSTS": "/keys/known"}
    host, root, opts = sftp_options("sftp://backup@nas.example:2022/srv/fogvault/", {}, env)
    assert (host, root) == ("nas.example", "/srv/fogvault")
    assert opts == {"username": "backup", "port": 2022, "client_keys": ["/keys/id"],
                    "known_hosts": "/keys/known", "connect_timeout": 30,
                    "keepalive_interval": 15, "keepalive_count_max": 4}  # fmt: skip


def test_explicit_options_win_and_host_keys_are_checked_by_default() -> None:
    host, root, opts = sftp_options("sftp://nas/~/backups", {"client_keys": ["/mine"]}, {})
    assert (host, root) == ("nas", "backups")  # /~/ = relative to the home folder
    assert opts["client_keys"] == ["/mine"]
    assert opts["known_hosts"] == ()  # asyncssh's default: ~/.ssh/known_hosts, never unchecked
    assert sftp_options("sftp://nas/~", {}, {})[1] == "."
    assert sftp_options("sftp://nas", {}, {})[1] == "."


def test_the_url_for_messages_has_no_password() -> None:
    storage = open_storage("sftp://me:s3cret@nas:2022/srv/x")
    assert storage.url == "sftp://me@nas:2022/srv/x"


def test_without_the_sftp_extra_the_error_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sshfs", None)  # import sshfs fails
    storage = SftpStorage("sftp://backup@nas.example/srv/fogvault")
    with pytest.raises(PermanentStorageError, match=r"pip install 'fogvault\[sftp\]'"):
        storage.read("config")


def test_a_url_without_host_is_refused() -> None:
    with pytest.raises(PermanentStorageError, match="no host"):
        open_storage("sftp:///srv/x")


# ----------------------------------------------------------------------------- the real server


def test_an_unknown_host_key_is_refused(sftp_url, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(PermanentStorageError):
        open_storage(sftp_url, known_hosts=str(empty)).create()


def test_a_key_the_server_does_not_know_is_refused(sftp_url, tmp_path: Path) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(PermanentStorageError):
        open_storage(sftp_url, client_keys=[stranger]).create()


def test_a_closed_port_is_a_transient_error(sftp_env) -> None:
    storage = open_storage("sftp://nobody@127.0.0.1:9/x")  # discard: nothing listens
    with pytest.raises(TransientStorageError):
        storage.create()


def test_a_refused_create_only_write_leaves_no_temporary(sftp_url) -> None:
    storage = open_storage(sftp_url)
    assert isinstance(storage, SftpStorage)
    storage.create()
    storage.write("data/a", b"first")
    with pytest.raises(ObjectExists):
        storage.write("data/a", b"second")
    fs = storage._filesystem()
    assert fs.ls(f"{storage.root}/data", detail=False) == [f"{storage.root}/data/a"]
    assert storage.read("data/a") == b"first"


def test_a_listing_reads_a_few_folders_at_a_time(sftp_url, monkeypatch) -> None:
    """The first names come after one batch of folders, not after the whole tree; the batches
    still give every name once, and the temporaries' clean-up walks the same way."""
    from concurrent.futures import ThreadPoolExecutor

    from fogvault.storage import fsspec_store
    from tests.storage.test_conformance import plant

    storage = open_storage(sftp_url)
    storage.create()
    wanted = [f"data/{i % 7:02x}/{i:04d}" for i in range(70)] + ["keys/k"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: storage.write(name, b"x"), wanted))
    batches: list[list[str]] = []
    run = storage._run

    def counted(name, func, *args):
        if func is fsspec_store._sftp_read_folders:
            batches.append(args[0])
        return run(name, func, *args)

    monkeypatch.setattr(storage, "_run", counted)
    monkeypatch.setattr(fsspec_store, "LIST_FOLDERS", 2)
    listing = storage.list("data/")
    first = next(listing)
    assert len(batches) == 2  # the base folder, then two of its seven subfolders
    found = [first.name, *(info.name for info in listing)]
    assert sorted(found) == sorted(name for name in wanted if name.startswith("data/"))
    assert [len(batch) for batch in batches] == [1, 2, 2, 2, 1]
    plant(storage, {"data/03/.tmp-0003-abcdef": b"partial"})
    batches.clear()
    assert storage.remove_incomplete(older_than=-60) == 1
    assert [len(batch) for batch in batches] == [1, 2, 2, 2, 2, 1]  # the root, data/, keys/
    assert sorted(info.name for info in storage.list()) == sorted(wanted)


def test_a_dropped_connection_is_reopened(sftp_url, sftp_server) -> None:
    storage = open_storage(sftp_url)
    storage.create()
    storage.write("before", b"1")
    kill_connections(int(sftp_server.settings["SFTP_PID"]))
    with pytest.raises(TransientStorageError):
        storage.read("before")
    assert storage.read("before") == b"1"  # a new connection


def test_retrying_hides_a_dropped_connection(sftp_url, sftp_server) -> None:
    storage = RetryingStorage(open_storage(sftp_url), attempts=3, base_delay=0.001)
    storage.create()
    kill_connections(int(sftp_server.settings["SFTP_PID"]))
    storage.write("after", b"2")
    assert storage.read("after") == b"2"


def test_a_server_that_stops_answering_is_noticed_by_keepalives(sftp_url, sftp_server) -> None:
    """The connection's sshd processes are frozen (SIGSTOP): without keepalives a read would
    wait forever. With them, the connection is closed, the read fails as transient, and the
    next call connects anew."""
    storage = open_storage(sftp_url, keepalive_interval=1, keepalive_count_max=2)
    storage.create()
    storage.write("frozen", b"1")
    frozen = _descendants(int(sftp_server.settings["SFTP_PID"]))
    assert frozen, "no connection to freeze"
    outcome: list[BaseException | bytes] = []
    reader = threading.Thread(target=lambda: outcome.append(_attempt(storage.read, "frozen")))
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        reader.start()
        reader.join(timeout=60)  # a bound for a failing test, not a synchronisation
        assert not reader.is_alive(), "the read hung on a frozen server"
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    assert len(outcome) == 1 and isinstance(outcome[0], TransientStorageError), outcome
    assert storage.read("frozen") == b"1"


def _attempt(func, *args):
    try:
        return func(*args)
    except Exception as exc:
        return exc


def _descendants(pid: int) -> list[int]:
    children = [p for p in _pids() if _parent(p) == pid]
    return children + [d for child in children for d in _descendants(child)]


def kill_connections(sshd_pid: int) -> None:
    """End the per-connection processes of our test sshd (its children), and wait until they
    are gone; the listener stays."""
    children = [pid for pid in _pids() if _parent(pid) == sshd_pid]
    assert children, "no connection to drop"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, "connection processes did not end"
        time.sleep(0.01)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _stat_fields(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else -1


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in ("Z", "X")
