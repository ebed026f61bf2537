"""Physical removal after deletes: compact what deletes left in log files, clean older file versions, redact quarantine.

A merge-on-read delete only appends a delete block to a log file; the values stay in the file
slice's base file and older log blocks until compaction writes a new base file and the cleaner
removes every older file slice. A purge finds what still needs that from the table itself, not
from the requests of this run: every file group whose latest file slice holds a delete block,
whoever wrote it (an earlier ``gdpr delete`` without ``--purge``, a delete by hand through Spark
SQL). So a purge run later, with no new requests, finishes every erasure that is pending.

The quarantine table keeps raw message bytes: rows whose bytes hold a subject's identifier are
redacted when the subject is deleted (raw bytes and record text nulled, coordinates and reason
kept) and the older file versions go at the purge's clean.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from gdpr import hudi_log
from gdpr.match import Matcher
from gdpr.verify import filesystem, matching_documents, s3_options
from loglake import retry, services, storage, table, timeline
from loglake.settings import Settings

log = logging.getLogger(__name__)

COMPACTION_STRATEGY = "org.apache.hudi.table.action.compact.strategy.PartitionRegexBasedCompactionStrategy"
REDACTED_REASON_SUFFIX = " [raw bytes erased by a GDPR request]"
PURGE_CATALOG_PREFIX = "loglake_purge_logs"
# Compaction rounds a purge runs before it gives up on a partition: a plan scheduled by the stream
# before the delete can leave the delete block on top of the base file it writes, which the next
# round then compacts.
MAX_COMPACTION_ROUNDS = 3
# The file-system view prints log files as HoodieLogFile(pathStr=..., fileSize=...): quoted in Hudi 1.0,
# bare in 1.2.
_LOG_PATH = re.compile(r"pathStr='?(.+?)'?, fileSize=")


@dataclass
class PurgeResult:
    compaction_instants: list[str] = field(default_factory=list)
    partitions_compacted: list[str] = field(default_factory=list)
    compaction_rounds: int = 0
    # Partitions whose latest file slices still hold a delete block after the purge (should be none).
    partitions_pending: list[str] = field(default_factory=list)
    files_cleaned: int = 0
    refused: str | None = None


def savepoints(spark: SparkSession, path: str) -> list[str]:
    """Completed savepoint instants of a table (a savepoint pins its file slices against cleaning)."""
    found = []
    for f in storage.list_files(spark, f"{path}/.hoodie"):
        if "/.hoodie/metadata/" in f.path:
            continue
        if f.name.endswith(".savepoint") and ".inflight" not in f.name:
            found.append(f.name.split(".")[0].split("_")[0])
    return sorted(found)


def _log_files(spark: SparkSession, settings: Settings, path: str) -> list[tuple[str, str]]:
    """(partition, log file path) of every log file in the latest file slices (Hudi's file-system view)."""
    rows = services.latest_file_slices(spark, settings, path, PURGE_CATALOG_PREFIX)
    files = []
    for r in rows:
        for column in ("delta_files_compaction_scheduled", "delta_files_compaction_unscheduled"):
            files += [(str(r["partition"]), p) for p in _LOG_PATH.findall(str(r[column] or ""))]
    return files


def _with_delete_blocks(paths: Iterable[str], s3: dict[str, str]) -> Iterator[str]:
    for path in paths:
        store, target = filesystem(path, s3)
        try:
            with store.open_input_file(target) as raw:
                types = hudi_log.block_types(raw.read_at, raw.size())
        except FileNotFoundError:
            continue  # cleaned away since the listing
        if hudi_log.DELETE in types:
            yield path


def pending_deletes(spark: SparkSession, settings: Settings, path: str) -> dict[str, int]:
    """Partitions whose latest file slices hold delete blocks, with the number of such log files.

    Those are the deletes whose values still sit in base files and earlier log blocks: what a purge
    must compact. Read from the log files themselves (block headers only), so deletes made by any
    writer count, including those whose commits the timeline has since archived.
    """
    logs = _log_files(spark, settings, path)
    if not logs:
        return {}
    s3 = s3_options(spark)
    partition_of = {p: part for part, p in logs}
    paths = sorted(partition_of)
    slices = max(1, min(len(paths), spark.sparkContext.defaultParallelism * 4))
    hits = spark.sparkContext.parallelize(paths, slices).mapPartitions(lambda it: _with_delete_blocks(it, s3)).collect()
    counts: dict[str, int] = {}
    for p in hits:
        counts[partition_of[p]] = counts.get(partition_of[p], 0) + 1
    return dict(sorted(counts.items()))


def _compaction_options(settings: Settings, partitions: Sequence[str]) -> dict[str, str]:
    # Applied as session settings (loglake.services), so the regex needs no escaping for an options string.
    regex = "|".join(re.escape(p) for p in sorted(partitions))
    return {
        **table.service_options(settings),
        "hoodie.compaction.strategy": COMPACTION_STRATEGY,
        "hoodie.compaction.partition.path.regex": f"({regex})",
        # Every file group with a log file in those partitions, however small: the point is erasure.
        "hoodie.compaction.logfile.size.threshold": "0",
        "hoodie.compaction.target.io": str(10**15),
        # Scheduling otherwise waits for 5 delta commits since the last compaction.
        "hoodie.compact.inline.trigger.strategy": "NUM_COMMITS",
        "hoodie.compact.inline.max.delta.commits": "1",
    }


def compact_partitions(spark: SparkSession, settings: Settings, partitions: Sequence[str], result: PurgeResult) -> None:
    """Compact ``partitions`` (folder names, ``event_date=...``) until no delete block is left in them.

    Each round first executes the plans already pending (a plan the stream scheduled before a delete
    keeps that delete's file groups out of any new plan), then plans and executes a compaction of
    every log file in the partitions.
    """
    path = settings.table.require_path()
    todo = sorted(set(partitions))
    done: set[str] = set()
    while todo and result.compaction_rounds < MAX_COMPACTION_ROUNDS:
        result.compaction_rounds += 1
        opts = _compaction_options(settings, todo)
        if timeline.health(spark, path).pending_compactions:
            rows = services.call(
                spark,
                settings,
                f"CALL run_compaction({services.args_text({'op': 'run', 'path': path})})",
                what=f"pending compactions of {path}",
                opts=table.service_options(settings),
            )
            result.compaction_instants += sorted({str(r["timestamp"]) for r in rows if r["timestamp"]})
        args = services.args_text({"op": "scheduleandexecute", "path": path})
        rows = services.call(
            spark, settings, f"CALL run_compaction({args})", what=f"purge compaction of {path}", opts=opts
        )
        result.compaction_instants += sorted({str(r["timestamp"]) for r in rows if r["timestamp"]})
        done |= set(todo)
        todo = sorted(set(pending_deletes(spark, settings, path)) & set(todo))
        log.info(
            "purge compaction round %d of %s: %d partitions still hold delete blocks",
            result.compaction_rounds,
            path,
            len(todo),
        )
    result.partitions_compacted = sorted(done)
    result.partitions_pending = todo
    result.compaction_instants = sorted(set(result.compaction_instants))


def clean(spark: SparkSession, settings: Settings, path: str, prefix: str, opts: dict[str, str]) -> int:
    """Clean ``path`` keeping ``gdpr.purge_file_versions_retained`` versions per file group; files deleted.

    ``opts`` are the table's writer options (the log table's or the quarantine's), so the clean's own
    metadata-table update indexes the same, PII-free, columns.
    """
    name = services.register(spark, path, prefix)
    versions = settings.gdpr.purge_file_versions_retained
    sql = (
        f"CALL run_clean(table => '{name}', clean_policy => 'KEEP_LATEST_FILE_VERSIONS', "
        f"file_versions_retained => {versions})"
    )
    rows = services.call(spark, settings, sql, what=f"clean of {path}", opts=opts)
    deleted = sum(int(r["total_files_deleted"] or 0) for r in rows)
    log.info("cleaned %s: %d files deleted", path, deleted)
    return deleted


def redact_quarantine(spark: SparkSession, settings: Settings, matcher: Matcher, decoders: Sequence[Any]) -> int:
    """Null the raw bytes and record text of quarantine rows that hold an identifier; rows redacted.

    Which rows is decided by the verifier's own rules (:mod:`gdpr.match`), so a row holding only a
    look-alike keeps its bytes, and a purge's verification finds nothing in what was kept.
    """
    path = settings.table.effective_quarantine_path
    if matcher.empty or not storage.exists(spark, f"{path}/.hoodie/hoodie.properties"):
        return 0
    rows = spark.read.format("hudi").load(path).select(*table.QUARANTINE_COLUMNS)
    wanted = list(decoders)
    keys = (
        rows.where(F.col("raw_value").isNotNull() | F.col("record_json").isNotNull())
        .select(table.QUARANTINE_KEY, "raw_value", "record_json")
        .rdd.mapPartitions(
            lambda it: (
                (k,)
                for k in matching_documents(
                    matcher, ((r[0], bytes(r[1]) if r[1] is not None else None, r[2]) for r in it), wanted
                )
            )
        )
        .collect()
    )
    if not keys:
        return 0
    doomed = spark.createDataFrame(keys, f"{table.QUARANTINE_KEY} string")
    redacted = (
        rows.join(F.broadcast(doomed), table.QUARANTINE_KEY)
        .withColumn("raw_value", F.lit(None).cast("binary"))
        .withColumn("record_json", F.lit(None).cast("string"))
        .withColumn("reason", F.concat(F.col("reason"), F.lit(REDACTED_REASON_SUFFIX)))
        .select(*table.QUARANTINE_COLUMNS)
    )
    writer = redacted.write.format("hudi").options(**table.quarantine_options(settings)).mode("append")
    retry.on_conflict(lambda: writer.save(path), what=f"redaction in {path}", attempts=settings.table.conflict_retries)
    log.info("redacted %d quarantine rows in %s", len(keys), path)
    return len(keys)
