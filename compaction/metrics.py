"""The compaction job's metrics (``loglake_compaction_*``), pushed to a Pushgateway after every round."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge

from compaction.job import CompactResult
from loglake.metrics import push


@dataclass
class CompactionMetrics:
    """Gauges of the last round (a transient job's registry lives for one run)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.pending = Gauge(
            "loglake_compaction_pending_plans",
            "Compaction plans scheduled and not yet executed, after the round.",
            registry=r,
        )
        self.oldest_pending = Gauge(
            "loglake_compaction_oldest_pending_plan_age_seconds",
            "Age of the oldest compaction plan not yet executed (0 when none).",
            registry=r,
        )
        self.uncompacted = Gauge(
            "loglake_compaction_uncompacted_delta_commits",
            "Delta commits newer than the last completed compaction.",
            registry=r,
        )
        self.compactions = Gauge(
            "loglake_compaction_plans_executed", "Compaction plans executed by this run.", registry=r
        )
        self.log_files = Gauge(
            "loglake_compaction_log_files_compacted", "Log files merged into base files by this run.", registry=r
        )
        self.records = Gauge(
            "loglake_compaction_records_written",
            "Records written into new base files by this run's compactions.",
            registry=r,
        )
        self.bytes_written = Gauge(
            "loglake_compaction_bytes_written", "Bytes of base files written by this run's compactions.", registry=r
        )
        self.files_cleaned = Gauge(
            "loglake_compaction_files_cleaned", "Older file versions removed by this run's cleans.", registry=r
        )
        self.file_groups = Gauge(
            "loglake_compaction_file_groups", "File groups of the table after the round.", registry=r
        )
        self.avg_base_file = Gauge(
            "loglake_compaction_avg_base_file_bytes",
            "Average size of the latest base file of each file group.",
            registry=r,
        )
        self.small_base_files = Gauge(
            "loglake_compaction_small_base_files",
            "Latest base files under hoodie.parquet.small.file.limit (with the bucket index: raise or lower "
            "hoodie.bucket.index.num.buckets).",
            registry=r,
        )
        self.log_files_to_merge = Gauge(
            "loglake_compaction_log_files_to_merge",
            "Log files of the latest file slices: what a snapshot query still merges.",
            registry=r,
        )
        self.duration = Gauge("loglake_compaction_run_duration_seconds", "Wall time of this run so far.", registry=r)
        self.last_success = Gauge(
            "loglake_compaction_last_success_timestamp_seconds", "Unix time of the last successful round.", registry=r
        )

    def update(self, result: CompactResult) -> None:
        totals = result.totals()
        self.pending.set(len(result.pending_after))
        self.oldest_pending.set(result.oldest_pending_seconds_after or 0)
        self.uncompacted.set(result.uncompacted_delta_commits_after)
        self.compactions.set(sum(len(r.compacted) for r in result.rounds))
        self.log_files.set(totals["log_files_compacted"])
        self.records.set(totals["records_compacted"])
        self.bytes_written.set(totals["bytes_written"])
        self.files_cleaned.set(totals["files_cleaned"])
        self.duration.set(result.seconds)
        if result.files:
            self.file_groups.set(result.files["file_groups"])
            self.avg_base_file.set(result.files["avg_latest_base_file_bytes"])
            self.small_base_files.set(result.files["latest_base_files_under_small_file_limit"])
            self.log_files_to_merge.set(result.files["log_files_to_merge"])
        self.last_success.set(time.time())

    def push(self, gateway: str, table_name: str) -> None:
        push(self.registry, gateway, job="loglake_compaction", grouping_key={"table": table_name})
