"""Hudi table services (compaction, cleaning, archiving, clustering) through Spark SQL procedures.

The procedures (``CALL run_compaction`` and friends) ship in the Spark bundle itself, so the same
code runs locally and on EMR without hudi-utilities. Every call passes the writers' lock and
concurrency settings (:func:`loglake.table.lock_options`): a table service that took no lock has
corrupted tables beside a live writer (apache/hudi #9674, #10891, #11564).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import Row, SparkSession

from loglake import retry
from loglake.settings import Settings

log = logging.getLogger(__name__)


def register(spark: SparkSession, path: str, prefix: str) -> str:
    """A session catalog name for the table at ``path`` (some procedures take a table, not a path)."""
    name = f"{prefix}_{hashlib.sha1(path.encode()).hexdigest()[:12]}"  # noqa: S324 - a name, not security
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING hudi LOCATION '{path}'")
    return name


@contextmanager
def session_options(spark: SparkSession, opts: dict[str, str]) -> Iterator[None]:
    """Hudi options as session settings for the duration of a procedure call.

    A procedure's ``options`` argument is split on commas, so a value such as the column-stats
    column list cannot pass through it; procedures also read ``hoodie.*`` session settings. The
    previous values are restored afterwards, so other writers of the session are unaffected.
    """
    previous = {k: spark.conf.get(k, None) for k in opts}
    for key, value in opts.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def call(spark: SparkSession, settings: Settings, sql: str, what: str, opts: dict[str, str] | None = None) -> list[Row]:
    """Run one procedure call with ``opts`` in force, retrying when a concurrent writer wins the OCC check."""
    log.info("%s: %s", what, sql)

    def attempt() -> list[Row]:
        with session_options(spark, opts or {}):
            return spark.sql(sql).collect()

    rows: list[Row] = retry.on_conflict(attempt, what=what, attempts=settings.table.conflict_retries)
    return rows


def latest_file_slices(spark: SparkSession, settings: Settings, path: str, prefix: str) -> list[Row]:
    """Hudi's file-system view of the latest file slices (what a snapshot reads): one row per file group,
    with its base file and the log files a snapshot merges, planned for compaction or not."""
    name = register(spark, path, prefix)
    sql = f"CALL show_fsview_latest(table => '{name}', limit => 1000000000)"
    return call(spark, settings, sql, what=f"file-system view of {path}")


def args_text(args: dict[str, Any]) -> str:
    """Named procedure arguments: strings quoted, numbers and booleans as they are."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        text = str(v)
        if "'" in text:
            raise ValueError(f"procedure argument {text!r} contains a quote")
        return f"'{text}'"

    return ", ".join(f"{k} => {value(v)}" for k, v in args.items() if v is not None)
