"""The command line: a thin Typer shell over the library API (one module per command).

Every command module is imported to build the full app (``--help``, ``--version``, an unknown
command); a command line that names a command builds only that one (``app.COMMAND_MODULES``).
So at its top a command module imports only Typer, the standard library,
``fogvault.cli.common``, other command modules and the small ``fogvault.errors`` and
``fogvault.sizes``; the library it drives (and ``fogvault.cli.progress``) it imports inside the
command's function. Only the command that runs pays for its part of the library: importing all
of it took 0.5 s. tests/cli/test_cli_startup.py checks this.
"""
