"""What every command shares: the common options, opening the repository, printing.

:func:`open_repository` also keeps the targets' ledger (``fogvault.targets.ledger``: known
damage, missed deletions, the last operation's requests) and, when a command that succeeded
left a target without some of its changes (dropped, unreachable, or behind), ends the command
with exit 3 and a warning naming the target, once the command has printed its report.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fogvault.cli import streams
from fogvault.errors import (
    FogVaultError,
    PartialSuccess,
    TargetsBehind,
    UsageError,
    prefix_message,
)
from fogvault.sizes import counted
from fogvault.text import printable

if TYPE_CHECKING:
    from fogvault.crypto import KdfParams
    from fogvault.password import PasswordSource
    from fogvault.repo.repository import Repository
    from fogvault.repo.snapshot import Snapshot
    from fogvault.targets import TargetPolicy

log = logging.getLogger("fogvault")

# The default of --kdf: fogvault.crypto.DEFAULT_KDF, named here because importing
# fogvault.crypto loads libsodium, which commands that open no repository do not need (a test
# checks that the two agree).
DEFAULT_KDF = "standard"
KdfOption = Annotated[
    str, typer.Option(help="Argon2id cost: standard (32 MiB), interactive (64 MiB), "
                      "moderate (256 MiB) or sensitive (1 GiB).")
]
# For FogVault's own test suite only, as borg's BORG_TESTONLY_WEAKEN_KDF: new key files get
# libsodium's minimum cost, so that a password protects nothing. Every command derives a key,
# and at the real cost that was a quarter of the suite's time (docs/security.md).
TESTONLY_WEAK_KDF = "FOGVAULT_TESTONLY_WEAK_KDF"


def kdf_params(profile: str) -> KdfParams:
    """The Argon2id cost of a new key file made with ``--kdf profile``."""
    from fogvault.crypto import KDF_MIN_MEMLIMIT, KDF_MIN_OPSLIMIT, KDF_PROFILES, KdfParams

    if profile not in KDF_PROFILES:
        raise UsageError(f"--kdf must be one of {', '.join(KDF_PROFILES)}")
    if os.environ.get(TESTONLY_WEAK_KDF) == "1":
        return KdfParams(KDF_MIN_OPSLIMIT, KDF_MIN_MEMLIMIT)
    return KDF_PROFILES[profile]


# Options several commands share, declared once.
HostFilter = Annotated[str | None, typer.Option("--host", "-H",
                                                help="Only this host's snapshots.")]
TagFilter = Annotated[list[str] | None, typer.Option("--tag", help="Only with this tag.")]
PathFilter = Annotated[list[str] | None, typer.Option("--path", help="Only with this path.")]
#: how a snapshot is named where one is read (ls, dump, restore, diff)
SNAPSHOT_REF = "Snapshot uid (prefix) or 'latest'; ':FOLDER' after it makes that folder the root."
# The same filters where they only choose which snapshot 'latest' means (restic's).
LatestHost = Annotated[str | None, typer.Option(
    "--host", "-H", help="'latest': the latest of this host's snapshots.")]
LatestTag = Annotated[list[str] | None, typer.Option(
    "--tag", help="'latest': the latest with this tag.")]
LatestPath = Annotated[list[str] | None, typer.Option(
    "--path", help="'latest': the latest with this path.")]
ExcludeFileOption = Annotated[
    list[str] | None, typer.Option("--exclude-file", help="Read patterns from this file.")]
IExcludeOption = Annotated[
    list[str] | None, typer.Option("--iexclude", help="As --exclude, ignoring case.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", "-n", help="Only show.")]
# The source repository of copy and init --from-repo, named as restic names it.
FromRepoOption = Annotated[list[str] | None, typer.Option(
    "--from-repo", help="Source repository: a target URL or path (repeatable; env "
    "FOGVAULT_FROM_REPO, comma-separated).")]
FromPasswordFileOption = Annotated[str | None, typer.Option(
    "--from-password-file", help="Read the source repository's password from this file "
    "(env FOGVAULT_FROM_PASSWORD_FILE).")]
FromPasswordCommandOption = Annotated[str | None, typer.Option(
    "--from-password-command", help="Run this command and read the source repository's "
    "password from its output (env FOGVAULT_FROM_PASSWORD_COMMAND).")]


@dataclass(slots=True)
class GlobalOptions:
    repos: list[str] = field(default_factory=list)
    password_file: str | None = None
    password_command: str | None = None
    json: bool = False
    quiet: bool = False
    verbose: int = 0
    cache_dir: str | None = None
    no_cache: bool = False
    no_lock: bool = False
    retry_lock: float = 0.0
    min_targets: int | None = None
    limit_upload: int | None = None  # KiB/s; None: FOGVAULT_LIMIT_UPLOAD's, 0: none
    limit_download: int | None = None

    def target_policy(self, min_targets: int | None = None) -> TargetPolicy:
        """Retries and concurrency from the environment; ``--min-targets`` (unless
        ``min_targets`` is given) and the bandwidth limits from the options, else from the
        environment."""
        from fogvault.targets import TargetPolicy

        return TargetPolicy.from_env(min_targets=min_targets or self.min_targets,
                                     limit_upload=self.limit_upload,
                                     limit_download=self.limit_download)

    def repo_urls(self) -> list[str]:
        return urls_given(self.repos, "FOGVAULT_REPO")

    def password_source(self) -> PasswordSource:
        from fogvault.password import PasswordSource

        return PasswordSource.from_env(self.password_file, self.password_command)

    def cache_path(self) -> Path | None:
        return Path(self.cache_dir).expanduser() if self.cache_dir else None


def urls_given(given: list[str] | None, variable: str) -> list[str]:
    """The targets given on the command line (``-r``, ``--from-repo``), else those of the
    environment variable ``variable`` (comma-separated)."""
    if given:
        return given
    return [u.strip() for u in os.environ.get(variable, "").split(",") if u.strip()]


def options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


@dataclass(frozen=True, slots=True)
class SourceRepository:
    """The repository that ``copy`` and ``init --from-repo`` read from: restic's
    ``--from-repo`` (``FOGVAULT_FROM_REPO``) with its own password sources
    (``--from-password-file``, ``FOGVAULT_FROM_PASSWORD*``: ``password.SOURCE_PASSWORD``)."""

    urls: list[str]
    password: PasswordSource

    @classmethod
    def given(cls, ctx: typer.Context, repos: list[str] | None, password_file: str | None,
              password_command: str | None) -> SourceRepository:
        """From the options (else the environment); a usage error if no source is named, or
        if a source target is one of the repository's (-r) own."""
        from fogvault.password import SOURCE_PASSWORD, PasswordSource
        from fogvault.storage.identity import target_identity

        urls = urls_given(repos, "FOGVAULT_FROM_REPO")
        if not urls:
            raise UsageError("no source repository given (use --from-repo or FOGVAULT_FROM_REPO)")
        ours = {target_identity(url): url for url in options(ctx).repo_urls()}
        for url in urls:
            if (same := ours.get(target_identity(url))) is not None:
                raise UsageError(f"the source {url!r} and the repository {same!r} are the same "
                                 "target: give another repository with --from-repo")
        return cls(urls, PasswordSource.from_env(password_file, password_command,
                                                 SOURCE_PASSWORD))

    def read_password(self) -> bytes:
        """The source's password. A password command that fails says it is the source's (the
        errors of a missing password or password file say so themselves)."""
        try:
            return self.password.read()
        except UsageError:
            raise
        except FogVaultError as exc:
            self.about(exc)
            raise

    def about(self, error: FogVaultError) -> None:
        """Make ``error``'s message say that it is about the source (class and exit code
        kept). A source with no repository gets no advice to create one there: the source is
        to be copied from, so its address is what to check."""
        from fogvault.errors import NoRepository

        if isinstance(error, NoRepository):
            error.args = ("no repository there: check the --from-repo address (or "
                          "FOGVAULT_FROM_REPO)",)
        prefix_message(error, f"source repository {', '.join(self.urls)}: ")


@contextlib.contextmanager
def open_repository(
    ctx: typer.Context, *, load_index: bool = True, extra_urls: tuple[str, ...] = (),
    drop_empty_targets: bool = False, source: SourceRepository | None = None,
) -> Iterator[Repository]:
    """Open the repository on the common options' targets (plus ``extra_urls``), or with
    ``source`` the source repository of ``copy`` (its errors say so, and ``--min-targets`` is
    the other repository's); see ``Repository.open`` for ``drop_empty_targets``, which the
    commands that only read set: a target without a repository (a disk not mounted) is then
    left out with a warning, as an unreachable one, since nothing will be written into it."""
    from fogvault.heap import use_one_malloc_arena
    from fogvault.repo.repository import Repository
    from fogvault.targets.ledger import Ledger

    use_one_malloc_arena()  # before the index loaders' threads make arenas (heap.py)
    opts = options(ctx)
    password = opts.password_source().read() if source is None else source.read_password()
    try:
        repo = Repository.open(
            [*opts.repo_urls(), *extra_urls] if source is None else source.urls,
            password,
            cache_dir=opts.cache_path(),
            use_cache=not opts.no_cache,
            load_index=load_index,
            # a source is only read, and reads fall back to its other targets: one is enough
            # (its downloads share the process's limit with the destination's)
            policy=opts.target_policy(min_targets=1 if source is not None else None),
            drop_empty_targets=drop_empty_targets,
        )
    except FogVaultError as exc:
        if source is not None:
            source.about(exc)
        raise
    repo.use_locks = not opts.no_lock
    repo.lock_wait = opts.retry_lock
    ledger = Ledger(repo.config.repo_id)
    ledger.seed(repo.targets)
    finished = False
    try:
        yield repo
        finished = True
    finally:
        ledger.save(repo.targets, ctx.command_path.partition(" ")[2] or str(ctx.info_name))
        repo.close()
    missed = repo.targets.missed_changes()
    unreadable = sorted(repo.unreadable_snapshots)
    if finished and (missed or unreadable):
        ctx.find_root().call_on_close(lambda: _report_partial(missed, unreadable))


def _report_partial(missed: dict[str, str], unreadable: list[str]) -> None:
    """Runs when the command is done: exit 3 naming the targets that missed changes and the
    snapshots left out because they could not be read, unless it is failing anyway."""
    parts = []
    if missed:
        parts.append("; ".join(f"{url} {why}" for url, why in missed.items())
                     + ". Run 'fogvault repair' once the target is reachable")
    if unreadable:
        shown = ", ".join(unreadable[:3]) + (", ..." if len(unreadable) > 3 else "")
        parts.append(f"{counted(len(unreadable), 'snapshot')} could not be read and "
                     f"{'was' if len(unreadable) == 1 else 'were'} left out ({shown}): "
                     "'fogvault check' tells more")
    text = "; ".join(parts)
    if sys.exc_info()[0] is not None:
        log.warning("%s", text)
        return
    raise (TargetsBehind if missed else PartialSuccess)(text)


class Printer:
    """Text and JSON to stdout, messages to stderr. Under -q, as under restic's, a listing's
    result (:meth:`result`) is still printed; reports of what a command did, counts and hints
    (:meth:`line`) are not, so that cron mails only failures. JSON is printed either way."""

    def __init__(self, opts: GlobalOptions) -> None:
        self.opts = opts

    @classmethod
    def of(cls, ctx: typer.Context) -> Printer:
        return cls(options(ctx))

    @property
    def json_mode(self) -> bool:
        return self.opts.json

    def line(self, text: str = "") -> None:
        """A line of a report or a note: nothing under -q."""
        if not self.opts.quiet and not self.opts.json:
            print(text)

    def result(self, text: str = "") -> None:
        """A line of what a listing command was asked for (a table, entries, sizes): printed
        under -q too, which would otherwise leave it with nothing to say."""
        if not self.opts.json:
            print(text)

    def entry(self, text: str) -> None:
        """A :meth:`result` line that is one entry of a listing: the listing stops once stdout
        cannot be written (see streams)."""
        self.result(text)
        streams.listing_line()

    def problem(self, text: str) -> None:
        """A line of a text report that tells what failed: with the report on stdout, or on
        stderr under -q, which silences reports but not errors (JSON reports hold it)."""
        if not self.opts.json:
            print(text, file=sys.stderr if self.opts.quiet else sys.stdout)

    def json(self, document: Any) -> None:
        print(json.dumps(document, indent=None if self.opts.quiet else 2, default=str))

    def json_line(self, document: Any) -> None:
        print(json.dumps(document, separators=(",", ":"), default=str), flush=True)

    def json_streamed(self, document: Any) -> None:
        """:meth:`json` written as it is encoded, for a document whose long lists are
        :func:`lazy_list`: a listing of a million entries is never held whole."""
        encoder = json.JSONEncoder(indent=None if self.opts.quiet else 2, default=_streamed_value)
        tokens = encoder.iterencode(document)
        while piece := "".join(itertools.islice(tokens, 4096)):  # joined in C, as json.dumps
            sys.stdout.write(piece)
            streams.listing_line()
        sys.stdout.write("\n")


class _LazyList(list):
    """Items the json module encodes one at a time as a list. Its encoder iterates a list with
    ``for``, in the pure-Python path that ``iterencode`` takes (the C one is used only for
    one-shot encoding), so this never holds more than the item being encoded."""

    def __init__(self, items: Iterator[Any]) -> None:
        super().__init__()
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        return self._items

    def __bool__(self) -> bool:
        return True  # never empty: lazy_list returns a plain [] for no items


class Deferred:
    """A value of a streamed document computed when the encoder reaches it, i.e. after the
    lazy lists before it were written (totals of a listing)."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute


def _streamed_value(value: Any) -> Any:
    return value.compute() if isinstance(value, Deferred) else str(value)


def lazy_list(items: Iterable[Any]) -> list:
    """``items`` as a list produced as it is iterated (for :meth:`Printer.json_streamed`, as it
    is encoded): ``[]`` if there are none, so its truth tells whether there are any."""
    iterator = iter(items)
    for first in iterator:
        return _LazyList(itertools.chain([first], iterator))
    return []



def table(rows: list[list[str]], headers: list[str]) -> str:
    """Aligned columns; control characters in a cell are shown escaped (``\\n``, ``\\x1b``):
    a host name or tag from a snapshot must neither break the table nor reach the terminal
    as an escape sequence."""
    cells = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in [headers, *cells]) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def warning_line(message: str) -> str:
    """A warning as printed: one line, whatever file name it holds."""
    return f"warning: {printable(message)}"


class _LowercaseLevel(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        # the message on one line (a file name may hold a newline); a traceback (-vv) stays
        record.msg, record.args = printable(record.getMessage()), None
        return super().format(record)


def setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowercaseLevel("%(levelname)s: %(message)s"))
    logger = logging.getLogger("fogvault")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)


@dataclass(frozen=True)
class RefusedOption:
    """A common option that a command cannot honour: ``name`` as the error names it, the
    parameters of the app's callback (``app.main_options``) that give it, and why."""

    name: str
    params: tuple[str, ...]
    why: str


def refuse_options(ctx: typer.Context, refused: tuple[RefusedOption, ...]) -> None:
    """A refused common option given on the command line (wherever: ``app`` lifts them in
    front of the command) is a usage error (exit 2) naming it and the command, never silently
    ignored."""
    root = ctx.find_root()
    for option in refused:
        if any(_given(root, param) for param in option.params):
            raise UsageError(f"{option.name} cannot be used with '{ctx.command_path}': "
                             f"{option.why}")


def _given(root: typer.Context, param: str) -> bool:
    """Whether the app's callback got ``param`` from the command line, whatever its value (the
    source is a ParameterSource of Typer's click, which Typer does not export)."""
    source = root.get_parameter_source(param)
    return source is not None and source.name != "DEFAULT"


def load_snapshot_ref(repo: Repository, ref: str, *, host: str | None = None,
                      tags: list[str] | None = None, paths: list[str] | None = None) -> Snapshot:
    """The snapshot ``ref`` names as restic names one: a uid (or unique prefix) or ``latest``
    (of the snapshots the filters select), optionally followed by ``:FOLDER``, which makes that
    folder the snapshot's root (:func:`fogvault.treewalk.subfolder`)."""
    from fogvault.treewalk import subfolder

    name, _, folder = ref.partition(":")
    snapshot = repo.load_snapshot(repo.resolve_snapshot(name, host=host, tags=tags or [],
                                                        paths=paths or []))
    if not folder:
        return snapshot
    repo.load_index()  # to read trees; a command that loads it again under its lock adds only
    return subfolder(repo, snapshot, os.fsencode(folder))  # what was written since
