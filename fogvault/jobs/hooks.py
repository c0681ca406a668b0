"""Hooks and pings: commands around a job, and a monitoring URL told how it went.

Commands (``before``, ``after``, ``on_failure``): a string runs with ``/bin/sh -c``; a list of
strings is an argv run without a shell. They run in order, in the config file's folder (where
its relative paths start, whoever started the run: cron, systemd, a shell), with the job's
environment plus
``FOGVAULT_JOB``, ``FOGVAULT_REPOSITORY`` and (for ``after``/``on_failure``) ``FOGVAULT_RESULT``,
``FOGVAULT_EXIT_CODE``, ``FOGVAULT_SNAPSHOT``, ``FOGVAULT_ERROR``; their output goes to FogVault's
stderr (so ``--json`` output stays clean). A command that exits non-zero, cannot start, or runs
past ``timeout`` raises :class:`HookFailed`; the rest of that list is not run. Each command
runs in a session of its own; one that times out or is interrupted is stopped with its whole
process group (SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`), so nothing it started is
left running.

Pings (healthchecks.io style): ``ping_url`` gets ``/start`` when the run starts, the bare URL on
success and ``/fail`` on failure; ``ping_start``/``ping_success``/``ping_failure`` override one
each. Each is one HTTP POST whose body is a short plain-text summary, with ``ping_timeout``
(default 10 s) and one retry on a network error. A failing ping never fails the job: it is
returned as a message for the summary.
"""

from __future__ import annotations

import http.client
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from fogvault import __version__
from fogvault.errors import FogVaultError
from fogvault.jobs.config import Command, HooksConfig

EXIT_HOOK_FAILED = 20
PING_BODY_LIMIT = 10_000
STOP_GRACE_S = 5.0  # from SIGTERM to SIGKILL for a hook that is stopped


class HookFailed(FogVaultError):
    exit_code = EXIT_HOOK_FAILED


def describe(command: Command) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def run_commands(kind: str, commands: list[Command], env: dict[str, str],
                 timeout: float, cwd: str) -> None:
    """Run ``commands`` in order in the folder ``cwd``; raise :class:`HookFailed` at the
    first that fails."""
    for command in commands:
        _run_one(kind, command, env, timeout, cwd)


def _run_one(kind: str, command: Command, env: dict[str, str], timeout: float,
             cwd: str) -> None:
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    sys.stdout.flush()
    # Held until the hook can be stopped: raised inside Popen, an interrupt would lose the
    # hook's pid, and the hook would run on.
    signals = _HeldSignals()
    try:
        process = subprocess.Popen(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                   stdout=_stderr_fd(), start_new_session=True, cwd=cwd)
    except OSError as exc:
        signals.release()
        raise HookFailed(f"{kind} hook {describe(command)!r} could not start: "
                         f"{exc.strerror or exc}") from None
    try:
        signals.release()  # inside the try: an interrupt held meanwhile stops the hook
        status = process.wait(timeout)
    except subprocess.TimeoutExpired:
        _stop(process)
        raise HookFailed(f"{kind} hook {describe(command)!r} timed out after {timeout:g} s"
                         ) from None
    except BaseException:  # interrupted (Ctrl-C, SIGTERM, SIGHUP)
        _stop(process)
        raise
    if status != 0:
        raise HookFailed(f"{kind} hook {describe(command)!r} exited with status {status}")


class _HeldSignals:
    """Interrupting signals recorded, not acted on, until :meth:`release` restores their
    handlers and raises them. Only the main thread runs signal handlers: elsewhere nothing is
    held."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.held: list[int] = []
        self._saved = {}
        if threading.current_thread() is threading.main_thread():
            self._saved = {signum: signal.signal(signum, self._hold) for signum in self.SIGNALS}

    def _hold(self, signum: int, _frame: object) -> None:
        self.held.append(signum)

    def release(self) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved = {}
        for signum in self.held:
            signal.raise_signal(signum)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the hook's process group: SIGTERM, and SIGKILL to whatever is left after a grace
    period. A second interrupt meanwhile waits until the group is gone (it would have left the
    hook running, SIGKILL never sent)."""
    signals = _HeldSignals()
    try:
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while _signal_group(process.pid, 0) and time.monotonic() < deadline:
            process.poll()  # reap the group's leader, which would otherwise keep it alive
            time.sleep(0.05)
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        signals.release()


def _signal_group(group: int, signum: int) -> bool:
    """Send ``signum`` to process group ``group``; False if the group is gone."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _stderr_fd() -> int | None:
    """Our stderr's file descriptor, or None (inherit stdout) when stderr is not a file."""
    try:
        sys.stderr.flush()
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


@dataclass(slots=True)
class Pinger:
    hooks: HooksConfig

    def url(self, event: str) -> str | None:
        explicit = {"start": self.hooks.ping_start, "success": self.hooks.ping_success,
                    "failure": self.hooks.ping_failure}[event]
        if explicit or not self.hooks.ping_url:
            return explicit
        suffix = {"start": "/start", "success": "", "failure": "/fail"}[event]
        return _with_suffix(self.hooks.ping_url, suffix)

    def ping(self, event: str, body: str = "") -> str | None:
        """POST ``body`` to the URL for ``event``; returns a warning if that failed."""
        url = self.url(event)
        if url is None:
            return None
        error = ""
        for _attempt in range(2):
            error = _post(url, body, self.hooks.ping_timeout)
            if not error or error.startswith("HTTP"):
                break
        return f"{event} ping to {_safe(url)} failed: {error}" if error else None


def _with_suffix(url: str, suffix: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def _post(url: str, body: str, timeout: float) -> str:
    request = urllib.request.Request(
        url, data=body[:PING_BODY_LIMIT].encode(), method="POST",
        headers={"User-Agent": f"fogvault/{__version__}",
                 "Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return str(reason) or type(exc).__name__
    except http.client.HTTPException as exc:  # BadStatusLine and kin: the server spoke no HTTP
        return f"not an HTTP answer ({type(exc).__name__})"
    return ""


def _safe(url: str) -> str:
    """The URL without its path (ping URLs embed secret check ids)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
