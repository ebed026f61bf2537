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
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from ingest import parse
from ingest.metrics import IngestMetrics
from ingest.registry import SchemaBook
from ingest.schema import Decoding
from loglake import catalog, retry, table, timeline
from loglake.errors import CatalogSyncError, TableError
from loglake.settings import Settings
from loglake.shape import LogShape, default_shape

log = logging.getLogger(__name__)

# How many quarantined rows per batch are named in the log (all are in the quarantine table).
LOGGED_BAD_ROWS = 5
# Up to this many bad rows, the counting pass lists their Kafka coordinates (~40 bytes a row): the
# write pass leaves out those of the deferred checks without checking again, and the quarantine
# stages only the bad messages. Past it, a batch that bad does the full work in both.
FLAG_LIMIT = 100_000


# Names a writer schema's new field cannot take: the table's own columns, the staging columns, and
# the decoded batch's internal names.
def reserved_names(shape: LogShape) -> frozenset[str]:
    """Names a writer schema's new field cannot take: the table's own columns, the staging columns,
    and the decoded batch's internal names."""
    return frozenset({*shape.columns, *parse.STAGING_COLUMNS, "records", "pos", "col"})


def _extra_columns(spark: SparkSession, path: str, shape: LogShape) -> dict[str, str]:
    """The table's columns beyond the shape's (added by writer schemas before), name -> Spark SQL type."""
    if not table.table_exists(spark, path):
        return {}
    schema = spark.read.format("hudi").load(path).schema
    return {
        f.name: f.dataType.simpleString()
        for f in schema.fields
        if f.name not in shape.columns and not f.name.startswith("_hoodie")
    }


@dataclass
class BatchStats:
    """What the micro-batches of this run did (the driver's own totals)."""

    batches: int = 0
    messages: int = 0
    records_written: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    # Per batch id: the first Kafka offset the batch actually read, per (topic, partition): what the
    # listener compares with the planned start to find offsets Kafka no longer had.
    first_offsets: dict[int, dict[tuple[str, int], int]] = field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


@dataclass
class _Tally:
    """The counting pass's tally of one micro-batch, summed on the driver."""

    # Quarantined rows per reason code.
    counts: dict[str, int] = field(default_factory=dict)
    good: int = 0
    messages: int = 0
    # A Kafka message arrived more than once in this micro-batch.
    repeated: bool = False
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    # The rows of the deferred checks that the write pass leaves out: topic, partition, offset, record.
    flagged: list[tuple[str, int, int, int | None]] = field(default_factory=list)
    bad_messages: set[tuple[str, int, int]] = field(default_factory=set)
    listed: int = 0

    @property
    def listed_all(self) -> bool:
        """Whether every bad row's coordinates were listed (see ``FLAG_LIMIT``)."""
        return self.listed <= FLAG_LIMIT

    @classmethod
    def of(cls, tallied: list[Row]) -> _Tally:
        """Sum the rows of :func:`ingest.parse.tally`."""
        tally = cls()
        for row in tallied:
            if row["grouping"]:
                tally.repeated = row["batches"] > row["distinct_batches"]
                continue
            topic, partition = row["kafka_topic"], row["kafka_partition"]
            tally.listed += len(row["bad_rows"])
            tally.bad_messages.update((topic, partition, b["kafka_offset"]) for b in row["bad_rows"])
            if row["reason_code"] in parse.DEFERRED_REASONS:
                tally.flagged += [(topic, partition, b["kafka_offset"], b["record_index"]) for b in row["bad_rows"]]
            if row["reason_code"] is None:
                tally.good += row["rows"]
            else:
                tally.counts[row["reason_code"]] = tally.counts.get(row["reason_code"], 0) + row["rows"]
            tally.messages += row["messages"]
            first = tally.first_offsets
            first[(topic, partition)] = min(first.get((topic, partition), row["first_offset"]), row["first_offset"])
        return tally


class BatchWriter:
    """The ``foreachBatch`` function of the ingest stream."""

    def __init__(self, settings: Settings, metrics: IngestMetrics, shape: LogShape | None = None) -> None:
        self.settings = settings
        self.shape = shape or default_shape()
        self.metrics = metrics
        self.table_path = settings.table.require_path()
        self.quarantine_path = settings.table.effective_quarantine_path
        self.log_options = table.ingest_options(settings)
        self.quarantine_options = table.quarantine_options(settings)
        self.stats = BatchStats()
        self.schemas: SchemaBook | None = None
        # Committed micro-batches per table not yet in the catalog, and the tables to sync after the
        # next batch whatever catalog.sync_every_batches says: both at start (a run that stopped
        # between a commit and its sync left the catalog behind), and any whose last sync failed.
        self.unsynced: dict[catalog.TableKind, int] = dict.fromkeys(catalog.TABLE_KINDS, 0)
        self.sync_now: set[catalog.TableKind] = set(catalog.TABLE_KINDS)
        # Unknown (NaN), not down, for a stream without a registry: the alert fires on 0 only.
        metrics.schema_registry_up.set(1 if settings.ingest.schema_registry.url else float("nan"))

    def _commit_meta(self, batch_id: int) -> dict[str, str]:
        prefix = table.COMMIT_META_PREFIX
        return {f"{prefix}spark_batch_id": str(batch_id), f"{prefix}query": self.settings.ingest.query_name}

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        try:
            self._write(batch, batch_id)
        except Exception:
            self.metrics.failures.inc()
            raise

    def _write(self, batch: DataFrame, batch_id: int) -> None:
        """Stage the Kafka ``batch`` (its raw rows) and write it; the raw rows serve the quarantine's bytes.

        Nothing is cached: staging is cheap next to materialising a batch in memory (caching cost twice
        the staging itself and brought the GC pauses of a full heap), so the counting pass and the
        write each stage the batch from Kafka's rows again, and the rare paths (quarantine, repeated
        batches) add a pass only when they have work. The counting pass runs every check; the write
        pass skips the costly ones and leaves out the rows they flagged.
        """
        self._enable_adaptive_execution(batch.sparkSession)
        decoding, staged, tallied = self._count(batch)
        tally = _Tally.of(tallied)
        self._remember_first_offsets(batch_id, tally.first_offsets)
        if tally.counts:
            bad_staged, bad_source = self._stage_bad(batch, staged, decoding, tally)
            self._quarantine(bad_staged, bad_source, batch_id, tally.counts)
        good = tally.good
        if good:
            good = self._write_log(batch, staged, decoding, tally, batch_id)
            self.unsynced["log"] += 1
        if tally.counts:
            self.unsynced["quarantine"] += 1
        if self.settings.catalog.active:
            self._sync_catalog(batch.sparkSession)
        self._record_batch(batch_id, tally.messages, good)
        if good:
            self._table_health(staged)
        log.info(
            "batch %d: %d messages, %d records written, %d rows quarantined",
            batch_id,
            tally.messages,
            good,
            sum(tally.counts.values()),
        )

    def _enable_adaptive_execution(self, spark: SparkSession) -> None:
        # Structured Streaming turns adaptive execution off in the session its batches run in; the
        # writer's own queries are batch queries and want it back: the counting pass's aggregation
        # then runs a task per core instead of spark.sql.shuffle.partitions (200) tasks per shuffle.
        spark.conf.set("spark.sql.adaptive.enabled", self.settings.spark.conf.get("spark.sql.adaptive.enabled", "true"))

    def _remember_first_offsets(self, batch_id: int, first: dict[tuple[str, int], int]) -> None:
        self.stats.first_offsets[batch_id] = first
        # Only the listener's next progress event needs it; keep the map from growing with the run.
        for old in [b for b in self.stats.first_offsets if b < batch_id - 10]:
            del self.stats.first_offsets[old]

    def _stage_bad(
        self, batch: DataFrame, staged: DataFrame, decoding: Decoding | None, tally: _Tally
    ) -> tuple[DataFrame, DataFrame]:
        """The quarantine's input: the bad rows' staging, and the raw Kafka rows their bytes come from."""
        if not tally.listed_all:
            return staged, batch
        # Only the bad messages are staged again, not the whole batch.
        listed_messages = batch.sparkSession.createDataFrame(sorted(tally.bad_messages), parse.MESSAGES_SCHEMA)
        source = parse.of_messages(batch, listed_messages)
        return source.transform(parse.stage(self.settings.ingest, decoding=decoding, shape=self.shape)), source

    def _write_log(
        self, batch: DataFrame, staged: DataFrame, decoding: Decoding | None, tally: _Tally, batch_id: int
    ) -> int:
        """Commit the batch's good rows to the log table; returns how many it wrote (repeats dropped)."""
        staged_for_write = self._write_pass(batch, tally.flagged, decoding) if tally.listed_all else staged
        rows = parse.log_rows(staged_for_write, self.shape)
        good = tally.good
        if tally.repeated:
            rows, good = self._unique(rows, staged, batch_id)
        # A retry after a lost conflict stages the batch again from the same Kafka offsets.
        try:
            self._commit(rows, self.table_path, self.log_options, batch_id)
        finally:
            if tally.repeated:
                rows.unpersist()
        self.metrics.last_commit.set(time.time())
        return good

    def _commit(self, rows: DataFrame, path: str, options: dict[str, str], batch_id: int) -> None:
        """Append ``rows`` to the Hudi table at ``path`` as one commit, retried after a lost write conflict."""
        writer = rows.write.format("hudi").options(**options).options(**self._commit_meta(batch_id)).mode("append")
        retry.on_conflict(
            lambda: writer.save(path),
            what=f"batch {batch_id} -> {path}",
            attempts=self.settings.table.conflict_retries,
        )

    def _record_batch(self, batch_id: int, messages: int, good: int) -> None:
        self.stats.batches += 1
        self.stats.messages += messages
        self.stats.records_written += good
        self.metrics.batches.inc()
        self.metrics.input_messages.inc(messages)
        self.metrics.batch_input_messages.set(messages)
        self.metrics.records_written.inc(good)
        self.metrics.batch_records.set(good)

    def _count(self, batch: DataFrame) -> tuple[Decoding | None, DataFrame, list[Row]]:
        """The counting pass: the batch staged with every check, and its tally.

        With a schema registry, ids met for the first time show up in the tally as pending; they are
        looked up (a read of the headers, then one request per id) and the batch is staged again.
        """
        registry = self.settings.ingest.schema_registry
        if registry.url and self.schemas is None:
            self.schemas = SchemaBook(
                batch.sparkSession,
                registry,
                shape=self.shape,
                reserved=reserved_names(self.shape),
                table_columns=_extra_columns(batch.sparkSession, self.table_path, self.shape),
                metrics=self.metrics,
            )
            # Confluent's default subject naming: the writer schemas of topic T are versions of T-value.
            self.schemas.warm(f"{t.strip()}-value" for t in self.settings.kafka.topic.split(","))
        decoding = self.schemas.decoding() if self.schemas is not None else None
        while True:
            staged = batch.transform(parse.stage(self.settings.ingest, decoding=decoding, shape=self.shape))
            tallied = parse.tally(staged, FLAG_LIMIT, self.shape).collect()
            pending = any(row["reason_code"] == parse.REASON_SCHEMA_PENDING for row in tallied)
            if self.schemas is None or decoding is None or not pending or decoding.closed:
                return decoding, staged, tallied
            limit = registry.max_new_ids_per_batch
            ids = sorted(row["schema_id"] for row in parse.unmet_schema_ids(batch, decoding, limit).collect())
            log.info("looking up %d new schema ids: %s", len(ids), ", ".join(map(str, ids)))
            self.schemas.learn(ids)
            decoding = self.schemas.decoding(closed=True)

    def _sync_catalog(self, spark: SparkSession) -> None:
        """Register what the committed batches added (partitions, columns) every ``sync_every_batches``.

        A failed sync is logged and counted, never raised: the batch is committed, and failing it
        would replay it for as long as the metastore is down. The next batch tries again.
        """
        every = self.settings.catalog.sync_every_batches
        for kind in catalog.TABLE_KINDS:
            due = self.unsynced[kind]
            if kind not in self.sync_now and due < every:
                self.metrics.catalog_unsynced_batches.labels(table=kind).set(due)
                continue
            try:
                result = catalog.sync(spark, self.settings, kind)
            except TableError:
                self.sync_now.discard(kind)  # nothing written yet (a stream that never quarantined)
                continue
            except CatalogSyncError as exc:
                self.sync_now.add(kind)
                self.metrics.catalog_sync_failures.labels(table=kind).inc()
                log.warning("%s (%d committed batches not registered yet)", exc, due)
            else:
                self.unsynced[kind] = 0
                self.sync_now.discard(kind)
                self.metrics.catalog_syncs.labels(table=kind).inc()
                self.metrics.catalog_sync_duration.labels(table=kind).observe(result.seconds)
            self.metrics.catalog_unsynced_batches.labels(table=kind).set(self.unsynced[kind])

    def _write_pass(
        self, batch: DataFrame, flagged: list[tuple[str, int, int, int | None]], decoding: Decoding | None
    ) -> DataFrame:
        """The batch staged without the deferred checks, less the rows they flagged in the counting pass."""
        staged = batch.transform(parse.stage(self.settings.ingest, deferred=True, decoding=decoding, shape=self.shape))
        if not flagged:
            return staged
        return parse.without_flagged(staged, batch.sparkSession.createDataFrame(flagged, parse.FLAGGED_SCHEMA))

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

    def _unique(self, rows: DataFrame, staged: DataFrame, batch_id: int) -> tuple[DataFrame, int]:
        """One copy per key of ``rows``, and its count, when a batch arrived twice in this micro-batch.

        Hudi's own pre-combine is off (it shuffled every record of every batch); the tally finds the
        rare repeat on one row per message, and only then does this shuffle the batch by key.
        """
        keys = self.shape.key_fields
        repeats = parse.repeated_batches(staged, self.shape).orderBy(*keys).limit(LOGGED_BAD_ROWS).collect()
        for row in repeats:
            log.warning(
                "batch %d: the batch with %s arrived %d times; keeping the latest copy",
                batch_id,
                ", ".join(f"{k}={row[k]}" for k in keys),
                row["copies"],
            )
        # Cached: counted here, then written, without staging the batch a third time.
        unique = parse.latest_copy_per_key(rows).persist(StorageLevel.MEMORY_AND_DISK)
        return unique, unique.count()

    def _quarantine(self, staged: DataFrame, batch: DataFrame, batch_id: int, counts: dict[str, int]) -> None:
        # Bad rows are few: cached (as staged, then with their raw bytes), so that finding each message's
        # first bad row, logging and writing stage the bad messages once and read their bytes once.
        bad_staged = staged.where(F.col("reason_code").isNotNull()).persist(StorageLevel.MEMORY_AND_DISK)
        # Few rows after a join's 200 shuffle partitions: one task per core, not a Hudi task per partition.
        parallelism = batch.sparkSession.sparkContext.defaultParallelism
        bad = (
            parse.quarantine_rows(parse.with_raw_bytes(bad_staged, batch))
            .coalesce(parallelism)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        try:
            for row in bad.select(*parse.COORDINATES, "reason").limit(LOGGED_BAD_ROWS).collect():
                log.warning(
                    "quarantined %s[%d] offset %d: %s",
                    row["kafka_topic"],
                    row["kafka_partition"],
                    row["kafka_offset"],
                    row["reason"],
                )
            self._commit(bad, self.quarantine_path, self.quarantine_options, batch_id)
        finally:
            bad.unpersist()
            bad_staged.unpersist()
        for code, n in counts.items():
            self.stats.quarantined[code] = self.stats.quarantined.get(code, 0) + n
            self.metrics.quarantined.labels(reason_code=code).inc(n)
