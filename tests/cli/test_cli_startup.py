"""Start-up cost: the CLI loads only what the command that runs needs (fogvault/cli/__init__.py).

Every command pays for what the CLI imports before it starts, so ``--help`` must not load the
library, and a command must not load the parts of it that other commands use.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import typer.main

from fogvault.cli import common
from fogvault.cli.app import COMMAND_MODULES, build_app
from fogvault.crypto import DEFAULT_KDF, KDF_MIN_MEMLIMIT, KDF_MIN_OPSLIMIT, KDF_PROFILES

# Third-party packages that only some commands need (rich: Typer's help and usage errors).
HEAVY_PACKAGES = ("nacl", "blake3", "zstandard", "pyfastcdc", "fsspec", "s3fs", "tqdm",
                  "msgspec")
# The fogvault modules outside the command modules that building the CLI may import.
LIGHT_MODULES = {"fogvault", "fogvault.cli", "fogvault.errors", "fogvault.sizes", "fogvault.text"}

_REPORT_MODULES = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
from fogvault.cli.app import main
main(sys.argv[1:])
"""


def _modules(args: list[str], env: dict[str, str], cwd: Path) -> set[str]:
    """The modules loaded by ``fogvault ARGS`` when it exits."""
    done = subprocess.run([sys.executable, "-c", _REPORT_MODULES, *args], env=env, cwd=cwd,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.decode().splitlines()[-1]))


def _package(name: str) -> str:
    return name.partition(".")[0]


def test_help_loads_no_library(cli_env, tmp_path):
    loaded = _modules(["--help"], cli_env, tmp_path)
    ours = {m for m in loaded if _package(m) == "fogvault"}
    assert {m for m in ours if not m.startswith("fogvault.cli.")} <= LIGHT_MODULES
    assert "fogvault.cli.progress" not in ours
    assert not {m for m in loaded if _package(m) in HEAVY_PACKAGES}


def test_snapshots_loads_only_what_it_needs(cli_env, tmp_path, fogvault):
    assert fogvault("init", "-r", "repo").returncode == 0
    loaded = _modules(["-r", "repo", "snapshots"], cli_env, tmp_path)
    assert "fogvault.repo.repository" in loaded
    unneeded = ("fogvault.backup", "fogvault.restore", "fogvault.maintenance", "fogvault.jobs",
                "fogvault.cli.progress", "tqdm", "fsspec", "s3fs", "rich", "pyfastcdc", "socket",
                "_hashlib")  # OpenSSL: 3.5 MiB of peak RSS for every command (secrets, hmac)
    assert not [m for m in loaded if m.startswith(unneeded)]
    assert {m for m in loaded if m.endswith("_cmd")} == {"fogvault.cli.snapshots_cmd"}


def test_help_lists_every_command(fogvault):
    done = fogvault("--help")
    assert done.returncode == 0
    listed = set(re.findall(r"^\W+ ([a-z]+) ", done.stdout.decode(), re.MULTILINE))
    assert set(COMMAND_MODULES) <= listed


def test_a_command_built_alone_is_the_command_of_the_full_app():
    """``main`` builds only the command it runs (COMMAND_MODULES): the map must name every
    command, and a command built alone must parse as it does in the full app."""
    full = typer.main.get_command(build_app())
    assert set(full.commands) == set(COMMAND_MODULES)
    for name, module in COMMAND_MODULES.items():
        alone = typer.main.get_command(build_app(name))
        assert set(alone.commands) == {n for n, m in COMMAND_MODULES.items() if m == module}
        assert _shape(alone.commands[name]) == _shape(full.commands[name])
        assert _shape(alone) == _shape(full) | {"commands": _shape(alone)["commands"]}


def _shape(command) -> dict:
    """What a command parses: its options and arguments, and its subcommands' shapes."""
    params = [(p.name, p.opts, p.secondary_opts, p.default, p.required, p.multiple, p.nargs,
               type(p.type).__name__) for p in command.params]
    subcommands = getattr(command, "commands", {})
    return {"help": command.help, "params": params,
            "commands": {name: _shape(sub) for name, sub in subcommands.items()}}


_MODULES_AT_KDF = """
import json, sys
import fogvault.repo.keys as keys
derive = keys.password_key
def spy(*args, **kwargs):
    print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
    return derive(*args, **kwargs)
keys.password_key = spy
from fogvault.cli.app import main
main(sys.argv[1:])
"""


def test_nothing_heavy_is_loaded_before_the_key_is_derived(cli_env, tmp_path, fogvault):
    """Argon2id's 32 MiB come on top of whatever is loaded when it runs: for the commands that
    do little else (check, a backup of unchanged files) that sum is the peak RSS."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "f").write_text("x")
    assert fogvault("init", "-r", "repo").returncode == 0
    for args in (["check"], ["backup", str(source)]):
        done = subprocess.run([sys.executable, "-c", _MODULES_AT_KDF, "-r", "repo", *args],
                              env=cli_env, cwd=tmp_path, capture_output=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr
        (line,) = [x for x in done.stderr.decode().splitlines() if x.startswith("MODULES ")]
        loaded = {_package(m) for m in json.loads(line.removeprefix("MODULES "))}
        assert "nacl" in loaded  # the KDF itself
        assert not loaded & {"blake3", "zstandard", "pyfastcdc", "tqdm", "fsspec", "msgspec"}, args


def _init_kdf(fogvault, tmp_path, name: str, weak: str) -> tuple[int, int]:
    """The (opslimit, memlimit) of the key file ``init`` (no --kdf) makes with the test-only
    weak KDF set to ``weak``."""
    done = fogvault("init", "-r", name, env={common.TESTONLY_WEAK_KDF: weak})
    assert done.returncode == 0, done.stderr
    (key_file,) = (tmp_path / name / "keys").iterdir()
    kdf = json.loads(key_file.read_text())["kdf"]
    return kdf["opslimit"], kdf["memlimit"]


def test_kdf_default_is_standard_everywhere(fogvault, tmp_path):
    """One default for new key files: the CLI's copy of the name agrees with the library's.
    The suite's other tests make key files at libsodium's minimum cost, and only when asked."""
    assert common.DEFAULT_KDF == DEFAULT_KDF == "standard"
    params = KDF_PROFILES[DEFAULT_KDF]
    assert _init_kdf(fogvault, tmp_path, "real", "0") == (params.opslimit, params.memlimit)
    assert _init_kdf(fogvault, tmp_path, "weak", "1") == (KDF_MIN_OPSLIMIT, KDF_MIN_MEMLIMIT)
