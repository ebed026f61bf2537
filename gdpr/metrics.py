"""The GDPR job's metrics (``loglake_gdpr_*``), pushed to a Pushgateway at the end of each run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge

from gdpr.job import DeleteResult
from loglake.metrics import push


@dataclass
class GdprMetrics:
    """One run's figures; gauges, because a transient job's registry lives for one run."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.duration = Gauge("loglake_gdpr_run_duration_seconds", "Wall time of the last run.", registry=r)
        self.requests = Gauge(
            "loglake_gdpr_requests",
            "Erasure requests in the last run, by outcome (accepted, rejected).",
            ["outcome"],
            registry=r,
        )
        self.records_deleted = Gauge("loglake_gdpr_records_deleted", "Records deleted by the last run.", registry=r)
        self.file_groups_touched = Gauge(
            "loglake_gdpr_file_groups_touched", "File groups the last run's deletes wrote to.", registry=r
        )
        self.file_groups_total = Gauge("loglake_gdpr_file_groups_total", "File groups of the table.", registry=r)
        self.verification_hits = Gauge(
            "loglake_gdpr_verification_hits",
            "Identifiers of erased subjects still found in files after the last purge, one per (file, column, "
            "kind of match, request) (must be 0).",
            registry=r,
        )
        self.last_success = Gauge(
            "loglake_gdpr_last_success_timestamp_seconds",
            "Unix time the last run succeeded; feeds the alert on no successful erasure in 24 h.",
            registry=r,
        )
        self.ledger_backlog = Gauge(
            "loglake_gdpr_ledger_backlog",
            "Ledger requests not done after the last run: received but never deleted, or not verified (shown to "
            "still have copies).",
            registry=r,
        )
        self.ledger_requests = Gauge(
            "loglake_gdpr_ledger_requests",
            "Ledger requests by status after the last run (received, deleted, purged, verified, unverified).",
            ["status"],
            registry=r,
        )
        self.oldest_pending_purge = Gauge(
            "loglake_gdpr_oldest_pending_purge_seconds",
            "Age of the oldest delete whose files are not yet purged and verified (0 when none is).",
            registry=r,
        )
        self.partitions_expired = Gauge(
            "loglake_gdpr_partitions_expired", "Partitions dropped by the last retention run.", registry=r
        )

    def observe(self, result: DeleteResult) -> None:
        """The figures of one ``gdpr delete`` run; a run counts as a success unless dry or unverified."""
        self.duration.set(result.seconds.get("total", 0.0))
        self.requests.labels(outcome="accepted").set(result.requests)
        self.requests.labels(outcome="rejected").set(len(result.rejected))
        self.records_deleted.set(result.records_deleted)
        self.file_groups_touched.set(result.file_groups_touched)
        self.file_groups_total.set(result.file_groups_total)
        if result.verification is not None:
            self.verification_hits.set(result.verification["hits"])
        if result.ledger_backlog is not None:
            self.ledger_backlog.set(result.ledger_backlog)
        for status, count in (result.ledger_status or {}).items():
            self.ledger_requests.labels(status=status).set(count)
        if result.ledger_status is not None:
            self.oldest_pending_purge.set(result.oldest_pending_purge_seconds or 0)
        if not result.dry_run and result.verified is not False:
            self.succeeded()

    def succeeded(self) -> None:
        self.last_success.set(time.time())

    def push(self, gateway: str, job: str, table_name: str) -> None:
        push(self.registry, gateway, job=job, grouping_key={"table": table_name})
