"""The table-services job: execute compaction plans, cluster, clean and archive, beside the live stream.

One round: execute every pending plan (Hudi rolls back and re-runs a plan a killed run left
inflight), with ``--schedule`` then plan and execute a compaction of every log written since,
cluster, clean, archive, and read the timeline again for the report and metrics.
``--until-caught-up`` repeats rounds until no plan is pending; ``--loop`` repeats them forever,
pausing between rounds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from loglake import services, table, timeline
from loglake.errors import TableError
from loglake.jvm_errors import chain_text, deepest_error, jvm_gone
from loglake.settings import Settings
from loglake.spark import get_spark
from loglake.timer import StageTimer

log = logging.getLogger(__name__)


# Hudi's default hoodie.parquet.small.file.limit (100 MB).
SMALL_FILE_LIMIT = 104_857_600
# Session catalog name prefix of the log table for procedures that take a table, not a path.
SERVICES_CATALOG_PREFIX = "loglake_services"
# How often a loop started before the stream's first commit looks for the table (at most).
TABLE_WAIT_SECONDS = 30.0

CLUSTERING_SKIPPED_BUCKET = (
    "the bucket index fixes each key's file group, so Hudi cannot cluster this table; compaction writes "
    "one base file per bucket and partition: size them with hoodie.bucket.index.num.buckets"
)


@dataclass
class RoundResult:
    """One round of table services."""

    scheduled: list[str] = field(default_factory=list)
    compacted: list[str] = field(default_factory=list)
    file_groups_compacted: int = 0
    log_files_compacted: int = 0
    records_compacted: int = 0
    bytes_written: int = 0
    clustered: list[str] = field(default_factory=list)
    clustering_skipped: str | None = None
    files_cleaned: int = 0
    archived: bool = False
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class CompactResult:
    """What ``loglake compact`` did; printed as JSON, pushed as metrics, asserted on by tests."""

    table_path: str
    pending_before: list[str]
    pending_after: list[str]
    oldest_pending_seconds_after: float | None
    uncompacted_delta_commits_after: int
    caught_up: bool  # every plan pending when the run started has been executed
    files: dict[str, int] = field(default_factory=dict)  # file_stats() after the last round
    rounds: list[RoundResult] = field(default_factory=list)
    seconds: float = 0.0

    def totals(self) -> dict[str, int]:
        keys = ("file_groups_compacted", "log_files_compacted", "records_compacted", "bytes_written", "files_cleaned")
        return {k: sum(getattr(r, k) for r in self.rounds) for k in keys}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "totals": self.totals()}


def _compaction_stats(spark: SparkSession, path: str, instants: list[str]) -> dict[str, int]:
    """Totals over the completed compaction commits ``instants`` (from their commit metadata)."""
    stats = {"file_groups_compacted": 0, "log_files_compacted": 0, "records_compacted": 0, "bytes_written": 0}
    if not instants:
        return stats
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    active = timeline.meta_client(spark, path).getActiveTimeline()
    done = active.getCommitTimeline().filterCompletedInstants()
    for instant in done.getInstants():
        if str(instant.requestedTime()) not in instants:
            continue
        meta = jvm.org.apache.hudi.common.table.timeline.TimelineUtils.getCommitMetadata(instant, active)
        stats["file_groups_compacted"] += int(meta.fetchTotalFilesUpdated()) + int(meta.fetchTotalFilesInsert())
        stats["log_files_compacted"] += int(meta.getTotalLogFilesCompacted() or 0)
        stats["records_compacted"] += int(meta.fetchTotalRecordsWritten())
        stats["bytes_written"] += int(meta.fetchTotalBytesWritten())
    return stats


def file_stats(spark: SparkSession, settings: Settings, path: str, small_file_limit: int) -> dict[str, int]:
    """File counts and sizes of the latest file slices (Hudi's file-system view: what a snapshot reads).

    From the view, not a listing: file groups replaced by clustering or a partition drop stay on
    disk until cleaned, but no reader sees them.
    """
    rows = services.latest_file_slices(spark, settings, path, SERVICES_CATALOG_PREFIX)
    sizes = [int(r["data_file_size"]) for r in rows if r["data_file"] and (r["data_file_size"] or 0) > 0]
    return {
        "file_groups": len(rows),
        "latest_base_files": len(sizes),
        "avg_latest_base_file_bytes": int(sum(sizes) / len(sizes)) if sizes else 0,
        "latest_base_files_under_small_file_limit": sum(1 for n in sizes if n < small_file_limit),
        "log_files_to_merge": sum(int(r["num_delta_files"] or 0) for r in rows),
    }


def run_round(spark: SparkSession, settings: Settings, *, schedule: bool) -> RoundResult:
    """One round of table services on the log table."""
    path = settings.table.require_path()
    result = RoundResult()
    timer = StageTimer(result.seconds)
    # Every procedure runs with the writers' options (locks, layout, PII-free column stats).
    opts = table.service_options(settings)
    name = services.register(spark, path, SERVICES_CATALOG_PREFIX)

    def execute_pending() -> list[str]:
        if not timeline.health(spark, path).pending_compactions:
            return []
        args = services.args_text({"op": "run", "path": path})
        rows = services.call(spark, settings, f"CALL run_compaction({args})", what=f"compaction of {path}", opts=opts)
        executed = {str(r["timestamp"]) for r in rows if r["timestamp"]}
        return sorted(executed - set(timeline.health(spark, path).pending_compactions))

    # Pending plans first: Hudi schedules no new compaction while an earlier plan is pending.
    result.compacted = execute_pending()
    timer.lap("compact")
    if schedule:
        # An explicit --schedule plans every log written so far, whatever the trigger settings say.
        plan_now = {
            "hoodie.compact.inline.trigger.strategy": "NUM_COMMITS",
            "hoodie.compact.inline.max.delta.commits": "1",
        }
        args = services.args_text({"op": "schedule", "path": path})
        rows = services.call(
            spark,
            settings,
            f"CALL run_compaction({args})",
            what=f"compaction schedule on {path}",
            opts={**opts, **plan_now},
        )
        result.scheduled = sorted(str(r["timestamp"]) for r in rows if r["timestamp"])
        timer.lap("schedule")
        if result.scheduled:
            result.compacted += execute_pending()
            timer.lap("compact_scheduled")
    for key, value in _compaction_stats(spark, path, result.compacted).items():
        setattr(result, key, value)

    if settings.compaction.clustering and opts.get("hoodie.index.type") == "BUCKET":
        # Hudi refuses ("not compatible with table layout HoodieSimpleBucketLayout"): a key's file group
        # is its hash bucket, so rows cannot move between files. Files are sized by the bucket count.
        result.clustering_skipped = CLUSTERING_SKIPPED_BUCKET
    elif settings.compaction.clustering:
        args = services.args_text({"op": "scheduleAndExecute", "path": path})
        rows = services.call(spark, settings, f"CALL run_clustering({args})", what=f"clustering of {path}", opts=opts)
        result.clustered = sorted({str(r["timestamp"]) for r in rows if r["timestamp"]})
        timer.lap("cluster")

    if settings.compaction.clean:
        rows = services.call(spark, settings, f"CALL run_clean(table => '{name}')", what=f"clean of {path}", opts=opts)
        result.files_cleaned = sum(int(r["total_files_deleted"] or 0) for r in rows)
        timer.lap("clean")

    if settings.compaction.archive and (settings.table.version or table.CURRENT_VERSION) < 8:
        # Hudi 1.0.2's archive_commits builds a version-8 writer and refuses a version-6 table; its
        # writers archive as they commit instead (hoodie.archive.automatic).
        log.info("archiving of %s left to its writers: Hudi's archive_commits needs table version 8", path)
    elif settings.compaction.archive:
        args = services.args_text(
            {
                "table": name,
                "min_commits": int(opts["hoodie.keep.min.commits"]),
                "max_commits": int(opts["hoodie.keep.max.commits"]),
                "retain_commits": int(opts["hoodie.clean.commits.retained"]),
            }
        )
        services.call(spark, settings, f"CALL archive_commits({args})", what=f"archiving of {path}", opts=opts)
        result.archived = True
        timer.lap("archive")
    return result


def _not_ready(spark: SparkSession, path: str) -> str | None:
    """Why there is nothing to service yet, or None."""
    if not table.table_exists(spark, path):
        return f"table.path={path} is not a Hudi table (no .hoodie/hoodie.properties there)"
    if not timeline.has_commits(spark, path):
        return f"table.path={path} has no completed commit yet (the stream's first commit has not landed)"
    return None


def _wait_for_table(spark: SparkSession, settings: Settings, path: str, sleep: Callable[[float], None]) -> None:
    """A loop started beside a stream that has not committed yet (a fresh deployment, where both
    start at once) waits for the first commit instead of exiting and being restarted over and over."""
    wait = min(settings.compaction.loop_seconds, TABLE_WAIT_SECONDS)
    log.info("%s; checking every %g s", _not_ready(spark, path), wait)
    while _not_ready(spark, path) is not None:
        sleep(wait)
    log.info("table.path=%s has its first commit", path)


def run_compact(
    settings: Settings,
    *,
    schedule: bool = False,
    until_caught_up: bool = False,
    loop: bool = False,
    spark: SparkSession | None = None,
    on_round: Callable[[CompactResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CompactResult:
    """Run table services on the log table: one round, until caught up, or forever (``loop``)."""
    path = settings.table.require_path()
    spark = spark or get_spark(settings, app_name=f"loglake-compact[{settings.table.name}]")
    if (problem := _not_ready(spark, path)) is not None:
        if not loop:
            raise TableError(problem)
        _wait_for_table(spark, settings, path, sleep)
    settings = table.resolve_version(spark, settings, path)
    started = time.monotonic()
    small = int(table.service_options(settings).get("hoodie.parquet.small.file.limit", SMALL_FILE_LIMIT))
    before = timeline.health(spark, path)
    result = CompactResult(
        table_path=path,
        pending_before=before.pending_compactions,
        pending_after=before.pending_compactions,
        oldest_pending_seconds_after=before.oldest_pending_compaction_seconds,
        uncompacted_delta_commits_after=before.uncompacted_delta_commits,
        caught_up=not before.pending_compactions,
    )
    failed = 0
    while True:
        try:
            round_result = run_round(spark, settings, schedule=schedule)
        except Exception as exc:
            failed += 1
            if not loop or failed >= settings.compaction.max_failed_rounds or jvm_gone(exc):
                raise
            log.warning(
                "round failed (%d in a row of at most compaction.max_failed_rounds=%d), next in %s: %s",
                failed,
                settings.compaction.max_failed_rounds,
                settings.compaction.loop_interval,
                deepest_error(chain_text(exc)),
            )
            sleep(settings.compaction.loop_seconds)
            continue
        failed = 0
        result.rounds.append(round_result)
        after = timeline.health(spark, path)
        result.pending_after = after.pending_compactions
        result.oldest_pending_seconds_after = after.oldest_pending_compaction_seconds
        result.uncompacted_delta_commits_after = after.uncompacted_delta_commits
        result.caught_up = not set(before.pending_compactions) & set(after.pending_compactions)
        result.files = file_stats(spark, settings, path, small)
        result.seconds = round(time.monotonic() - started, 3)
        if on_round is not None:
            on_round(result)
        if loop:
            sleep(settings.compaction.loop_seconds)
            continue
        if not until_caught_up or not after.pending_compactions:
            break
        if len(result.rounds) >= settings.compaction.max_rounds:
            log.warning(
                "still %d plans pending after %d rounds (compaction.max_rounds): the stream schedules faster "
                "than this job compacts",
                len(after.pending_compactions),
                len(result.rounds),
            )
            break
    return result
