"""The ``loglake`` command run inside the test process, on the session's Spark.

A CLI subprocess starts its own driver JVM (10-30 s on 2 cores); where a test is about a report, an
exit code or a one-line error, the same :func:`app.cli.main` runs here instead and reuses the
session's SparkSession (``loglake.spark.get_spark`` returns the active one). Tests keep a real
subprocess only where the process boundary is the point: SIGKILL, signals, a killed JVM, the
checkpoint lock held by another process, spark-submit.
"""

from __future__ import annotations

import io
import logging
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest import mock


@dataclass(frozen=True)
class CliRun:
    """What a run printed and returned, named like :class:`subprocess.CompletedProcess`."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliRun:
    """``loglake *args`` in this process: its exit code, its stdout, and its stderr with its log lines."""
    from app import cli

    out, err = io.StringIO(), io.StringIO()
    # The CLI's own log format, on stderr as a terminal would show it; pytest's handlers stay.
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        # Ending the process when a dead JVM left threads behind is for a real process only; the
        # killed-JVM test proves it in one.
        with redirect_stdout(out), redirect_stderr(err), mock.patch.object(cli, "_exit", lambda code: code):
            try:
                code = cli.main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        # The CLI silences logging after its failure line so nothing follows it; the session goes on.
        logging.disable(logging.NOTSET)
    return CliRun(args, code, out.getvalue(), err.getvalue())
