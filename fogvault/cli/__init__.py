"""The command line: a thin Typer shell over the library API (one module per command)."""
