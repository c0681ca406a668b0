"""``fogvault daemon``: run every scheduled job in the foreground until SIGTERM.

Exit code 0 when stopped between jobs, 130 when a signal interrupted a running job.
"""

from __future__ import annotations

import signal
from types import FrameType

import typer

from fogvault.cli.common import refuse_options
from fogvault.cli.jobs_common import JOB_REFUSES, ConfigOption, load, run_options
from fogvault.errors import EXIT_INTERRUPTED


def register(app: typer.Typer) -> None:
    app.command("daemon")(daemon)


def daemon(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Run all jobs on their schedules (for containers and machines without systemd)."""
    from fogvault import interrupts
    from fogvault.jobs.daemon import Daemon

    refuse_options(ctx, JOB_REFUSES)
    runner = Daemon(load(config), run_options(ctx))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        runner.stop()
        if runner.busy:
            interrupts.notify()  # the job's targets give up hanging requests (as cli.signals)
            raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # left ignored under nohup or '&'
            signal.signal(signum, on_signal)
    try:
        code = runner.run()
    except KeyboardInterrupt:
        runner.log("daemon", "stopped, a running job was interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)
