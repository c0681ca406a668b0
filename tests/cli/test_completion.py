"""``fogvault completion``: the scripts it prints, and the answers the installed ``fogvault``
gives them.

bash runs for real: the script ``fogvault completion bash`` wrote is sourced in ``bash -c`` and
its completion function called as bash calls it on TAB (COMP_WORDS, COMP_CWORD), with the
entry point installed in the venv first on PATH; COMPREPLY is what bash would offer. zsh and fish
are not installed here: their answers are asked for as their scripts ask (click's protocol), and
only those answers are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from fogvault.cli.app import build_app

BIN = Path(sys.executable).parent  # the venv's bin: python and the installed `fogvault`

# Call the completion function as bash does on TAB: the words typed, the cursor in the last.
_BASH_TAB = """
source "$1"; shift
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
_fogvault_completion fogvault
printf '%s\\n' "${COMPREPLY[@]}"
"""


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    assert (BIN / "fogvault").is_file(), "the fogvault entry point is not installed"
    return {**cli_env, "PATH": f"{BIN}{os.pathsep}{cli_env.get('PATH', '')}"}


@pytest.fixture
def bash_script(env: dict[str, str], tmp_path: Path) -> Path:
    """Installed as the help says: ``fogvault completion bash > FILE``."""
    script = tmp_path / "fogvault.bash"
    with script.open("wb") as out:
        done = subprocess.run(["fogvault", "completion", "bash"], env=env, stdout=out,
                              stderr=subprocess.PIPE, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return script


@pytest.fixture
def tab(bash_script: Path, env: dict[str, str], tmp_path: Path):
    """``tab("fogvault", "key", "")``: what bash offers for the last word (typed so far)."""

    def press(*words: str, cwd: Path = tmp_path) -> list[str]:
        done = subprocess.run(["bash", "--norc", "--noprofile", "-c", _BASH_TAB, "bash",
                               str(bash_script), *words],
                              env=env, cwd=cwd, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0 and not done.stderr, done.stderr
        return [line for line in done.stdout.decode().split("\n") if line]

    return press


def _ask(env: dict[str, str], shell: str, words: str, cword: str) -> subprocess.CompletedProcess:
    """The installed fogvault, asked as ``shell``'s script asks it."""
    return subprocess.run(["fogvault"], capture_output=True, timeout=60, check=False, env={
        **env, "_FOGVAULT_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
        "COMP_CWORD": cword})


def _answer(env: dict[str, str], shell: str, words: str, cword: str) -> list[str]:
    done = _ask(env, shell, words, cword)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout.decode().splitlines()


def _click_command(*path: str):
    command = typer.main.get_command(build_app(path[0] if path else None))
    for name in path:
        command = command.commands[name]
    return command


def _described_subcommands(group: str) -> set[str]:
    """The answer for ``fogvault GROUP <TAB>``: each subcommand with its short help."""
    return {f"plain,{name}\t{command.get_short_help_str()}"
            for name, command in _click_command(group).commands.items()}


def _option_names(*path: str) -> set[str]:
    return {name for param in _click_command(*path).params
            if param.param_type_name == "option" and not param.hidden
            for name in (*param.opts, *param.secondary_opts)}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "b c.txt").write_text("b")
    return folder


# ---------------------------------------------------------------------------------- bash, run


def test_bash_completes_command_names(tab):
    assert tab("fogvault", "ba") == ["backup"]
    assert set(tab("fogvault", "")) == set(_click_command().commands)
    assert tab("fogvault", "-r", "somewhere", "sn") == ["snapshots"]


@pytest.mark.parametrize("group", ["key", "schedule", "config", "target"])
def test_bash_completes_subcommand_names(tab, group):
    assert set(tab("fogvault", group, "")) == set(_click_command(group).commands)


def test_bash_key_subcommands_are_the_four(tab):
    assert sorted(tab("fogvault", "key", "")) == ["add", "list", "passwd", "remove"]


def test_bash_completes_a_commands_options(tab):
    offered = set(tab("fogvault", "backup", "--ex"))
    assert {"--exclude", "--exclude-file", "--exclude-caches"} <= offered
    assert offered == {name for name in _option_names("backup") if name.startswith("--ex")}
    assert set(tab("fogvault", "key", "add", "--")) >= {"--new-password-file", "--kdf"}


def test_bash_offers_the_common_options_after_the_command(tab):
    """app.main accepts them there (split_common_options), so completion offers them."""
    assert {"--repo", "--retry-lock"} <= set(tab("fogvault", "backup", "--re"))
    assert tab("fogvault", "snapshots", "--no-l") == ["--no-lock"]
    assert tab("fogvault", "snapshots", "--ver") == ["--verbose"]  # not --version: not lifted
    assert tab("fogvault", "snapshots", "--json", "--js") == []  # given once already


def test_bash_completes_file_names_for_a_path(tab, files):
    assert sorted(tab("fogvault", "restore", "-r", f"{files}/")) == [
        f"{files}/a.txt", f"{files}/b c.txt", f"{files}/sub"]
    assert sorted(tab("fogvault", "restore", "-r", "", cwd=files)) == ["a.txt", "b c.txt", "sub"]
    assert tab("fogvault", "-r", f"{files}/a") == [f"{files}/a.txt"]
    assert tab("fogvault", "backup", "--exclude-file", f"{files}/b") == [f"{files}/b c.txt"]
    assert sorted(tab("fogvault", "backup", f"{files}/")) == [
        f"{files}/a.txt", f"{files}/b c.txt", f"{files}/sub"]


def test_bash_completes_the_value_after_an_equals_sign(tab, files):
    """bash splits ``--repo=VALUE`` at the "=" (COMP_WORDBREAKS): the words are joined again."""
    assert tab("fogvault", "snapshots", "--repo", "=", f"{files}/a") == [f"{files}/a.txt"]
    assert sorted(tab("fogvault", "dump", "x", "y", "--archive", "=")) == ["tar", "zip"]
    assert tab("fogvault", "dump", "x", "y", "--archive", "=", "z") == ["zip"]


def test_bash_completes_choices_and_nothing_for_numbers(tab):
    assert sorted(tab("fogvault", "dump", "x", "y", "--archive", "")) == ["tar", "zip"]
    assert sorted(tab("fogvault", "completion", "")) == ["bash", "fish", "zsh"]
    assert tab("fogvault", "forget", "--keep-last", "") == []


def test_completing_builds_only_the_command_named(env, tmp_path):
    report = ("import atexit, json, sys\n"
              "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
              "from fogvault.cli.app import main\nmain([])\n")
    done = subprocess.run([sys.executable, "-c", report], capture_output=True, timeout=60,
                          cwd=tmp_path, check=False, env={
                              **env, "_FOGVAULT_COMPLETE": "bash_complete",
                              "COMP_WORDS": "fogvault key ", "COMP_CWORD": "2"})
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stderr.decode().splitlines()[-1]))
    assert {m for m in loaded if m.endswith("_cmd")} == {"fogvault.cli.key_cmd",
                                                         "fogvault.cli.completion_cmd"}
    assert not [m for m in loaded if m.startswith("fogvault.repo")]
    assert set(done.stdout.decode().splitlines()) == _described_subcommands("key")


# ------------------------------------------------------- zsh and fish: their answers, asked


def test_zsh_answers(env, files):
    """A value, a tab and its description; a file name to complete, without."""
    assert set(_answer(env, "zsh", "fogvault key ", "2")) == _described_subcommands("key")
    assert _answer(env, "zsh", "fogvault ba", "1") == [
        f"plain,backup\t{_click_command('backup').get_short_help_str()}"]
    assert {"plain,--exclude\tSkip paths matching this.", "plain,--repo\tTarget URL or path "
            "(repeatable; env FOGVAULT_REPO, comma-separated)."} <= set(
        _answer(env, "zsh", "fogvault backup --", "2"))
    assert _answer(env, "zsh", f"fogvault restore -r {files}/a", "3") == [f"file,{files}/a"]
    assert _answer(env, "zsh", "fogvault restore --repo=", "2") == ["file,"]
    assert _answer(env, "zsh", "fogvault dump x y --archive=t", "4") == ["plain,tar"]
    assert _answer(env, "zsh", "fogvault forget --keep-last ", "3") == []


def test_fish_answers(env, files):
    """fish sends the line up to the cursor, and the word at the cursor as typed."""
    assert _answer(env, "fish", "fogvault key ", "") == _answer(env, "zsh", "fogvault key ", "2")
    assert [line.partition("\t")[0] for line in _answer(env, "fish", "fogvault sn", "sn")] == [
        "plain,snapshots"]
    assert _answer(env, "fish", f"fogvault backup -r '{files}/b c", f"'{files}/b c") == [
        f"file,{files}/b c"]
    assert _answer(env, "fish", "fogvault dump x y --archive=", "--archive=") == [
        "plain,tar", "plain,zip"]
    assert _answer(env, "fish", "fogvault completion f", "f") == ["plain,fish"]


def test_zsh_and_fish_scripts_ask_as_tested(env):
    """The protocol the tests above speak is the one the scripts use."""
    zsh = subprocess.run(["fogvault", "completion", "zsh"], env=env, capture_output=True,
                         timeout=60, check=True).stdout.decode()
    assert zsh.startswith("#compdef fogvault\n")  # autoloaded from $fpath as _fogvault
    assert 'COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT - 1))' in zsh
    assert "_FOGVAULT_COMPLETE=zsh_complete" in zsh
    assert "compdef _fogvault fogvault" in zsh
    fish = subprocess.run(["fogvault", "completion", "fish"], env=env, capture_output=True,
                          timeout=60, check=True).stdout.decode()
    assert 'COMP_WORDS="$line" COMP_CWORD="$token"' in fish
    assert "_FOGVAULT_COMPLETE=fish_complete" in fish
    assert "complete -c fogvault -n __fogvault_ask -f -a '$__fogvault_values'" in fish


# ------------------------------------------------------------------------------ failures


def test_a_failing_completion_prints_nothing(env):
    """Whatever it printed would land in the command line being typed: no traceback, no
    message, no completions."""
    for shell, words, cword in [("bash", "fogvault ba", "not a number"),
                                ("bash", "fogvault ba", "0"),
                                ("tcsh", "fogvault ba", "1"),
                                ("complete", "fogvault ba", "1")]:  # Typer's own order
        done = _ask(env, shell, words, cword)
        assert (done.returncode, done.stdout, done.stderr) == (1, b"", b""), shell
    done = subprocess.run(["fogvault"], env={**env, "_FOGVAULT_COMPLETE": "bash_complete"},
                          capture_output=True, timeout=60, check=False)  # no COMP_WORDS
    assert (done.returncode, done.stdout, done.stderr) == (1, b"", b"")


def test_version_given_before_the_cursor_prints_nothing_into_the_answer(env):
    """--version's callback prints as click parses the words: that never reaches the shell."""
    assert _answer(env, "bash", "fogvault --version ba", "2") == _answer(
        env, "bash", "fogvault ba", "1")


def test_unknown_shell_is_a_one_line_usage_error(fogvault):
    done = fogvault("completion", "tcsh")
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.decode() == "error: unknown shell 'tcsh': choose bash, zsh or fish\n"


def test_repository_options_are_refused(fogvault):
    done = fogvault("completion", "bash", "-r", "somewhere")
    assert done.returncode == 2
    assert "-r/--repo cannot be used with 'fogvault completion'" in done.stderr.decode()


def test_help_says_how_to_install_for_each_shell(fogvault):
    done = fogvault("completion", "--help", env={"COLUMNS": "200"})
    assert done.returncode == 0
    text = done.stdout.decode()
    for line in ("fogvault completion bash > $d/fogvault", "source <(fogvault completion bash)",
                 "fogvault completion zsh > ~/.zfunc/_fogvault", "fpath=(~/.zfunc $fpath)",
                 "fogvault completion fish > ~/.config/fish/completions/fogvault.fish"):
        assert line in text
