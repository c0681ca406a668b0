"""``fogvault completion SHELL``: shell completion for bash, zsh and fish (restic's ``generate
--bash-completion``), and the answer to the script it prints.

The script asks ``fogvault`` itself on every TAB, so it never goes out of date: it runs
``_FOGVAULT_COMPLETE=SHELL_complete fogvault`` with the words typed in ``COMP_WORDS`` and
``COMP_CWORD`` (click's protocol: for bash and zsh the words and the index of the one being
completed, for fish the line up to the cursor and that word). ``app.main`` hands such a run to
:func:`complete`, which answers with click's own completion (``ShellComplete.get_completions``
finds the command or parameter the words lead to and asks it), one ``TYPE,VALUE`` line a
candidate (a tab and a description after it where there is one): ``plain``, a value to offer as
it is; ``file``, a file name starting with VALUE, which the shell lists itself.

What click cannot know about FogVault, :func:`complete` tells it:

- the common options are accepted after the command name too: they are moved in front of it, as
  ``app.main`` moves them, and their names are offered with the command's own;
- ``app.main`` builds only the command it runs: the completion builds the command named in the
  words typed, or every command while the command name itself is being typed;
- a free-text value (every ``str`` parameter: a path, a URL, a pattern, a tag) completes as a
  file name, as restic's completion (cobra's) does for any value it knows nothing about. Numbers
  complete to nothing; choices to their values.

A failure gives no completions and prints nothing: whatever it printed would land in the
command line the user is typing.

Typer's own completion (``--install-completion``, off: ``add_completion=False``) is not used: its
scripts speak Typer's variant of the protocol (``complete_bash``, ``_TYPER_COMPLETE_ARGS``) and
its answers carry no type, so a file name is offered only where nothing else is.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
import typer.main
from typer._click import Command, Context, Parameter, types  # Typer's own copy of click 8.3
from typer._click.shell_completion import CompletionItem, ShellComplete, split_arg_string

from fogvault.cli.app import _FLAGS, _WITH_VALUE, build_app, split_common_options
from fogvault.cli.common import RefusedOption, refuse_options
from fogvault.errors import UsageError

PROGRAM = "fogvault"
#: The options app.main accepts after the command name (not --help, not --version)
_COMMON_OPTIONS = _WITH_VALUE | _FLAGS
#: The variable a completion script sets to ``SHELL_complete`` (the name Typer gives it too)
COMPLETE_VAR = "_FOGVAULT_COMPLETE"

_BASH_SCRIPT = r"""# bash completion for fogvault (see `fogvault completion --help`)
_fogvault_completion() {
    local IFS=$'\n' line value
    local -a lines
    COMPREPLY=()
    mapfile -t lines < <(COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD \
                         _FOGVAULT_COMPLETE=bash_complete "$1" 2>/dev/null)
    for line in "${lines[@]}"; do
        value=${line#*,}
        value=${value%%$'\t'*}
        case ${line%%,*} in
            plain) COMPREPLY+=("$value") ;;
            file)
                compopt -o filenames 2>/dev/null  # quote names, mark folders with a /
                mapfile -t -O ${#COMPREPLY[@]} COMPREPLY < <(compgen -f -- "$value") ;;
        esac
    done
}
complete -F _fogvault_completion fogvault
"""

_ZSH_SCRIPT = r"""#compdef fogvault
# zsh completion for fogvault (see `fogvault completion --help`)
_fogvault() {
    local line value
    local -a lines values shown
    lines=("${(@f)$(COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT - 1)) \
                    _FOGVAULT_COMPLETE=zsh_complete $words[1] 2>/dev/null)}")
    [[ $PREFIX == -*=* ]] && compset -P '*='  # --option=VALUE: complete the value
    for line in $lines; do
        value=${${line#*,}%%$'\t'*}
        case ${line%%,*} in
            plain)
                values+=("$value")
                if [[ $line == *$'\t'* ]]; then
                    shown+=("$value  -- ${line#*$'\t'}")
                else
                    shown+=("$value")
                fi ;;
            file) _files ;;
        esac
    done
    (( $#values )) && compadd -l -d shown -a values
}
if [[ $funcstack[1] == _fogvault ]]; then
    _fogvault "$@"  # loaded from $fpath by compinit: this call is a completion
else
    compdef _fogvault fogvault  # sourced: register for later
fi
"""

# One call of fogvault a TAB: the rule's condition asks it, and is false where a file name is
# wanted, leaving the word to fish's own file completion.
_FISH_SCRIPT = r"""# fish completion for fogvault (see `fogvault completion --help`)
function __fogvault_ask
    set -g __fogvault_values
    set -l files no
    set -l line (commandline -cp)
    set -l token (commandline -ct)
    set -l option (string replace -r -- '^(-[^=]*=)?.*' '$1' "$token")  # --option=VALUE
    for answer in (env COMP_WORDS="$line" COMP_CWORD="$token" \
                       _FOGVAULT_COMPLETE=fish_complete fogvault 2>/dev/null)
        set -l kind_value (string split -m 1 , -- $answer)
        switch $kind_value[1]
            case plain
                set -a __fogvault_values $option$kind_value[2]
            case file
                set files yes
        end
    end
    test $files = no
end
complete -c fogvault -n __fogvault_ask -f -a '$__fogvault_values'
"""


class _FogVaultComplete(ShellComplete):
    """FogVault's command line as click completes it; the subclasses read what each shell's
    script sends. The answer, one line a candidate, is the same for every shell."""

    @classmethod
    def words(cls) -> tuple[list[str], str]:
        """(The words typed before the one being completed, without the program's name; that
        word), from the environment the script set."""
        raise NotImplementedError

    def source_vars(self) -> dict[str, Any]:
        return {}

    def source(self) -> str:
        return self.source_template  # it names fogvault and its variable itself: no % fields

    def get_completion_args(self) -> tuple[list[str], str]:
        return self.words()

    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        """click's completions, where the common options go in front of the command (as
        ``app.main`` puts them) and are the command's options too."""
        name, equals, value = incomplete.partition("=")
        if equals and name in _WITH_VALUE:  # --repo=VALUE is --repo VALUE
            args, incomplete = [*args, name], value
        common, rest = split_common_options(args)
        if rest and rest[-1] in _WITH_VALUE and "--" not in rest:
            # a common option's value, after the command: the app's to complete
            return super().get_completions([*common, rest[-1]], incomplete)
        items = super().get_completions([*common, *rest], incomplete)
        if rest and incomplete.startswith("-") and not equals:
            # an option's name after the command: the common options' names too
            items += [i for i in super().get_completions(common, incomplete)
                      if i.value in _COMMON_OPTIONS]
        return items

    def format_completion(self, item: CompletionItem) -> str:
        line = f"{item.type},{item.value}"
        return f"{line}\t{' '.join(item.help.split())}" if item.help else line


class _WordsAndIndex(_FogVaultComplete):
    """bash and zsh send the words and the index of the one being completed."""

    @classmethod
    def words(cls) -> tuple[list[str], str]:
        words = split_arg_string(os.environ["COMP_WORDS"])
        index = int(os.environ["COMP_CWORD"])
        typed = _join_option_values([*words, ""][1:index + 1])
        return typed[:-1], typed[-1]


def _join_option_values(words: list[str]) -> list[str]:
    """``--option=VALUE`` whole again: bash splits it into ``--option``, ``=``, ``VALUE``
    (``=`` is in its COMP_WORDBREAKS)."""
    joined: list[str] = []
    glue = False  # the word before was an option's "=": this one is its value
    for word in words:
        if glue or (word == "=" and joined and joined[-1].startswith("-")):
            joined[-1] += word
            glue = not glue and word == "="
        else:
            joined.append(word)
    return joined


class BashComplete(_WordsAndIndex):
    name = "bash"
    source_template = _BASH_SCRIPT


class ZshComplete(_WordsAndIndex):
    name = "zsh"
    source_template = _ZSH_SCRIPT


class FishComplete(_FogVaultComplete):
    """fish sends the line up to the cursor and, apart, the word being completed (as typed,
    quotes and all); the line ends with that word."""

    name = "fish"
    source_template = _FISH_SCRIPT

    @classmethod
    def words(cls) -> tuple[list[str], str]:
        words = split_arg_string(os.environ["COMP_WORDS"])[1:]
        typed = os.environ.get("COMP_CWORD", "")
        incomplete = split_arg_string(typed)[0] if typed else ""
        if incomplete and words and words[-1] == incomplete:
            words.pop()
        return words, incomplete


SHELLS: dict[str, type[_FogVaultComplete]] = {
    shell.name: shell for shell in (BashComplete, ZshComplete, FishComplete)}


class _FileName(types.StringParamType):
    """A free-text value, completed as a file name (click's Path type does the same)."""

    def shell_complete(self, ctx: Context, param: Parameter,
                       incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(incomplete, type="file")]


_FILE_NAME = _FileName()


def _complete_text_as_file_names(command: Command) -> None:
    for param in command.params:
        if isinstance(param.type, types.StringParamType):
            param.type = _FILE_NAME
    for sub in getattr(command, "commands", {}).values():
        _complete_text_as_file_names(sub)


def _command_for(args: list[str]) -> Command:
    """The app as click sees it, with the command the words name (every command while none is
    named yet)."""
    _, rest = split_common_options(args)
    command = typer.main.get_command(build_app(rest[0] if rest else None))
    _complete_text_as_file_names(command)
    return command


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Nothing printed while click parses the words (an option's callback, such as
    --version's, may print) reaches the shell's answer or its screen."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def complete(instruction: str) -> int:
    """Answer a completion script (``instruction`` is ``_FOGVAULT_COMPLETE``'s value,
    ``SHELL_complete``): print the candidates; the exit status."""
    shell_name, _, action = instruction.partition("_")
    shell = SHELLS.get(shell_name)
    if shell is None or action != "complete":
        return 1
    try:
        with _silenced():
            args, _ = shell.words()
            answer = shell(_command_for(args), {}, PROGRAM, COMPLETE_VAR).complete()
    except Exception:  # no completions: see the module's docstring
        return 1
    if answer:
        print(answer)
    return 0


def _shell_names() -> list[str]:
    return list(SHELLS)


_NO_REPOSITORY = "it prints a script and opens no repository"
#: what ``completion`` would ignore
COMPLETION_REFUSES = tuple(
    RefusedOption(name, params, _NO_REPOSITORY) for name, params in (
        ("-r/--repo", ("repo",)),
        ("--password-file/--password-command", ("password_file", "password_command")),
        ("--min-targets", ("min_targets",)),
        ("--no-lock/--retry-lock", ("no_lock", "retry_lock")),
        ("--cache-dir/--no-cache", ("cache_dir", "no_cache")),
    ))


def register(app: typer.Typer) -> None:
    app.command("completion")(completion)


def completion(
    ctx: typer.Context,
    shell: Annotated[str, typer.Argument(help="bash, zsh or fish.", metavar="SHELL",
                                         autocompletion=_shell_names, show_default=False)],
) -> None:
    """Print the shell completion script for bash, zsh or fish: it completes commands,
    subcommands, options, choices and file names.

    Install it once: it asks fogvault what to complete, so it stays up to date.
    It takes effect in shells started afterwards.

    bash, with the bash-completion package:

        d=~/.local/share/bash-completion/completions
        mkdir -p $d && fogvault completion bash > $d/fogvault

    bash without it, a line in ~/.bashrc:

        source <(fogvault completion bash)

    zsh, with fpath=(~/.zfunc $fpath) in ~/.zshrc before compinit runs:

        mkdir -p ~/.zfunc && fogvault completion zsh > ~/.zfunc/_fogvault

    fish:

        fogvault completion fish > ~/.config/fish/completions/fogvault.fish"""
    refuse_options(ctx, COMPLETION_REFUSES)
    chosen = SHELLS.get(shell)
    if chosen is None:
        raise UsageError(f"unknown shell {shell!r}: choose bash, zsh or fish")
    sys.stdout.write(chosen(ctx.find_root().command, {}, PROGRAM, COMPLETE_VAR).source())
