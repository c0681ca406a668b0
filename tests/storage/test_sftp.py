"""What is particular to sftp:// targets: URL and key settings, host-key checking, temporaries,
and reconnecting after a dropped connection. Runs against the real OpenSSH of conftest."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
import socket
import sys
import threading
from contextlib import suppress
from pathlib import Path

import asyncssh
import pytest
from fsspec.asyn import sync
from polling import wait_until

from fogvault.errors import UsageError
from fogvault.storage import (
    ObjectExists,
    PermanentStorageError,
    RetryingStorage,
    StorageError,
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


@pytest.mark.parametrize("port", ["99999", "65536", "0", "x", "-1"])
def test_a_bad_port_is_a_usage_error(port) -> None:
    with pytest.raises(UsageError, match=rf"^bad port in 'sftp://u:\*\*\*@nas:{port}/x': use a "
                                         "number from 1 to 65535$"):
        open_storage(f"sftp://u:pw@nas:{port}/x")


def test_a_key_or_known_hosts_file_that_cannot_be_read_is_a_usage_error_naming_it(
        tmp_path, monkeypatch) -> None:
    """Not "no such object" when connecting, which the repository read as "no repository"
    (exit 10): the file is named, before anything is sent."""
    missing, folder = tmp_path / "missing", tmp_path
    readable = tmp_path / "known_hosts"
    readable.write_text("")
    monkeypatch.setenv("FOGVAULT_SFTP_KEY", str(missing))
    monkeypatch.setenv("FOGVAULT_SFTP_KNOWN_HOSTS", str(readable))
    with pytest.raises(UsageError, match=f"^cannot read FOGVAULT_SFTP_KEY {missing}: No such "
                                         "file or directory$"):
        open_storage("sftp://u@127.0.0.1:1/x")
    with pytest.raises(UsageError, match=f"^cannot read the SFTP key {folder}: Is a directory"):
        open_storage("sftp://u@127.0.0.1:1/x", client_keys=[str(folder)])
    monkeypatch.setenv("FOGVAULT_SFTP_KEY", str(readable))
    monkeypatch.setenv("FOGVAULT_SFTP_KNOWN_HOSTS", str(missing))
    with pytest.raises(UsageError, match=f"^cannot read FOGVAULT_SFTP_KNOWN_HOSTS {missing}"):
        open_storage("sftp://u@127.0.0.1:1/x")
    with pytest.raises(UsageError, match=f"^cannot read the known_hosts file {missing}"):
        open_storage("sftp://u@127.0.0.1:1/x", known_hosts=str(missing))
    open_storage("sftp://u@127.0.0.1:1/x", known_hosts=str(readable),
                 client_keys=[asyncssh.generate_private_key("ssh-ed25519")])  # not a file


def test_a_url_without_host_is_refused() -> None:
    with pytest.raises(UsageError, match="no host"):  # bad input, exit 2
        open_storage("sftp:///srv/x")


# ----------------------------------------------------------------------------- the real server


def test_an_unknown_host_key_is_refused_with_the_way_to_trust_it(sftp_url, sftp_env,
                                                                 tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    port = sftp_env["SFTP_PORT"]
    with pytest.raises(PermanentStorageError) as caught:
        open_storage(sftp_url, known_hosts=str(empty)).create()
    assert str(caught.value) == (
        f"{sftp_url}: the host key of 127.0.0.1 port {port} is not trusted: check its "
        f"fingerprint, then add it with 'ssh-keyscan -p {port} 127.0.0.1 >> "
        "~/.ssh/known_hosts', or name a known_hosts file that holds it in "
        "FOGVAULT_SFTP_KNOWN_HOSTS")


def test_a_key_the_server_does_not_know_is_refused(sftp_url, tmp_path: Path) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(PermanentStorageError):
        open_storage(sftp_url, client_keys=[stranger]).create()


def test_a_refused_connection_is_permanent_and_said_in_words(sftp_env) -> None:
    """Nothing listens at the port: retrying within seconds will not change that (restic
    does not retry it either), so the target is given up at once, in a sentence."""
    sleeps: list[float] = []
    storage = RetryingStorage(open_storage("sftp://nobody@127.0.0.1:9/x"),  # discard port
                              attempts=5, sleep=sleeps.append)  # fmt: skip
    with pytest.raises(PermanentStorageError) as caught:
        storage.read("config")
    assert str(caught.value) == ("sftp://nobody@127.0.0.1:9/x config: connection refused by "
                                 "127.0.0.1 port 9 (is the SSH server running?)")
    assert sleeps == []  # tried once


def test_an_unknown_host_is_said_in_words_and_not_retried() -> None:
    sleeps: list[float] = []
    storage = RetryingStorage(open_storage("sftp://nobody@fogvault-nowhere.invalid/x"),
                              attempts=5, sleep=sleeps.append)  # fmt: skip
    with pytest.raises(StorageError) as caught:
        storage.read("config")
    message = str(caught.value)
    assert message.startswith("sftp://nobody@fogvault-nowhere.invalid/x config: host not "
                              "found: fogvault-nowhere.invalid"), message
    if "temporary DNS failure" not in message:  # a resolver that could not answer: retried
        assert isinstance(caught.value, PermanentStorageError) and sleeps == []


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


def kill_connections(sshd_pid: int, sig: int = signal.SIGKILL) -> None:
    """End the per-connection processes of our test sshd (its children), and wait until they
    are gone; the listener stays. SIGKILL: the client's next request meets a reset; SIGTERM:
    sshd closes the connection, which asyncssh reports as ConnectionLost."""
    children = [pid for pid in _pids() if _parent(pid) == sshd_pid]
    assert children, "no connection to drop"
    for pid in children:
        os.kill(pid, sig)
    wait_until(lambda: not any(_alive(pid) for pid in children), "the connections ending", 10)


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


class CutLink:
    """A TCP proxy to the SFTP server that, once the client has sent ``cut_after`` bytes, ends
    the connection as a server that goes away does: the client reads the end of the stream
    (asyncssh: ConnectionLost for every request pending) while what it still sends is read
    and dropped (no reset, which would be an OSError instead)."""

    def __init__(self, port: int, cut_after: int) -> None:
        self.port, self.cut_after, self.sent = port, cut_after, 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.cut = threading.Event()
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                client = self.server.accept()[0]
                upstream = socket.create_connection(("127.0.0.1", self.port))
                self.sockets += [client, upstream]
                for args in ((client, upstream, True), (upstream, client, False)):
                    threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if from_client:
                    self.sent += len(data)
                    if self.sent >= self.cut_after and not self.cut.is_set():
                        self.cut.set()
                        source.shutdown(socket.SHUT_WR)  # the client reads the end
                        sink.close()  # the server's side of this connection is gone
                    if self.cut.is_set():
                        continue  # read and dropped
                elif self.cut.is_set():
                    return
                sink.sendall(data)

    def close(self) -> None:
        for sock in self.sockets:
            with suppress(OSError):
                sock.close()


def test_a_connection_lost_during_a_write_leaves_no_task_unawaited(sftp_url, sftp_env) -> None:
    """asyncssh's parallel writer raised on the first request that failed with ConnectionLost
    and left the other requests' tasks to fail unobserved; asyncio reported each one when it
    was collected ("Task exception was never retrieved" and a traceback, on stderr at exit).
    Every task of a write is awaited, and the write fails as transient."""
    link = CutLink(int(sftp_env["SFTP_PORT"]), cut_after=8 << 20)
    direct = open_storage(sftp_url)
    direct.create()
    storage = open_storage(sftp_url, port=link.server.getsockname()[1],
                           known_hosts=None)  # the proxy's port is not in known_hosts
    loop = storage._filesystem().loop
    reports: list[dict] = []
    sync(loop, _set_handler, loop, lambda _, context: reports.append(context))
    data = random.Random(3).randbytes(32 << 20)
    try:
        with pytest.raises(TransientStorageError):
            storage.write("big", data)
        assert link.cut.is_set()
        gc.collect()  # a task whose failure nobody saw is reported when it is collected
        sync(loop, asyncio.sleep, 0)
        gc.collect()
    finally:
        sync(loop, _set_handler, loop, None)
        link.close()
    assert [c.get("message") for c in reports] == []
    assert not direct.exists("big")  # no partial object
    direct.write("big", data)
    assert direct.read("big") == data


async def _set_handler(loop, handler) -> None:
    loop.set_exception_handler(handler)


def test_the_transports_own_log_records_go_to_debug_not_stderr(caplog, capfd) -> None:
    """asyncio's "socket.send() raised exception." (from fsspec's loop thread) and asyncssh's
    warnings reached stderr through Python's last-resort handler; they are FogVault's debug
    records now (-vv). asyncio's records about other loops are left alone."""
    open_storage("sftp://u@nas/x")  # an sftp:// target sets this up
    caplog.set_level(logging.DEBUG, logger="fogvault.storage.transport")
    loop_thread = threading.Thread(name="fsspecIO", target=lambda: logging.getLogger(
        "asyncio").warning("socket.send() raised exception."))
    loop_thread.start()
    loop_thread.join()
    logging.getLogger("asyncssh.sftp").warning("an sftp warning")
    # pytest also listens on loggers that do not propagate, such as 'asyncssh' once an earlier
    # test in this process set it up: its own capture of the original record is left out here,
    # and what matters is that nothing reaches the root logger's handlers (or stderr)
    assert not logging.getLogger("asyncssh").propagate
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records
            if not r.name.startswith("asyncssh")] == [
        ("fogvault.storage.transport", logging.DEBUG, "asyncio: socket.send() raised exception."),
        ("fogvault.storage.transport", logging.DEBUG, "asyncssh.sftp: an sftp warning")]
    caplog.clear()
    logging.getLogger("asyncio").warning("another loop's warning")
    assert [r.name for r in caplog.records] == ["asyncio"]
    assert "socket.send()" not in capfd.readouterr().err
