"""The GDPR job: resolve erasure requests to record keys, delete them, optionally purge and verify.

Wiring only; the stages live in :mod:`gdpr.requests`, :mod:`gdpr.resolve`, :mod:`gdpr.purge`,
:mod:`gdpr.verify` and :mod:`gdpr.ledger`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from gdpr import ledger, purge, resolve
from gdpr.ledger import LedgerEntry
from gdpr.requests import ErasureRequest, ParsedRequests
from gdpr.verify import Needle, verify
from loglake import retry, storage, table
from loglake.errors import TableError
from loglake.settings import Settings
from loglake.spark import get_spark
from loglake.timer import StageTimer

log = logging.getLogger(__name__)


BACKLOG_STATUSES = ("received", "unverified")


@dataclass
class DeleteResult:
    """What one run of ``loglake gdpr delete`` did; printed as JSON, asserted on by tests."""

    run_id: str
    table_path: str
    dry_run: bool
    requests: int
    rejected: list[dict[str, str]]
    subjects: int
    record_keys_found: int
    records_deleted: int
    file_groups_touched: int
    file_groups_total: int
    partitions: dict[str, dict[str, int]]  # event_date -> {records, file_groups}
    requests_without_records: list[str]
    seconds: dict[str, float]
    purge: dict[str, Any] | None = None
    verification: dict[str, Any] | None = None
    kafka_copies: dict[str, Any] | None = None
    ledger_path: str | None = None
    # Ledger requests not done after this run: received but never completed, or purged but unverified.
    ledger_backlog: int | None = None

    @property
    def verified(self) -> bool | None:
        return None if self.verification is None else bool(self.verification["clean"])


def _file_groups(spark: SparkSession, path: str) -> set[tuple[str, str]]:
    """(partition folder, file group id) of every data file of the table, from a listing (no data read)."""
    return {(f.partition, f.file_group) for f in table.data_files(spark, path)}


def _needles(requests: list[ErasureRequest]) -> list[Needle]:
    # Record keys carry no personal data (loglake.table); the subjects' identifiers are what must go.
    return [Needle(r.request_id, r.value) for r in requests if r.kind != "record_key"]


def kafka_retention(settings: Settings) -> dict[str, Any]:
    """When raw copies in Kafka expire: the job cannot delete them, so the report says when they go."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    topic = settings.kafka.topic
    info: dict[str, Any] = {"topic": topic}
    try:
        admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers, "socket.timeout.ms": 10000})
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        configs = admin.describe_configs([resource], request_timeout=15)[resource].result(timeout=15)
        retention_ms = int(configs["retention.ms"].value)
    except Exception as exc:
        info["error"] = f"could not read retention.ms of topic {topic} from {settings.kafka.bootstrap_servers}: {exc}"
        return info
    info["retention_ms"] = retention_ms
    if retention_ms < 0:
        info["expire_by"] = None
        info["note"] = "retention.ms is -1: Kafka keeps the raw messages forever; shorten it or compact the topic"
    else:
        expire = datetime.now(UTC).timestamp() + retention_ms / 1000
        info["expire_by"] = datetime.fromtimestamp(expire, UTC).isoformat(timespec="seconds")
        info["note"] = "messages already in Kafka still hold the subjects' records until this time (topic retention)"
    return info


def run_delete(
    settings: Settings,
    parsed: ParsedRequests,
    *,
    dry_run: bool = False,
    do_purge: bool = False,
    spark: SparkSession | None = None,
) -> DeleteResult:
    """Erase the subjects of ``parsed.requests`` from the log table (see module docstring)."""
    path = settings.table.require_path()
    spark = spark or get_spark(settings, app_name=f"loglake-gdpr[{settings.table.name}]")
    if not table.table_exists(spark, path):
        raise TableError(f"table.path={path} is not a Hudi table (no .hoodie/hoodie.properties there); nothing deleted")
    run_id = uuid.uuid4().hex
    timer = StageTimer()
    requests = parsed.requests
    received = datetime.now(UTC)
    salt = ledger.salt(spark, settings) if not dry_run else ""

    if not dry_run and requests:
        previous = ledger.read(spark, settings)
        ledger.write(
            spark,
            settings,
            [
                LedgerEntry(
                    request_id=r.request_id,
                    subject_kind=r.kind,
                    subject_hash=ledger.subject_hash(salt, r),
                    source=r.source,
                    received_at=previous[r.request_id].received_at if r.request_id in previous else received,
                    completed_at=None,
                    status="received",
                    records_deleted=previous[r.request_id].records_deleted if r.request_id in previous else 0,
                    verified=None,
                    verification_hits=None,
                    run_id=run_id,
                )
                for r in requests
            ],
        )
    timer.lap("ledger_received")

    snapshot = spark.read.format("hudi").load(path)
    matches = resolve.match_records(snapshot, requests).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        per_request = {
            r["request_id"]: r["n"] for r in matches.groupBy("request_id").agg(F.count("*").alias("n")).collect()
        }
        per_group = (
            matches.groupBy(table.PARTITION_FIELD, "file_group")
            .agg(F.countDistinct(table.RECORD_KEY).alias("records"))
            .collect()
        )
        keys = resolve.delete_keys(matches).persist(StorageLevel.MEMORY_AND_DISK)
        found = keys.count()
        timer.lap("resolve")
        partitions: dict[str, dict[str, int]] = {}
        for row in per_group:
            p = partitions.setdefault(row[table.PARTITION_FIELD], {"records": 0, "file_groups": 0})
            p["records"] += row["records"]
            p["file_groups"] += 1
        total_groups = len(_file_groups(spark, path))
        timer.lap("list_file_groups")

        deleted = 0
        if found and not dry_run:
            writer = keys.write.format("hudi").options(**table.delete_options(settings)).mode("append")
            retry.on_conflict(
                lambda: writer.save(path),
                what=f"gdpr delete run {run_id} on {path}",
                attempts=settings.table.conflict_retries,
            )
            deleted = found
        keys.unpersist()
        timer.lap("delete")
    finally:
        matches.unpersist()

    result = DeleteResult(
        run_id=run_id,
        table_path=path,
        dry_run=dry_run,
        requests=len(requests),
        rejected=[{"source": r.source, "reason": r.reason} for r in parsed.rejections],
        subjects=len({(r.kind, r.value) for r in requests}),
        record_keys_found=found,
        records_deleted=deleted,
        file_groups_touched=len(per_group),
        file_groups_total=total_groups,
        partitions=dict(sorted(partitions.items())),
        requests_without_records=sorted(r.request_id for r in requests if r.request_id not in per_request),
        seconds=timer.seconds,
        ledger_path=None if dry_run else settings.ledger_path,
    )
    if dry_run:
        result.seconds["total"] = round(sum(timer.seconds.values()), 3)
        return result

    if do_purge:
        purge_and_verify(spark, settings, requests, sorted(partitions), result, timer)
    result.kafka_copies = kafka_retention(settings)

    completed = datetime.now(UTC)
    previous = ledger.read(spark, settings)
    status = "deleted" if result.verification is None else ("verified" if result.verified else "unverified")
    ledger.write(
        spark,
        settings,
        [
            LedgerEntry(
                request_id=r.request_id,
                subject_kind=r.kind,
                subject_hash=ledger.subject_hash(salt, r),
                source=r.source,
                received_at=previous[r.request_id].received_at if r.request_id in previous else received,
                completed_at=completed,
                status=status,
                records_deleted=(previous[r.request_id].records_deleted if r.request_id in previous else 0)
                + per_request.get(r.request_id, 0),
                verified=result.verified,
                verification_hits=None
                if result.verification is None
                else sum(1 for f in result.verification["files_with_hits"].values() if r.request_id in f),
                run_id=run_id,
            )
            for r in requests
        ],
    )
    result.ledger_backlog = sum(1 for e in ledger.read(spark, settings).values() if e.status in BACKLOG_STATUSES)
    timer.lap("ledger_completed")
    result.seconds = timer.seconds
    result.seconds["total"] = round(sum(timer.seconds.values()), 3)
    return result


def purge_and_verify(
    spark: SparkSession,
    settings: Settings,
    requests: list[ErasureRequest],
    partitions: list[str],
    result: DeleteResult,
    timer: StageTimer,
) -> None:
    """Compact the partitions that held the records, clean, redact quarantine, then scan every file."""
    path = settings.table.require_path()
    quarantine_path = settings.table.effective_quarantine_path
    outcome = purge.PurgeResult()
    pinned = {p: purge.savepoints(spark, p) for p in (path, quarantine_path)}
    pinned = {p: s for p, s in pinned.items() if s}
    if pinned:
        outcome.refused = (
            "savepoints keep older file slices from being cleaned: "
            + "; ".join(f"{p}: {', '.join(s)}" for p, s in pinned.items())
            + ". Delete them (CALL delete_savepoint) and run `loglake gdpr purge` again"
        )
        log.error("purge refused: %s", outcome.refused)
    else:
        outcome.compaction_instants = purge.compact_partitions(spark, settings, partitions)
        outcome.partitions_compacted = partitions
        outcome.files_cleaned = purge.clean(
            spark, settings, path, "loglake_purge_logs", table.service_options(settings)
        )
        outcome.quarantine_rows_redacted = purge.redact_quarantine(spark, settings, _needles(requests))
        if outcome.quarantine_rows_redacted:
            outcome.files_cleaned += purge.clean(
                spark, settings, quarantine_path, "loglake_purge_quarantine", table.quarantine_options(settings)
            )
    timer.lap("purge")
    result.purge = asdict(outcome)
    files = storage.list_files(spark, path) + storage.list_files(spark, quarantine_path)
    checked = verify(spark, [f for f in files if not f.name.endswith(".crc")], _needles(requests))
    result.verification = {**asdict(checked), "clean": checked.clean and outcome.refused is None}
    timer.lap("verify")
