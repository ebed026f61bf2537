"""The write side of a micro-batch: quarantine rows, then log rows, each as one Hudi commit.

Exactly once: Spark replays an uncommitted micro-batch with the same offsets after a crash. Both
tables are written with ``upsert`` on deterministic keys (see :mod:`loglake.table`), so a replay
rewrites the same keys instead of adding rows, and Hudi rolls back a commit that a crash left
inflight. Quarantine is written first: if the process dies between the two writes, the replay
redoes both.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ingest import parse
from ingest.metrics import IngestMetrics
from loglake import retry, table, timeline
from loglake.settings import Settings

log = logging.getLogger(__name__)

# How many quarantined rows per batch are named in the log (all are in the quarantine table).
LOGGED_BAD_ROWS = 5


@dataclass
class BatchStats:
    """What the micro-batches of this run did (the driver's own totals)."""

    batches: int = 0
    messages: int = 0
    records_written: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    last_batch_id: int | None = None
    # Per batch id: the first Kafka offset the batch actually read, per (topic, partition): what the
    # listener compares with the planned start to find offsets Kafka no longer had.
    first_offsets: dict[int, dict[tuple[str, int], int]] = field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


class BatchWriter:
    """The ``foreachBatch`` function of the ingest stream."""

    def __init__(self, settings: Settings, metrics: IngestMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.table_path = settings.table.require_path()
        self.quarantine_path = settings.table.effective_quarantine_path
        self.log_options = table.ingest_options(settings)
        self.quarantine_options = table.quarantine_options(settings)
        self.stats = BatchStats()

    def _commit_meta(self, batch_id: int) -> dict[str, str]:
        prefix = table.COMMIT_META_PREFIX
        return {f"{prefix}spark_batch_id": str(batch_id), f"{prefix}query": self.settings.ingest.query_name}

    def __call__(self, staged: DataFrame, batch_id: int) -> None:
        try:
            self._write(staged, batch_id)
        except Exception:
            self.metrics.failures.inc()
            raise

    def _write(self, staged: DataFrame, batch_id: int) -> None:
        # Cached so that counting and the two writes decode the Kafka batch once, not three times.
        staged = staged.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            tally = staged.groupBy("reason_code", "kafka_topic", "kafka_partition").agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum(parse.first_row_of_message().cast("long")).alias("messages"),
                F.min("kafka_offset").alias("first_offset"),
            )
            counts: dict[str, int] = {}
            good = messages = 0
            first: dict[tuple[str, int], int] = {}
            for row in tally.collect():
                if row["reason_code"] is None:
                    good += row["rows"]
                else:
                    counts[row["reason_code"]] = counts.get(row["reason_code"], 0) + row["rows"]
                messages += row["messages"] or 0
                key = (row["kafka_topic"], row["kafka_partition"])
                first[key] = min(first.get(key, row["first_offset"]), row["first_offset"])
            self.stats.first_offsets[batch_id] = first
            # Only the listener's next progress event needs it; keep the map from growing with the run.
            for old in [b for b in self.stats.first_offsets if b < batch_id - 10]:
                del self.stats.first_offsets[old]
            if counts:
                self._quarantine(staged, batch_id, counts)
            if good:
                rows, good = self._unique(parse.log_rows(staged), staged, batch_id, good)
                writer = (
                    rows.write.format("hudi")
                    .options(**self.log_options)
                    .options(**self._commit_meta(batch_id))
                    .mode("append")
                )
                # The batch is cached, so a retry after a lost conflict re-reads nothing from Kafka.
                retry.on_conflict(
                    lambda: writer.save(self.table_path),
                    what=f"batch {batch_id} -> {self.table_path}",
                    attempts=self.settings.table.conflict_retries,
                )
                self.metrics.last_commit.set(time.time())
        finally:
            staged.unpersist()
        self.stats.batches += 1
        self.stats.messages += messages
        self.stats.records_written += good
        self.stats.last_batch_id = batch_id
        self.metrics.batches.inc()
        self.metrics.input_messages.inc(messages)
        self.metrics.batch_input_messages.set(messages)
        self.metrics.records_written.inc(good)
        self.metrics.batch_records.set(good)
        if good:
            self._table_health(staged)
        log.info(
            "batch %d: %d messages, %d records written, %d rows quarantined",
            batch_id,
            messages,
            good,
            sum(counts.values()),
        )

    def _table_health(self, staged: DataFrame) -> None:
        """Compaction backlog gauges, so an alert fires when the compaction job falls behind."""
        try:
            health = timeline.health(staged.sparkSession, self.table_path)
        except Exception as exc:  # a gauge is never worth failing a committed batch
            log.warning("could not read the timeline of %s for metrics: %s", self.table_path, exc)
            return
        self.metrics.pending_compactions.set(len(health.pending_compactions))
        self.metrics.oldest_pending_compaction.set(health.oldest_pending_compaction_seconds or 0)
        self.metrics.uncompacted_delta_commits.set(health.uncompacted_delta_commits)
        self.metrics.oldest_uncompacted_delta_commit.set(health.oldest_uncompacted_delta_commit_seconds or 0)

    def _unique(self, rows: DataFrame, staged: DataFrame, batch_id: int, count: int) -> tuple[DataFrame, int]:
        """The rows and their count, one copy per key when a batch arrived twice in this micro-batch.

        Hudi's own pre-combine is off (it shuffled every record of every batch); the rare repeat is
        found on one row per message and only then deduplicated.
        """
        repeats = parse.repeated_batches(staged).limit(LOGGED_BAD_ROWS + 1).collect()
        if not repeats:
            return rows, count
        for row in repeats[:LOGGED_BAD_ROWS]:
            log.warning(
                "batch %d: LogBatch %s of service %s arrived %d times; keeping the latest copy",
                batch_id,
                row["batch_id"],
                row["service"],
                row["copies"],
            )
        # Counted apart from the write; the staged batch is cached, so the rare path costs a shuffle.
        unique = parse.latest_copy_per_key(rows)
        return unique, unique.count()

    def _quarantine(self, staged: DataFrame, batch_id: int, counts: dict[str, int]) -> None:
        bad = parse.quarantine_rows(staged)
        for row in (
            bad.select("kafka_topic", "kafka_partition", "kafka_offset", "reason").limit(LOGGED_BAD_ROWS).collect()
        ):
            log.warning(
                "quarantined %s[%d] offset %d: %s",
                row["kafka_topic"],
                row["kafka_partition"],
                row["kafka_offset"],
                row["reason"],
            )
        writer = bad.write.format("hudi").options(**self.quarantine_options).options(**self._commit_meta(batch_id))
        retry.on_conflict(
            lambda: writer.mode("append").save(self.quarantine_path),
            what=f"batch {batch_id} -> {self.quarantine_path}",
            attempts=self.settings.table.conflict_retries,
        )
        for code, n in counts.items():
            self.stats.quarantined[code] = self.stats.quarantined.get(code, 0) + n
            self.metrics.quarantined.labels(reason_code=code).inc(n)
