"""``python -m fogvault``: the command line, taking the interrupting signals before it loads
anything else (``fogvault.cli.signals``: loading the CLI and Typer takes about 0.1 s, during
which a signal killed the process with no word)."""

from fogvault.cli import signals


def main() -> None:
    """The ``fogvault`` command, usable as its entry point."""
    signals.install()
    from fogvault.cli.app import main as run_cli

    run_cli()


if __name__ == "__main__":
    main()
