"""Restore worker processes: files' contents written by other processes, one per core.

Restoring many small files is bound by the interpreter: every system call of a writing thread
hands the GIL to another thread, and the planning, the decoding and the writing all want it.
Worker processes each hold their own: the restoring process plans (folders, empty files,
links) and hands runs of consecutive files, with where their blobs are, to ``count`` workers;
each reads the spans it needs, decrypts them and writes the files, all in one thread, and
reports what it did. Restoring 50,000 small files into tmpfs took 40 % less time
(docs/performance-log.md, "Session 9").

A worker is this interpreter started afresh (not forked: the restoring process has threads)
with this process's module path, running :func:`main` with its stdin and stdout as pipes.
Messages are pickles, each after its length (8 bytes, big-endian); both ends are this code, in
processes of the same user. The first message gives the worker what it needs to read and
write: the repository's key, the target folders (plain local folders only: another process
must be able to open them by path), the restore folder (as the descriptor the restoring process
opened, inherited). Then each message is a task (files and
their blobs' locations) and the worker answers ``share`` messages as it writes and a ``task``
message when the task is done (the files it could not create); ``damaged`` messages name the
copies it found damaged (also before an error), ``log`` messages carry its log records,
``error`` an exception that stopped it. An end of input tells it to exit. Workers run in their
own process group and ignore SIGINT: an interrupted restore stops them itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pickle
import selectors
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from fogvault.errors import FogVaultError
from fogvault.repo.config import RepoConfig
from fogvault.repo.index import IndexEntry
from fogvault.restore.content import ContentWriter, FileJob, Report
from fogvault.targets.policy import TargetPolicy

log = logging.getLogger("fogvault")

_LENGTH = 8  # bytes of a message's length
_QUEUED_TASKS = 2  # tasks sent to a worker and not finished: one to work on, one waiting
_PIPE_CHUNK = 1 << 16  # bytes read or written at once
_PIPE_SIZE = 1 << 20  # a worker's input pipe holds its queued tasks (Linux; best effort)


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What a worker needs: ``folders`` are the targets' folders, in the order to read them."""

    folders: list[str]
    policy: TargetPolicy
    master: bytes = field(repr=False)  # the master key: never in a repr or a log
    key_id: str
    config: RepoConfig
    target: bytes  # the restore folder, resolved (for messages)
    target_fd: int  # ...open in the restoring process, and passed to the worker as it is
    restore_owner: bool
    log_level: int


@dataclass(slots=True)
class _Worker:
    process: subprocess.Popen[bytes]
    # (number, files) of each task sent and not finished
    tasks: deque[tuple[int, list[FileJob]]] = field(default_factory=deque)
    outgoing: bytearray = field(default_factory=bytearray)
    incoming: bytearray = field(default_factory=bytearray)


class WriterProcesses:
    """``count`` worker processes writing files' contents; ``report`` as for ContentWriter,
    ``damaged`` is told of each (target url, object name) a worker found damaged (for the
    ledger, as reads here remember them)."""

    def __init__(self, setup: WorkerSetup, count: int, report: Report,
                 damaged: Callable[[str, str], None]) -> None:
        self._report = report
        self._damaged = damaged
        self._selector = selectors.DefaultSelector()
        self._workers: list[_Worker] = []
        self.tasks_sent = 0  # tasks are numbered from 1, in the order they are submitted
        try:
            for _ in range(count):
                self._start(setup)
        except BaseException:
            self.close(stop=True)
            raise

    def _start(self, setup: WorkerSetup) -> None:
        # -I: nothing from the current folder or the environment is imported before the
        # module path is set. Its own process group: a Ctrl-C or a signal to the terminal's
        # group reaches this process alone, which stops the workers (they also end when their
        # input does, if this process dies).
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, json.dumps(sys.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, process_group=0,
            pass_fds=(setup.target_fd,),  # the folder itself: no path to swap meanwhile
        )
        worker = _Worker(process)
        self._workers.append(worker)
        assert process.stdin is not None and process.stdout is not None
        os.set_blocking(process.stdin.fileno(), False)
        _widen(process.stdin.fileno())
        self._selector.register(process.stdout, selectors.EVENT_READ, worker)
        self._queue(worker, setup)

    def submit(self, jobs: list[FileJob], locations: list[list[IndexEntry]]) -> None:
        """Have a worker write ``jobs`` (waiting while every worker has enough to do)."""
        while min(len(w.tasks) for w in self._workers) >= _QUEUED_TASKS:
            self._pump(wait=True)
        worker = min(self._workers, key=lambda w: len(w.tasks))
        self.tasks_sent += 1
        worker.tasks.append((self.tasks_sent, jobs))
        self._queue(worker, ([(j.parts, j.node, j.created) for j in jobs], locations))
        self._pump(wait=False)

    def _queue(self, worker: _Worker, message: object) -> None:
        """Send ``message`` as the pipe takes it (see _pump)."""
        if not worker.outgoing:  # wake the selector when the pipe takes more
            self._selector.register(worker.process.stdin, selectors.EVENT_WRITE, worker)
        worker.outgoing += _frame(message)

    def tasks_done_in_order(self) -> int:
        """The number of the last task that is done with every task before it (each worker
        does its tasks in the order they were sent)."""
        return min((w.tasks[0][0] - 1 for w in self._workers if w.tasks),
                   default=self.tasks_sent)

    def busy(self) -> bool:
        return any(w.tasks for w in self._workers)

    def wait_for_reports(self) -> None:
        """Handle what the workers say next (waiting for it)."""
        self._pump(wait=True)

    def drain(self) -> None:
        """Wait until every task sent is done."""
        while self.busy():
            self._pump(wait=True)

    def close(self, *, stop: bool = False) -> None:
        """End the workers: after their tasks (handling what they still say, log records
        of their closing), or (``stop``) at once."""
        for worker in self._workers:
            if stop:
                worker.process.kill()
            assert worker.process.stdin is not None
            with contextlib.suppress(OSError):  # a stopped worker's pipe
                worker.process.stdin.close()
        for worker in self._workers:
            assert worker.process.stdout is not None
            if not stop:
                os.set_blocking(worker.process.stdout.fileno(), True)
                worker.incoming += worker.process.stdout.read()
                for message in _unframe(worker.incoming):
                    self._handle(worker, message)
            worker.process.wait()
            worker.process.stdout.close()
        self._selector.close()
        self._workers.clear()

    def _pump(self, *, wait: bool) -> None:
        """Send what a worker's pipe takes and handle what arrived; with ``wait``, block until
        one of them happens. Sending never blocks: a worker may be busy writing its reports,
        and this process must go on reading them."""
        for key, events in self._selector.select(None if wait else 0):
            worker = key.data
            if events & selectors.EVENT_WRITE:
                self._send(worker)
                continue
            data = os.read(key.fd, _PIPE_CHUNK)
            if not data:
                code = worker.process.wait()
                raise FogVaultError(f"a restore worker stopped unexpectedly (exit status {code})")
            worker.incoming += data
            for message in _unframe(worker.incoming):
                self._handle(worker, message)

    def _send(self, worker: _Worker) -> None:
        """Write as much of ``worker``'s outgoing bytes as its pipe takes."""
        assert worker.process.stdin is not None
        while worker.outgoing:
            try:
                sent = os.write(worker.process.stdin.fileno(), worker.outgoing[:_PIPE_CHUNK])
            except BlockingIOError:
                return
            except BrokenPipeError:  # it stopped: its output tells why
                worker.outgoing.clear()
            else:
                del worker.outgoing[:sent]
        self._selector.unregister(worker.process.stdin)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "share":
            self._report(*message[1:])
        elif kind == "task":
            _, jobs = worker.tasks.popleft()
            for number in message[1]:
                jobs[number].failed = True
        elif kind == "damaged":
            for url, name in message[1]:
                self._damaged(url, name)
        elif kind == "log":
            log.log(message[1], "%s", message[2])
        else:  # "error": what stopped the worker
            raise message[1]


#: The worker's start: this process's module path (as multiprocessing's spawn does), so that it
#: runs the same FogVault, installed or not, and speaks the same messages.
_BOOT = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
         "from fogvault.restore.workers import main; main()")


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_LENGTH, "big") + data


def _unframe(buffer: bytearray) -> list[Any]:
    """The whole messages at the start of ``buffer``, removed from it."""
    messages = []
    while len(buffer) >= _LENGTH:
        size = int.from_bytes(buffer[:_LENGTH], "big")
        if len(buffer) < _LENGTH + size:
            break
        messages.append(pickle.loads(buffer[_LENGTH:_LENGTH + size]))  # from our own worker
        del buffer[:_LENGTH + size]
    return messages


# ---- the worker's side -------------------------------------------------------------------


class _Channel:
    """The worker's messages to the restoring process (from any thread)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, *message: object) -> None:
        with self._lock:
            self._stream.write(_frame(message))
            self._stream.flush()


class _Forward(logging.Handler):
    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        self._channel.send("log", record.levelno, record.getMessage())


def _receive(stream: BinaryIO) -> Any:
    """The next message, or None at the end of input."""
    header = stream.read(_LENGTH)
    if len(header) < _LENGTH:
        return None
    size = int.from_bytes(header, "big")
    body = stream.read(size)
    if len(body) < size:  # the restoring process is gone mid-message
        return None
    return pickle.loads(body)  # from our parent


def _serve(requests: BinaryIO, channel: _Channel) -> None:
    from fogvault.crypto import MasterKey
    from fogvault.repo.repository import Repository
    from fogvault.restore.safefs import SafeRoot
    from fogvault.storage.local import LocalStorage
    from fogvault.targets.replicated import TargetSet

    setup: WorkerSetup | None = _receive(requests)
    if setup is None:
        return
    logger = logging.getLogger("fogvault")
    logger.handlers[:] = [_Forward(channel)]
    logger.setLevel(setup.log_level)
    targets = TargetSet([LocalStorage(folder) for folder in setup.folders], setup.policy)
    repo = Repository(targets, MasterKey.from_bytes(setup.master), setup.key_id, setup.config,
                      None)
    root = SafeRoot(setup.target, setup.target_fd)
    reported: set[tuple[str, str]] = set()

    def report_damage() -> None:  # after each task, and before an error ends the worker
        damaged = targets.damaged - reported
        if damaged:
            reported.update(damaged)
            channel.send("damaged", damaged)

    try:
        writer = ContentWriter(repo, root, restore_owner=setup.restore_owner, fetch_threads=0,
                               writers=0, report=lambda *share: channel.send("share", *share))
        while (task := _receive(requests)) is not None:
            files, locations = task
            jobs = [FileJob(parts, node, len(node.content), created)
                    for parts, node, created in files]
            writer.write(jobs, locations)
            report_damage()
            channel.send("task", [n for n, job in enumerate(jobs) if job.failed])
    finally:
        with contextlib.suppress(BrokenPipeError):
            report_damage()
        root.close()
        repo.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the restoring process stops its workers
    requests = sys.stdin.buffer
    # The messages get the original stdout; anything printed by mistake goes to stderr.
    channel = _Channel(os.fdopen(os.dup(sys.stdout.fileno()), "wb"))
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        _serve(requests, channel)
    except BrokenPipeError:  # the restoring process is gone
        pass
    except BaseException as exc:
        with contextlib.suppress(BrokenPipeError):
            channel.send("error", _portable(exc))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` as the restoring process can raise it, so that it is reported as it would have
    been from a thread: itself if it survives pickling (FogVaultErrors, OSErrors such as a
    full disk), else a FogVaultError with its type and message, and the worker's traceback as a
    note (``-v`` shows it)."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:  # its arguments do not round-trip
        copy = None
    if type(copy) is type(exc) and str(copy) == str(exc):
        return exc
    portable = FogVaultError(f"restore worker failed: {type(exc).__name__}: {exc}")
    portable.add_note("".join(traceback.format_exception(exc)).strip())  # shown with -v
    portable.exit_code = getattr(exc, "exit_code", portable.exit_code)
    return portable


def _widen(fd: int) -> None:
    """Make the pipe ``fd`` hold _PIPE_SIZE bytes where the system lets us (Linux): a task is
    about 300 bytes a file, so a worker's second queued task fits while this process plans."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):  # above the system's limit for this user
            fcntl.fcntl(fd, set_size, _PIPE_SIZE)
