"""A TCP proxy in front of the test S3 server that can go silent, as a server or a network does
(tests/storage/test_s3.py, tests/cli/test_interrupt_targets.py)."""

from __future__ import annotations

import math
import re
import socket
import threading
from contextlib import suppress


class Link:
    """A TCP proxy to the S3 server: the client's bytes pass at ``rate`` bytes a second (None:
    at once), and once the client has sent ``silent_after`` bytes, or bytes that match the
    regular expression ``silent_on`` (say, a request line), the proxy neither reads nor
    answers on any connection, as a server or link gone silent in the middle of a request.
    The bytes that made it go silent are not passed on: their request is left unanswered.
    Its sockets' receive buffers are small, so a body stops moving a few hundred KiB after
    that."""

    def __init__(self, upstream: tuple[str, int], *, rate: float | None = None,
                 silent_after: float = math.inf, silent_on: bytes | None = None) -> None:
        self.upstream, self.rate, self.silent_after = upstream, rate, silent_after
        self.silent_on = re.compile(silent_on) if silent_on is not None else None
        self.sent = 0
        self.silent = threading.Event()
        self.closing = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sockets: list[socket.socket] = [self.server]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                client = self.server.accept()[0]
                upstream = socket.create_connection(self.upstream)
                self.sockets += [client, upstream]
                threading.Thread(target=self._pump, args=(client, upstream, True),
                                 daemon=True).start()  # fmt: skip
                threading.Thread(target=self._pump, args=(upstream, client, False),
                                 daemon=True).start()  # fmt: skip

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        seen = b""  # the end of what came before, for a match across two pieces
        with suppress(OSError):
            while not self.silent.is_set():
                data = source.recv(16384)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                if from_client:
                    seen = seen[-1024:] + data
                    with self.lock:
                        self.sent += len(data)
                        if self.sent >= self.silent_after or (
                                self.silent_on is not None and self.silent_on.search(seen)):
                            self.silent.set()
                    if self.rate:  # the link's pace: a fault of the network, not a wait
                        self.closing.wait(len(data) / self.rate)
                if self.silent.is_set():
                    break
                sink.sendall(data)
        self.closing.wait()  # silent: the connection stays open, unread and unanswered

    def close(self) -> None:
        self.closing.set()
        for sock in self.sockets:
            sock.close()
