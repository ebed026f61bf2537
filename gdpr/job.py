"""The GDPR job: resolve erasure requests to record keys, delete them, optionally purge and verify.

Wiring only; the stages live in :mod:`gdpr.requests`, :mod:`gdpr.resolve`, :mod:`gdpr.purge`,
:mod:`gdpr.verify` (with the matching rules of :mod:`gdpr.match`) and :mod:`gdpr.ledger`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from gdpr import ledger, purge, resolve
from gdpr.ledger import LedgerEntry
from gdpr.match import AvroDecoder, HashedIdentifier, Identifier, Matcher, json_decoder
from gdpr.requests import RECORD_KEY_KIND, ErasureRequest, ParsedRequests, restrict
from gdpr.verify import verify
from loglake import retry, storage, table
from loglake import shape as log_shape
from loglake.errors import TableError
from loglake.settings import Settings
from loglake.shape import LogShape
from loglake.spark import get_spark
from loglake.timer import StageTimer

log = logging.getLogger(__name__)

# Ledger requests that are not done: received but never deleted, or shown to still have copies.
BACKLOG_STATUSES = (ledger.RECEIVED, ledger.UNVERIFIED)
KEY_FIELDS = frozenset({table.RECORD_KEY, "_hoodie_record_key"})


@dataclass
class DeleteResult:
    """What one run of ``loglake gdpr delete`` or ``purge`` did; printed as JSON, asserted on by tests."""

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
    # Accepted requests worth a second look (an identifier with whitespace at either end).
    notes: list[dict[str, str]] = field(default_factory=list)
    quarantine_rows_redacted: int = 0
    purge: dict[str, Any] | None = None
    verification: dict[str, Any] | None = None
    # Requests of earlier runs (deleted, not yet verified) that this purge took up, and every request
    # this run brought to "verified".
    earlier_requests: list[str] = field(default_factory=list)
    completed_requests: list[str] = field(default_factory=list)
    kafka_copies: list[dict[str, Any]] | None = None
    ledger_path: str | None = None
    ledger_backlog: int | None = None
    ledger_status: dict[str, int] | None = None  # requests per status after this run
    # Age of the oldest delete whose files are not yet purged and verified.
    oldest_pending_purge_seconds: float | None = None

    @property
    def verified(self) -> bool | None:
        return None if self.verification is None else bool(self.verification["clean"])


def _file_groups(spark: SparkSession, path: str) -> set[tuple[str, str]]:
    """(partition folder, file group id) of every data file of the table, from a listing (no data read)."""
    return {(f.partition, f.file_group) for f in table.data_files(spark, path)}


def message_decoders(shape: LogShape | None = None) -> list[Any]:
    """How the verifier and the redaction decode a quarantined message by meaning: JSON, or Avro with
    the messages' schema as the log shape has it (the one the stream decodes with; default LogBatch).
    A message neither reads whole is searched raw."""
    return [json_decoder, AvroDecoder((shape or log_shape.default_shape()).schema)]


def matcher_for(
    requests: Iterable[ErasureRequest],
    hashed: Iterable[HashedIdentifier] = (),
    salt: str = "",
    *,
    subject_columns: Iterable[str] | None = None,
) -> Matcher:
    """The identifiers of ``requests`` (and ``hashed`` ones of earlier runs) under the table's matching
    rules, ``subject_columns`` being its identifier fields."""
    requests = list(requests)
    hashed = list(hashed)
    # A request erased before subject_columns changed is known only by its hash, which is looked for
    # in identifier fields alone: its column stays one, or its leftovers would pass unseen.
    earlier = {h.kind for h in hashed if h.kind != RECORD_KEY_KIND}
    return Matcher(
        identifiers=[Identifier(r.request_id, r.value) for r in requests if r.kind != RECORD_KEY_KIND],
        record_keys=[Identifier(r.request_id, r.value) for r in requests if r.kind == RECORD_KEY_KIND],
        hashed=hashed,
        salt=salt,
        identifier_fields=frozenset(
            subject_columns if subject_columns is not None else log_shape.default_shape().subject_columns
        )
        | earlier,
        key_fields=KEY_FIELDS,
    )


def kafka_retention(settings: Settings, topic: str) -> dict[str, Any]:
    """When raw copies in a Kafka topic expire: the job cannot delete them, so the report says when they go."""
    from confluent_kafka.admin import AdminClient, ConfigResource

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


def _entry(
    r: ErasureRequest, previous: dict[str, LedgerEntry], salt: str, run_id: str, now: datetime, **changes: Any
) -> LedgerEntry:
    """The ledger row of ``r`` with ``changes``, keeping what earlier runs recorded."""
    old = previous.get(r.request_id)
    base = LedgerEntry(
        request_id=r.request_id,
        subject_kind=r.kind,
        subject_hash=ledger.subject_hash(salt, r),
        source=r.source,
        received_at=old.received_at if old else now,
        completed_at=None,
        status=ledger.RECEIVED,
        records_deleted=old.records_deleted if old else 0,
        verified=None,
        verification_hits=None,
        run_id=run_id,
        partitions=old.partitions if old else None,
    )
    return replace(base, **changes)


@dataclass
class _Deletion:
    """What the delete stage found and removed, per request, partition and Kafka topic."""

    per_request: dict[str, int] = field(default_factory=dict)
    partitions_of: dict[str, set[str]] = field(default_factory=dict)
    partitions: dict[str, dict[str, int]] = field(default_factory=dict)  # event_date -> {records, file_groups}
    topics: set[str] = field(default_factory=set)
    found: int = 0
    deleted: int = 0
    groups_touched: int = 0


def run_delete(
    settings: Settings,
    parsed: ParsedRequests,
    *,
    dry_run: bool = False,
    do_purge: bool = False,
    spark: SparkSession | None = None,
    shape: LogShape | None = None,
) -> DeleteResult:
    """Erase the subjects of ``parsed.requests`` from the log table (see module docstring).

    With ``do_purge`` the run also purges and verifies every erasure still pending in the ledger
    or in the table's files, so it may be called with no requests at all. ``shape``: the log's shape
    (default: loaded from ``settings``, as the stream loads it).
    """
    path = settings.table.require_path()
    shape = shape or log_shape.load(settings)
    # The caller may have parsed without these settings; a request for another column is refused here
    # like a bad line, before the ledger records it as received.
    parsed = restrict(parsed, shape.subject_columns)
    decoders = message_decoders(shape)
    spark = spark or get_spark(settings, app_name=f"loglake-gdpr[{settings.table.name}]")
    if not table.table_exists(spark, path):
        raise TableError(f"table.path={path} is not a Hudi table (no .hoodie/hoodie.properties there); nothing deleted")
    settings = table.resolve_version(spark, settings, path, settings.table.effective_quarantine_path)
    run_id = uuid.uuid4().hex
    timer = StageTimer()
    requests = parsed.requests
    salt = ledger.salt(spark, settings) if not dry_run else ""
    previous = ledger.read(spark, settings) if not dry_run else {}

    if not dry_run and requests:
        now = datetime.now(UTC)
        ledger.write(spark, settings, [_entry(r, previous, salt, run_id, now) for r in requests])
    timer.lap("ledger_received")

    deletion = _delete(spark, settings, shape, requests, run_id, dry_run, timer) if requests else _Deletion()
    total_groups = len(_file_groups(spark, path))
    timer.lap("list_file_groups")

    result = DeleteResult(
        run_id=run_id,
        table_path=path,
        dry_run=dry_run,
        requests=len(requests),
        rejected=[{"source": r.source, "reason": r.reason} for r in parsed.rejections],
        notes=[{"source": r.source, "note": r.reason} for r in parsed.notes()],
        subjects=len({(r.kind, r.value) for r in requests}),
        record_keys_found=deletion.found,
        records_deleted=deletion.deleted,
        file_groups_touched=deletion.groups_touched,
        file_groups_total=total_groups,
        partitions=dict(sorted(deletion.partitions.items())),
        requests_without_records=sorted(r.request_id for r in requests if r.request_id not in deletion.per_request),
        seconds=timer.seconds,
        ledger_path=None if dry_run else settings.ledger_path,
    )
    if dry_run:
        result.seconds["total"] = round(sum(timer.seconds.values()), 3)
        return result

    if requests:
        # Quarantined messages of the subjects lose their raw bytes now, with the delete; the old file
        # versions go at the next purge's clean.
        result.quarantine_rows_redacted = purge.redact_quarantine(
            spark, settings, matcher_for(requests, subject_columns=shape.subject_columns), decoders
        )
        timer.lap("redact_quarantine")
        _record_deleted(spark, settings, requests, previous, deletion, salt, run_id)
        timer.lap("ledger_deleted")

    if do_purge:
        purge_and_verify(spark, settings, requests, result, timer, salt, run_id, decoders=decoders, shape=shape)
    result.kafka_copies = [kafka_retention(settings, t) for t in sorted(deletion.topics | {settings.kafka.topic})]
    timer.lap("kafka_retention")

    _ledger_state(spark, settings, result)
    timer.lap("ledger_read")
    result.seconds = timer.seconds
    result.seconds["total"] = round(sum(timer.seconds.values()), 3)
    return result


def _delete(
    spark: SparkSession,
    settings: Settings,
    shape: LogShape,
    requests: list[ErasureRequest],
    run_id: str,
    dry_run: bool,
    timer: StageTimer,
) -> _Deletion:
    """Resolve ``requests`` to the records that match them and (unless ``dry_run``) delete those keys."""
    path = settings.table.require_path()
    out = _Deletion()
    snapshot = spark.read.format("hudi").load(path)
    matches = resolve.match_records(snapshot, requests, subject_columns=shape.subject_columns).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    try:
        by_request = matches.groupBy("request_id", table.PARTITION_FIELD, "kafka_topic").agg(F.count("*").alias("n"))
        for row in by_request.collect():
            out.per_request[row["request_id"]] = out.per_request.get(row["request_id"], 0) + row["n"]
            out.partitions_of.setdefault(row["request_id"], set()).add(row[table.PARTITION_FIELD])
            if row["kafka_topic"]:
                out.topics.add(row["kafka_topic"])
        per_group = (
            matches.groupBy(table.PARTITION_FIELD, "file_group")
            .agg(F.countDistinct(table.RECORD_KEY).alias("records"))
            .collect()
        )
        keys = resolve.delete_keys(matches).persist(StorageLevel.MEMORY_AND_DISK)
        out.found = keys.count()
        timer.lap("resolve")
        for row in per_group:
            p = out.partitions.setdefault(row[table.PARTITION_FIELD], {"records": 0, "file_groups": 0})
            p["records"] += row["records"]
            p["file_groups"] += 1
        out.groups_touched = len(per_group)
        if out.found and not dry_run:
            writer = keys.write.format("hudi").options(**table.delete_options(settings)).mode("append")
            retry.on_conflict(
                lambda: writer.save(path),
                what=f"gdpr delete run {run_id} on {path}",
                attempts=settings.table.conflict_retries,
            )
            out.deleted = out.found
        keys.unpersist()
        timer.lap("delete")
    finally:
        matches.unpersist()
    return out


def _record_deleted(
    spark: SparkSession,
    settings: Settings,
    requests: list[ErasureRequest],
    previous: dict[str, LedgerEntry],
    deletion: _Deletion,
    salt: str,
    run_id: str,
) -> None:
    """The ledger's ``deleted`` rows: how many records each request's delete removed, and where."""
    now = datetime.now(UTC)
    ledger.write(
        spark,
        settings,
        [
            _entry(
                r,
                previous,
                salt,
                run_id,
                now,
                status=ledger.DELETED,
                deleted_at=now,
                records_deleted=(previous[r.request_id].records_deleted if r.request_id in previous else 0)
                + deletion.per_request.get(r.request_id, 0),
                partitions=sorted(f"{table.PARTITION_FIELD}={p}" for p in deletion.partitions_of.get(r.request_id, ())),
            )
            for r in requests
        ],
    )


def _ledger_state(spark: SparkSession, settings: Settings, result: DeleteResult) -> None:
    """The ledger after this run, into ``result``: backlog, requests per status, oldest pending purge."""
    entries = ledger.read(spark, settings)
    result.ledger_backlog = sum(1 for e in entries.values() if e.status in BACKLOG_STATUSES)
    result.ledger_status = {s: sum(1 for e in entries.values() if e.status == s) for s in ledger.STATUSES}
    pending = [e.deleted_at for e in entries.values() if e.status in ledger.PENDING_PURGE and e.deleted_at]
    if pending:
        # Spark hands timestamps back as naive local times; astimezone reads a naive one as local.
        oldest = min(p.astimezone(UTC) for p in pending)
        result.oldest_pending_purge_seconds = round((datetime.now(UTC) - oldest).total_seconds(), 3)


def purge_and_verify(
    spark: SparkSession,
    settings: Settings,
    requests: list[ErasureRequest],
    result: DeleteResult,
    timer: StageTimer,
    salt: str,
    run_id: str,
    *,
    decoders: Sequence[Any],
    shape: LogShape,
) -> None:
    """Compact every partition whose latest files still hold deletes, clean both tables, then scan every file.

    Covers this run's requests and every request the ledger holds as deleted but not verified; those
    are checked by the ledger's salted hash, since this run was not given their identifiers.
    Quarantined messages are decoded with ``decoders`` (:func:`message_decoders`).
    """
    path = settings.table.require_path()
    quarantine_path = settings.table.effective_quarantine_path
    entries = ledger.read(spark, settings)
    own = {r.request_id for r in requests}
    pending = {i: e for i, e in entries.items() if e.status in ledger.PENDING_PURGE}
    result.earlier_requests = sorted(i for i in pending if i not in own)

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
        partitions = purge.pending_deletes(spark, settings, path)
        log.info("purge of %s: delete blocks in the latest files of %d partitions", path, len(partitions))
        purge.compact_partitions(spark, settings, list(partitions), outcome)
        outcome.files_cleaned = purge.clean(
            spark, settings, path, purge.PURGE_CATALOG_PREFIX, table.service_options(settings)
        )
        if storage.exists(spark, f"{quarantine_path}/.hoodie/hoodie.properties"):
            outcome.files_cleaned += purge.clean(
                spark, settings, quarantine_path, "loglake_purge_quarantine", table.quarantine_options(settings)
            )
    timer.lap("purge")
    result.purge = asdict(outcome)

    by_id = {r.request_id: r for r in requests}
    now = datetime.now(UTC)
    still = set(outcome.partitions_pending)
    purged = {i for i, e in pending.items() if outcome.refused is None and not still.intersection(e.partitions or [])}
    if purged:
        ledger.write(
            spark,
            settings,
            [replace(pending[i], status=ledger.PURGED, purged_at=now, run_id=run_id) for i in sorted(purged)],
        )
    timer.lap("ledger_purged")

    hashed = [HashedIdentifier(i, e.subject_kind, e.subject_hash) for i, e in pending.items() if i not in by_id]
    matcher = matcher_for(requests, hashed, salt, subject_columns=shape.subject_columns)
    files = storage.list_files(spark, path) + storage.list_files(spark, quarantine_path)
    checked = verify(spark, [f for f in files if not f.name.endswith(".crc")], matcher, decoders)
    clean = checked.clean and outcome.refused is None and not outcome.partitions_pending
    result.verification = {
        **asdict(checked),
        "clean": clean,
        # How each request was checked: by value everywhere, or (earlier runs) by hash in identifier fields.
        "checked_by_value": sorted(own),
        "checked_by_hash": sorted(h.request_id for h in hashed),
    }
    timer.lap("verify")

    hits = checked.requests_hit()
    now = datetime.now(UTC)
    updates = []
    for i, e in sorted(pending.items()):
        ok = i in purged and hits.get(i, 0) == 0
        updates.append(
            replace(
                e,
                status=ledger.VERIFIED if ok else ledger.UNVERIFIED,
                purged_at=now if i in purged and e.purged_at is None else e.purged_at,
                verified=ok,
                verified_at=now if ok else None,
                completed_at=now if ok else None,
                verification_hits=hits.get(i, 0),
                run_id=run_id,
            )
        )
        if ok:
            result.completed_requests.append(i)
    ledger.write(spark, settings, updates)
    timer.lap("ledger_verified")
