"""Physical removal after a delete: compact the affected partitions, clean older file versions, redact quarantine.

A merge-on-read delete only appends delete blocks; the values stay in older base files and log
blocks until compaction writes new base files and the cleaner removes every older file slice.
The quarantine table keeps raw message bytes, so rows whose bytes hold a subject's identifier are
redacted (raw bytes and record text nulled, coordinates and reason kept) and their older versions cleaned.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from gdpr.verify import Needle
from loglake import retry, services, storage, table
from loglake.settings import Settings

log = logging.getLogger(__name__)

COMPACTION_STRATEGY = "org.apache.hudi.table.action.compact.strategy.PartitionRegexBasedCompactionStrategy"
REDACTED_REASON_SUFFIX = " [raw bytes erased by a GDPR request]"


@dataclass
class PurgeResult:
    compaction_instants: list[str] = field(default_factory=list)
    partitions_compacted: list[str] = field(default_factory=list)
    files_cleaned: int = 0
    quarantine_rows_redacted: int = 0
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


def compact_partitions(spark: SparkSession, settings: Settings, partitions: Sequence[str]) -> list[str]:
    """Schedule and run a compaction of just ``partitions`` (values of event_date); returns the instants."""
    if not partitions:
        return []
    path = settings.table.require_path()
    # Procedure options are "k=v,k=v": "." stands in for the "=" of the partition path.
    regex = "|".join(f"{table.PARTITION_FIELD}.{p}" for p in sorted(partitions))
    opts = {
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
    sql = f"CALL run_compaction(op => 'scheduleandexecute', path => '{path}')"
    rows = services.call(spark, settings, sql, what=f"purge compaction of {path}", opts=opts)
    instants = sorted({str(r["timestamp"]) for r in rows if r["timestamp"]})
    log.info("compacted %d partitions of %s (instants %s)", len(partitions), path, instants)
    return instants


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


def redact_quarantine(spark: SparkSession, settings: Settings, needles: Sequence[Needle]) -> int:
    """Null the raw bytes and record text of quarantine rows that contain an identifier; rows redacted."""
    path = settings.table.effective_quarantine_path
    if not needles or not storage.exists(spark, f"{path}/.hoodie/hoodie.properties"):
        return 0
    rows = spark.read.format("hudi").load(path)
    text = F.coalesce(F.col("raw_value").cast("string"), F.lit("")).alias("raw_text")
    record = F.coalesce(F.col("record_json"), F.lit(""))
    hit = F.lit(False)
    for n in needles:
        hit = hit | (F.instr(text, n.value) > 0) | (F.instr(record, n.value) > 0)
    columns = list(table.QUARANTINE_COLUMNS)
    hits = rows.where(hit).select(*columns)
    redacted = (
        hits.withColumn("raw_value", F.lit(None).cast("binary"))
        .withColumn("record_json", F.lit(None).cast("string"))
        .withColumn("reason", F.concat(F.col("reason"), F.lit(REDACTED_REASON_SUFFIX)))
        .persist()
    )
    try:
        count = redacted.count()
        if count:
            writer = redacted.write.format("hudi").options(**table.quarantine_options(settings)).mode("append")
            retry.on_conflict(
                lambda: writer.save(path), what=f"redaction in {path}", attempts=settings.table.conflict_retries
            )
    finally:
        redacted.unpersist()
    log.info("redacted %d quarantine rows in %s", count, path)
    return count
