"""The erasure ledger: one row per request, holding a salted hash of the subject, never the identifier.

A small copy-on-write Hudi table beside the log table (``<table-path>_gdpr_ledger``), keyed by
request id, so re-running a request updates its row instead of adding one. It proves what was
erased and when, and lets anyone holding an identifier (and the salt) check that it was.

A request's life: ``received`` (read, not yet deleted), ``deleted`` (its records are gone from every
query), ``purged`` (the files that held them were compacted away and cleaned), then ``verified``
(no file holds the identifier) or ``unverified`` (some file still does; the report says where).
Each step keeps its time, and the partitions that held the subject's records, so a later purge can
finish what an earlier delete started without being given the identifier again.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from gdpr.match import subject_digest
from gdpr.requests import ErasureRequest
from loglake import retry, storage
from loglake.errors import ConfigError
from loglake.settings import Settings
from loglake.table import lock_options

SCHEMA = T.StructType(
    [
        T.StructField("request_id", T.StringType(), False),
        T.StructField("subject_kind", T.StringType(), False),
        T.StructField("subject_hash", T.StringType(), False),
        T.StructField("source", T.StringType(), True),
        T.StructField("received_at", T.TimestampType(), False),
        T.StructField("completed_at", T.TimestampType(), True),
        T.StructField("status", T.StringType(), False),
        T.StructField("records_deleted", T.LongType(), False),
        T.StructField("verified", T.BooleanType(), True),
        T.StructField("verification_hits", T.LongType(), True),
        T.StructField("run_id", T.StringType(), False),
        # Added after the first release: nullable and last, so older ledgers take them on write.
        T.StructField("deleted_at", T.TimestampType(), True),
        T.StructField("purged_at", T.TimestampType(), True),
        T.StructField("verified_at", T.TimestampType(), True),
        T.StructField("partitions", T.ArrayType(T.StringType(), False), True),
    ]
)

RECEIVED, DELETED, PURGED, VERIFIED, UNVERIFIED = "received", "deleted", "purged", "verified", "unverified"
STATUSES = (RECEIVED, DELETED, PURGED, VERIFIED, UNVERIFIED)
# Deleted (or purged) but not yet shown to be gone from every file: what a purge without new requests finishes.
PENDING_PURGE = (DELETED, PURGED, UNVERIFIED)


@dataclass(frozen=True)
class LedgerEntry:
    request_id: str
    subject_kind: str
    subject_hash: str
    source: str
    received_at: datetime
    completed_at: datetime | None
    status: str  # received | deleted | purged | verified | unverified
    records_deleted: int
    verified: bool | None
    verification_hits: int | None
    run_id: str
    deleted_at: datetime | None = None
    purged_at: datetime | None = None
    verified_at: datetime | None = None
    partitions: list[str] | None = None


def subject_hash(salt: str, request: ErasureRequest) -> str:
    """SHA-256 of salt, kind and identifier: the same subject always hashes alike under one salt."""
    return subject_digest(salt, request.kind, request.value)


def salt(spark: SparkSession, settings: Settings) -> str:
    """The configured salt, else one created once beside the ledger and reused by every later run."""
    if settings.gdpr.ledger_salt:
        return settings.gdpr.ledger_salt
    path = f"{settings.ledger_path}/.salt"
    storage.create_text(spark, path, secrets.token_hex(32))
    text = storage.read_text(spark, path)
    if not text:
        raise ConfigError(f"setting gdpr.ledger_salt is unset and {path} could not be created or read")
    return text.strip()


def options(settings: Settings) -> dict[str, str]:
    lock = lock_options(settings)
    return {
        "hoodie.table.name": f"{settings.table.name}_gdpr_ledger",
        "hoodie.datasource.write.recordkey.field": "request_id",
        "hoodie.datasource.write.partitionpath.field": "",
        "hoodie.datasource.write.keygenerator.class": "org.apache.hudi.keygen.NonpartitionedKeyGenerator",
        "hoodie.datasource.write.table.type": "COPY_ON_WRITE",
        "hoodie.table.type": "COPY_ON_WRITE",
        "hoodie.datasource.write.operation": "upsert",
        "hoodie.record.merge.mode": "COMMIT_TIME_ORDERING",
        "hoodie.datasource.meta.sync.enable": "false",
        # Two delete jobs may finish at once; the ledger takes the same lock discipline as the table.
        **lock,
        "hoodie.write.concurrency.mode": "OPTIMISTIC_CONCURRENCY_CONTROL",
    }


def read(spark: SparkSession, settings: Settings) -> dict[str, LedgerEntry]:
    """Ledger rows by request id (empty before the first run)."""
    path = settings.ledger_path
    if not storage.exists(spark, f"{path}/.hoodie/hoodie.properties"):
        return {}
    df = spark.read.format("hudi").load(path)
    # A ledger written before the lifecycle columns existed reads them as null.
    columns = [F.col(f.name) if f.name in df.columns else F.lit(None).cast(f.dataType).alias(f.name) for f in SCHEMA]
    rows = df.select(*columns).collect()
    return {r["request_id"]: LedgerEntry(**r.asDict()) for r in rows}


def write(spark: SparkSession, settings: Settings, entries: Sequence[LedgerEntry]) -> None:
    if not entries:
        return
    df = spark.createDataFrame([tuple(e.__dict__[f] for f in SCHEMA.fieldNames()) for e in entries], SCHEMA)
    writer = df.write.format("hudi").options(**options(settings)).mode("append")
    retry.on_conflict(
        lambda: writer.save(settings.ledger_path),
        what=f"ledger {settings.ledger_path}",
        attempts=settings.table.conflict_retries,
    )
