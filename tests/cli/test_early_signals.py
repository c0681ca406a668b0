"""SIGTERM, SIGHUP and SIGINT at any moment of a ``fogvault`` process: exit code 130 and the one
line "interrupted" on stderr, from the first line of ``python -m fogvault`` to the end
(fogvault/cli/signals.py). Outside that: before it, the interpreter's own start-up (the signal
kills the process, nothing is written); after the last atexit callback, the interpreter's
teardown (the signal is ignored: the command has ended with its own exit code and output).

The signal comes at chosen points, sent by the process itself from a wrapper that runs the CLI
as ``python -m fogvault`` does (a hook on an import, a thread, an object's ``__del__``), and at
moments spread over whole runs of a real command, told apart by whether the process had taken
the signal (/proc/PID/status) when it was sent.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SIGNALS = {"term": signal.SIGTERM, "hup": signal.SIGHUP, "int": signal.SIGINT}
INTERRUPTED = b"interrupted\n"

# Runs ``python -m fogvault ARGS`` after arranging for the process to send itself SIGNUM at
# POINT. ``send`` binds what it needs: at teardown, module globals may be gone.
_AT_POINT = """
import os, runpy, sys, threading, time, types, weakref
signum, point = int(sys.argv[1]), sys.argv[2]
sys.argv = ["fogvault", *sys.argv[3:]]

def send(kill=os.kill, pid=os.getpid()):
    kill(pid, signum)

if point == "loading":  # python -m fogvault has begun; the CLI loads Typer (about 0.05 s)
    class Loading:
        def find_spec(self, name, path=None, target=None):
            if name == "typer":
                sys.meta_path.remove(self)
                send()
            return None
    sys.meta_path.insert(0, Loading())
elif point == "threads":  # the command is done; the interpreter waits for a thread it left
    def late():
        threading.main_thread().join()
        send()
    threading.Thread(target=late).start()
elif point == "teardown":  # after the last atexit callback: the interpreter frees its modules
    class Teardown:
        def __del__(self, send=send):
            send()
    holder = types.ModuleType("teardown_trigger")
    holder.trigger = Teardown()
    sys.modules[holder.__name__] = holder
elif point == "callback":  # the command runs a weakref callback, where Python drops exceptions
    class Thing:
        pass
    def callback(ref):
        send()
        for _ in range(1000):  # the handler runs in here
            pass
    class Callback:
        def find_spec(self, name, path=None, target=None):
            if name == "fogvault.repo":  # imported by the command, not by the CLI
                sys.meta_path.remove(self)
                weakref.ref(Thing(), callback)
                time.sleep(30)
                print("the command went on", file=sys.stderr)
            return None
    sys.meta_path.insert(0, Callback())
runpy.run_module("fogvault", run_name="__main__", alter_sys=True)
"""


def _default_signals() -> None:
    """In the child before it runs Python: the signals as a shell in the foreground leaves
    them (the test may run under nohup or in the background, which ignore some)."""
    for signum in SIGNALS.values():
        signal.signal(signum, signal.SIG_DFL)


def _at_point(signum: int, point: str, args: list[str], env: dict[str, str], cwd: Path
              ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _AT_POINT, str(signum), point, *args],
                          env=env, cwd=cwd, capture_output=True, timeout=60, check=False,
                          preexec_fn=_default_signals)


@pytest.mark.parametrize("signum", SIGNALS.values(), ids=SIGNALS)
def test_a_signal_while_the_cli_loads_says_interrupted(cli_env, tmp_path, signum):
    """Before, the handlers came once the CLI and Typer had loaded: the signal killed the
    process with no word (143, 129), or SIGINT printed a traceback."""
    done = _at_point(signum, "loading", ["--version"], cli_env, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (130, b"", INTERRUPTED)


@pytest.mark.parametrize("signum", SIGNALS.values(), ids=SIGNALS)
def test_a_signal_in_a_callback_of_the_command_stops_it(cli_env, tmp_path, signum):
    """Python drops an exception raised in a weakref callback (as importlib's module locks have)
    or a ``__del__``: the KeyboardInterrupt printed an "Exception ignored" traceback and the
    command went on to its end (CI, session 32)."""
    done = _at_point(signum, "callback", ["snapshots", "-r", "repo"], cli_env, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (130, b"", INTERRUPTED)


@pytest.mark.parametrize("signum", SIGNALS.values(), ids=SIGNALS)
def test_a_signal_while_the_process_exits_says_interrupted(cli_env, tmp_path, signum):
    """A thread that the command left running keeps the interpreter waiting at the exit; a
    signal then printed a KeyboardInterrupt traceback ("Exception ignored") and exit 0. What
    the command printed is delivered."""
    done = _at_point(signum, "threads", ["--version"], cli_env, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (130, b"fogvault 0.1.0\n", INTERRUPTED)


@pytest.mark.parametrize("signum", SIGNALS.values(), ids=SIGNALS)
def test_a_signal_during_the_interpreters_teardown_is_ignored(cli_env, tmp_path, signum):
    """Once the interpreter has reset the handlers to the default, a signal killed the process
    (143, 129, or SIGINT's death) after its output: the command is over, so it is ignored."""
    done = _at_point(signum, "teardown", ["--version"], cli_env, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"fogvault 0.1.0\n", b"")


def _caught(pid: int, signum: int) -> bool:
    """Whether the process has a handler for ``signum`` (SigCgt; false once it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


RUNS = 16


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["term", "hup"])
def test_a_signal_at_any_moment_of_a_run(fogvault, cli_env, tmp_path, signum):
    """``snapshots`` on a real repository, signalled at moments spread from its start to past
    its end. Every outcome is one of three: the signal came while the interpreter started
    (killed, nothing written; only if the process had not taken it yet), while FogVault ran
    (130, "interrupted", the listing whole or not at all), or too late (the listing, exit 0)."""
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    (tmp_path / "src").mkdir()
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    command = [sys.executable, "-m", "fogvault", "snapshots", "-r", "repo"]
    start = time.monotonic()
    whole = subprocess.run(command, env=cli_env, cwd=tmp_path, capture_output=True, check=True)
    span = (time.monotonic() - start) * 1.2
    outcomes = set()
    for n in range(RUNS):
        process = subprocess.Popen(command, env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, preexec_fn=_default_signals)
        time.sleep(span * n / RUNS)  # not waiting for anything: the moment of the signal
        taken = _caught(process.pid, signum)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
        outcome = (process.returncode, stdout, stderr)
        if outcome == (-signum, b"", b""):
            assert not taken, "killed by a signal the process had taken"
            outcomes.add("before FogVault")
        elif process.returncode == 130:
            assert stderr == INTERRUPTED and stdout in (b"", whole.stdout), outcome
            outcomes.add("interrupted")
        else:
            assert outcome == (0, whole.stdout, b""), outcome
            outcomes.add("too late")
    assert "interrupted" in outcomes
