"""``fogvault key list|add|remove|passwd``: manage the passwords that open a repository."""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import (
    DEFAULT_KDF,
    KdfOption,
    Printer,
    kdf_params,
    open_repository,
    table,
)

key_app = typer.Typer(help="Manage keys (passwords) of a repository.", no_args_is_help=True)

NewPasswordFile = Annotated[
    str | None, typer.Option("--new-password-file", help="Read the new password from this file.")
]


def register(app: typer.Typer) -> None:
    app.add_typer(key_app, name="key")


def _new_password(path: str | None) -> bytes:
    from fogvault.password import prompt_password, read_password_file

    if path:
        return read_password_file(path)
    return prompt_password(confirm=True, label="new password",
                           sources="use --new-password-file (or run on a terminal)")


@key_app.command("list")
def key_list(ctx: typer.Context) -> None:
    """List the key files; * marks the one in use."""
    out = Printer.of(ctx)
    with open_repository(ctx, load_index=False) as repo:
        keys = [dict(k.describe(), current=k.key_id == repo.key_id) for k in repo.key_files()]
    if out.json_mode:
        out.json(keys)
        return
    rows = [["*" if k["current"] else " ", k["id"], k["user"], k["host"], k["created"]]
            for k in keys]
    out.result(table(rows, [" ", "ID", "User", "Host", "Created"]))


@key_app.command("add")
def key_add(
    ctx: typer.Context, new_password_file: NewPasswordFile = None, kdf: KdfOption = DEFAULT_KDF
) -> None:
    """Add a key: another password that opens the repository."""
    out = Printer.of(ctx)
    with open_repository(ctx, load_index=False) as repo:
        key = repo.add_key(_new_password(new_password_file), kdf_params(kdf))
    out.json({"id": key.key_id}) if out.json_mode else out.line(f"added key {key.key_id}")


@key_app.command("remove")
def key_remove(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id or a unique prefix of it.")],
) -> None:
    """Remove a key (not the one in use, and never the last)."""
    out = Printer.of(ctx)
    with open_repository(ctx, load_index=False) as repo:
        removed = repo.remove_key(key_id)
    out.json({"removed": removed}) if out.json_mode else out.line(f"removed key {removed}")


@key_app.command("passwd")
def key_passwd(
    ctx: typer.Context, new_password_file: NewPasswordFile = None, kdf: KdfOption = DEFAULT_KDF
) -> None:
    """Change the password of the key in use."""
    out = Printer.of(ctx)
    with open_repository(ctx, load_index=False) as repo:
        key = repo.change_password(_new_password(new_password_file), kdf_params(kdf))
    out.json({"id": key.key_id}) if out.json_mode else out.line(
        f"password changed (new key {key.key_id})"
    )
