"""Generate the Grafana dashboards in dashboards/ (run: python deploy/grafana/build_dashboards.py).

Dashboards as code, standard library only: each panel is a title, a unit and PromQL queries. The
generated JSON is committed (Grafana provisions files) and tests/test_dashboards.py checks that it
matches this script and that every query returns a series from a real Prometheus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "loglake-prometheus"}
HERE = Path(__file__).resolve().parent

# (title, unit, [(legend, expr)], kind)
Panel = tuple[str, str, list[tuple[str, str]], str]

DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "loglake-ingest": (
        "loglake: ingest",
        [
            (
                "Records and messages per second",
                "ops",
                [
                    ("records/s", "sum(rate(loglake_ingest_records_written_total[5m]))"),
                    ("messages/s", "sum(rate(loglake_ingest_input_messages_total[5m]))"),
                ],
                "timeseries",
            ),
            (
                "Batch duration vs trigger interval",
                "s",
                [
                    ("last batch", "max(loglake_ingest_last_batch_duration_seconds)"),
                    ("trigger", "max(loglake_ingest_trigger_interval_seconds)"),
                    (
                        "p95",
                        "histogram_quantile(0.95, sum by (le) "
                        "(rate(loglake_ingest_batch_duration_seconds_bucket[15m])))",
                    ),
                ],
                "timeseries",
            ),
            (
                "Kafka lag (messages) per partition",
                "short",
                [("{{topic}}[{{partition}}]", "loglake_ingest_kafka_offsets_behind")],
                "timeseries",
            ),
            (
                "Kafka reachable / offsets skipped (24h)",
                "short",
                [
                    ("reachable (1 = yes)", "min(loglake_ingest_kafka_up)"),
                    # No series until a skip happens; 0 then is the truth, not a gap.
                    ("skipped", "sum(increase(loglake_ingest_kafka_skipped_offsets_total[24h])) or vector(0)"),
                ],
                "stat",
            ),
            (
                "Time in queue (oldest unprocessed message)",
                "s",
                [("{{topic}}[{{partition}}]", "loglake_ingest_kafka_oldest_unconsumed_age_seconds")],
                "timeseries",
            ),
            (
                "Quarantined rows per second by reason",
                "ops",
                [("{{reason_code}}", "sum by (reason_code) (rate(loglake_ingest_quarantined_total[5m]))")],
                "timeseries",
            ),
            (
                "Last commit age",
                "s",
                [("age", "time() - max(loglake_ingest_last_commit_timestamp_seconds)")],
                "stat",
            ),
            (
                "Batches committed / failed (1h)",
                "short",
                [
                    ("committed", "sum(increase(loglake_ingest_batches_total[1h]))"),
                    ("failed", "sum(increase(loglake_ingest_batch_failures_total[1h]))"),
                ],
                "stat",
            ),
        ],
    ),
    "loglake-table-services": (
        "loglake: table services",
        [
            (
                "Pending compaction plans",
                "short",
                [
                    ("seen by the stream", "max(loglake_ingest_pending_compactions)"),
                    ("after the last compaction round", "max by (table) (loglake_compaction_pending_plans)"),
                ],
                "timeseries",
            ),
            (
                "Oldest pending plan / uncompacted delta commit age",
                "s",
                [
                    ("oldest pending plan", "max(loglake_ingest_oldest_pending_compaction_age_seconds)"),
                    (
                        "oldest uncompacted delta commit",
                        "max(loglake_ingest_oldest_uncompacted_delta_commit_age_seconds)",
                    ),
                ],
                "timeseries",
            ),
            (
                "Uncompacted delta commits",
                "short",
                [("delta commits", "max(loglake_ingest_uncompacted_delta_commits)")],
                "timeseries",
            ),
            (
                "Files compacted and cleaned (last run)",
                "short",
                [
                    ("log files compacted", "max by (table) (loglake_compaction_log_files_compacted)"),
                    ("files cleaned", "max by (table) (loglake_compaction_files_cleaned)"),
                ],
                "stat",
            ),
            (
                "Base file bytes written and average size (last run)",
                "bytes",
                [
                    ("bytes written", "max by (table) (loglake_compaction_bytes_written)"),
                    (
                        "bytes per record",
                        "max by (table) (loglake_compaction_bytes_written)"
                        " / clamp_min(max by (table) (loglake_compaction_records_written), 1)",
                    ),
                ],
                "stat",
            ),
            (
                "File groups, small base files, log files still merged by readers",
                "short",
                [
                    ("file groups", "max by (table) (loglake_compaction_file_groups)"),
                    ("base files under the small-file limit", "max by (table) (loglake_compaction_small_base_files)"),
                    ("log files to merge", "max by (table) (loglake_compaction_log_files_to_merge)"),
                ],
                "timeseries",
            ),
            (
                "Average base file size",
                "bytes",
                [("{{table}}", "max by (table) (loglake_compaction_avg_base_file_bytes)")],
                "stat",
            ),
            (
                "Hudi: commit duration and write conflicts (Hudi's own metrics)",
                "short",
                [
                    ("{{job}} commit ms", 'max by (job) ({__name__=~".+_(deltacommit|commit)_duration"})'),
                    (
                        "{{job}} conflicts resolved",
                        'sum by (job) ({__name__=~".+_conflict_resolution_success_counter"})',
                    ),
                ],
                "timeseries",
            ),
            (
                "Since the last successful compaction",
                "s",
                [("{{table}}", "time() - max by (table) (loglake_compaction_last_success_timestamp_seconds)")],
                "stat",
            ),
        ],
    ),
    "loglake-gdpr": (
        "loglake: GDPR erasure",
        [
            (
                "Requests in the last run",
                "short",
                [("{{outcome}}", "sum by (outcome) (loglake_gdpr_requests)")],
                "stat",
            ),
            (
                "Records deleted (last run)",
                "short",
                [("{{table}}", "max by (table) (loglake_gdpr_records_deleted)")],
                "stat",
            ),
            (
                "File groups touched / total",
                "short",
                [
                    ("touched", "max by (table) (loglake_gdpr_file_groups_touched)"),
                    ("total", "max by (table) (loglake_gdpr_file_groups_total)"),
                ],
                "stat",
            ),
            (
                "Verification hits (must be 0)",
                "short",
                [("{{table}}", "max by (table) (loglake_gdpr_verification_hits)")],
                "stat",
            ),
            (
                "Ledger backlog",
                "short",
                [("{{table}}", "max by (table) (loglake_gdpr_ledger_backlog)")],
                "stat",
            ),
            (
                "Ledger requests by status",
                "short",
                [("{{status}}", "sum by (status) (loglake_gdpr_ledger_requests)")],
                "stat",
            ),
            (
                "Oldest delete waiting for a purge",
                "s",
                [("{{table}}", "max by (table) (loglake_gdpr_oldest_pending_purge_seconds)")],
                "stat",
            ),
            (
                "Since the last successful erasure run",
                "s",
                [
                    (
                        "{{table}}",
                        'time() - max by (table) (loglake_gdpr_last_success_timestamp_seconds{job="loglake_gdpr"})',
                    )
                ],
                "stat",
            ),
            (
                "Run duration",
                "s",
                [("{{job}}", "max by (job) (loglake_gdpr_run_duration_seconds)")],
                "timeseries",
            ),
        ],
    ),
}


def panel(n: int, spec: Panel) -> dict[str, Any]:
    title, unit, queries, kind = spec
    return {
        "id": n + 1,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (n % 2), "y": 8 * (n // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(queries)
        ],
    }


def dashboard(uid: str) -> dict[str, Any]:
    title, panels = DASHBOARDS[uid]
    return {
        "uid": uid,
        "title": title,
        "tags": ["loglake"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": [panel(n, p) for n, p in enumerate(panels)],
    }


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{uid}.json": json.dumps(dashboard(uid), indent=2) + "\n" for uid in DASHBOARDS}


def main() -> None:
    out = HERE / "dashboards"
    out.mkdir(exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text)
        print(out / name)


if __name__ == "__main__":
    main()
