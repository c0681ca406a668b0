"""The command line: a thin Typer shell over the library API (one module per command).

A command line whose first argument after the common options names a command builds an app of
that command alone (``app.COMMAND_MODULES``); any other (``--help``, ``--version``, an unknown
command, combined short options) imports every command module to build the full app.
So at its top a command module imports only Typer, the standard library,
``fogvault.cli.common``, other command modules and the small ``fogvault.errors`` and
``fogvault.sizes``; the library it drives (and ``fogvault.cli.progress``) it imports inside the
command's function. Only the command that runs pays for its part of the library: importing all
of it took 0.5 s. tests/cli/test_cli_startup.py checks this.
"""
