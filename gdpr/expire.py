"""Retention: drop whole ``event_date`` partitions older than a limit, then clean their files away."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import SparkSession

from gdpr import purge
from loglake import catalog, retry, storage, table
from loglake.errors import ConfigError, TableError
from loglake.settings import Settings, parse_duration
from loglake.spark import get_spark

log = logging.getLogger(__name__)


@dataclass
class ExpireResult:
    table_path: str
    cutoff: str  # partitions before this date were dropped
    partitions_dropped: list[str]
    partitions_kept: int
    files_cleaned: int
    dry_run: bool
    seconds: float
    # The catalog tables the dropped partitions were removed from (empty when the catalog is off).
    catalog_tables: list[str] = field(default_factory=list)


def older_than_days(text: str) -> int:
    """``30d`` or ``720h`` -> whole days (retention works on whole daily partitions)."""
    cleaned = text.strip().lower()
    if cleaned.endswith("d") and cleaned[:-1].isdigit():
        days = int(cleaned[:-1])
    else:
        try:
            days = int(parse_duration(cleaned) // 86_400)
        except ConfigError:
            raise ConfigError(f"--older-than {text!r}: expected days like '30d'") from None
    if days < 1:
        raise ConfigError(f"--older-than {text!r}: must be at least one day")
    return days


def expired_partitions(partitions: list[str], cutoff: date) -> list[str]:
    """The ``event_date=YYYY-MM-DD`` folders whose date is before ``cutoff`` (others, and odd names, kept)."""
    prefix = f"{table.PARTITION_FIELD}="
    old = []
    for name in partitions:
        if not name.startswith(prefix):
            continue
        try:
            day = date.fromisoformat(name[len(prefix) :])
        except ValueError:
            continue
        if day < cutoff:
            old.append(name)
    return sorted(old)


def run_expire(
    settings: Settings,
    days: int,
    *,
    dry_run: bool = False,
    today: date | None = None,
    spark: SparkSession | None = None,
) -> ExpireResult:
    """Drop the partitions older than ``days`` (UTC dates) with Hudi's delete_partition, then clean.

    With a catalog, the partitions are dropped there too: a partition listed in the catalog whose
    folder is gone fails Athena's queries of the whole table. The sync runs after the commit; if the
    metastore does not answer, CatalogSyncError says so once the data is gone, and ``loglake catalog
    sync`` (or the stream's next sync) finishes the job.
    """
    started = time.monotonic()
    path = settings.table.require_path()
    spark = spark or get_spark(settings, app_name=f"loglake-gdpr-expire[{settings.table.name}]")
    if not table.table_exists(spark, path):
        raise TableError(f"table.path={path} is not a Hudi table (no .hoodie/hoodie.properties there); nothing dropped")
    settings = table.resolve_version(spark, settings, path)
    cutoff = (today or datetime.now(UTC).date()) - timedelta(days=days)
    partitions = [p for p in storage.list_dirs(spark, path) if not p.startswith(".")]
    old = expired_partitions(partitions, cutoff)
    cleaned = 0
    synced: list[str] = []
    if old and not dry_run:
        empty = spark.read.format("hudi").load(path).limit(0)
        opts = table.delete_options(settings)
        opts["hoodie.datasource.write.operation"] = "delete_partition"
        opts["hoodie.datasource.write.partitions.to.delete"] = ",".join(old)
        writer = empty.drop(*[c for c in empty.columns if c.startswith("_hoodie_")]).write.format("hudi")
        retry.on_conflict(
            lambda: writer.options(**opts).mode("append").save(path),
            what=f"expire of {len(old)} partitions in {path}",
            attempts=settings.table.conflict_retries,
        )
        cleaned = purge.clean(spark, settings, path, "loglake_expire", table.service_options(settings))
        log.info("dropped %d partitions before %s from %s", len(old), cutoff, path)
        if settings.catalog.active:
            synced = list(catalog.sync(spark, settings, "log").tables)
    return ExpireResult(
        table_path=path,
        cutoff=cutoff.isoformat(),
        partitions_dropped=old,
        partitions_kept=len([p for p in partitions if p.startswith(f"{table.PARTITION_FIELD}=")]) - len(old),
        files_cleaned=cleaned,
        dry_run=dry_run,
        seconds=round(time.monotonic() - started, 3),
        catalog_tables=synced,
    )
