"""Every command on a log shape of one's own: no ``user_id``, ``email``, ``level`` or ``message`` anywhere.

The messages are another team's (tests/data/envelope.avsc: entries instead of records, epoch
microseconds, a nested struct, ``phone`` as the only identifier), configured in one settings file.
``produce`` makes them from the shape's schema; ``ingest``, ``table summary``, ``gdpr delete --purge``,
``compact``, ``catalog sync`` and ``gdpr expire`` then run on the table in turn, as an operator would,
each through the CLI (in this process, on the session's Spark). What a command cannot do with such a
shape it refuses in one line naming the setting.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from builders import raw_hits, read_hudi_rs, send
from test_custom_log_schema import ENVELOPE, envelopes

pytestmark = pytest.mark.integration

LOGBATCH_ONLY = {"user_id", "email", "client_ip", "level", "message", "batch_id", "service"}


def _plain_avro(schema: dict[str, Any], batch: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), batch)
    return out.getvalue()


def _report(done: Any) -> Any:
    assert done.returncode == 0, f"loglake {' '.join(done.args)}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def test_every_command_works_on_a_shape_without_logbatch_fields(
    cli: Any, kafka_bootstrap: str, topic_factory: Any, hive_metastore: str, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=2)
    table = tmp_path / "applogs"
    config = tmp_path / "loglake.yaml"
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}}}
table: {{path: "{table}", name: applogs}}
metrics: {{port: 0}}
catalog: {{database: shapes}}
log_schema:
  avro_schema: "{ENVELOPE}"
  records_field: entries
  key_fields: [app, envelope_id]
  event_time_field: occurred_us
  event_time_unit: micros
  subject_columns: [phone]
"""
    )
    settings = ["--config", str(config)]

    # Last year's envelopes (for expire), then today's from the load generator.
    schema = json.loads(ENVELOPE.read_text())
    old = envelopes(5, seed=91)
    send(kafka_bootstrap, topic, [_plain_avro(schema, b) for b in old])
    produced = _report(cli("produce", *settings, "--messages", "60", "--seed", "5"))
    assert produced["messages"] == 60 and produced["topic"] == topic
    refused = cli("produce", *settings, "--messages", "1", "--encoding", "json")
    assert refused.returncode == 2 and "encoding" in refused.stderr.strip().splitlines()[-1]

    ingested = _report(cli("ingest", *settings, "--once"))
    old_records = sum(len(b["entries"]) for b in old)
    assert ingested["records_written"] == produced["records"] + old_records
    rows = read_hudi_rs(str(table)).to_pylist()
    assert len(rows) == len({r["record_key"] for r in rows}) == ingested["records_written"]
    assert not LOGBATCH_ONLY & set(rows[0]), sorted(rows[0])

    summary = _report(cli("table", "summary", *settings))
    phones = {r["phone"] for r in rows if r["phone"] is not None}
    assert summary["rows"] == len(rows) and summary["distinct_subjects"] == {"phone": len(phones)}

    # Erase the subject with the most rows: deleted, purged, and no byte of it left in any file.
    subject = max(phones, key=lambda p: sum(r["phone"] == p for r in rows))
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"request_id": "p1", "phone": subject}))
    assert raw_hits(str(table), [subject]) > 0  # the check below can fail
    erased = cli("gdpr", "delete", "--purge", *settings, "--requests", str(requests))
    report = _report(erased)
    assert report["records_deleted"] == sum(r["phone"] == subject for r in rows) > 0
    assert report["verification"]["clean"] is True
    assert raw_hits(str(table), [subject]) == 0
    left = read_hudi_rs(str(table)).to_pylist()
    assert {r["record_key"] for r in left} == {r["record_key"] for r in rows if r["phone"] != subject}
    # A request for a column the shape does not have is refused by line, the run goes on.
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"request_id": "u1", "user_id": "u-1"}))
    rejected = cli("gdpr", "delete", *settings, "--requests", str(other))
    assert rejected.returncode == 3
    [reason] = [r["reason"] for r in json.loads(rejected.stdout)["rejected"]]
    assert "user_id" in reason and "phone" in reason, reason

    compacted = _report(cli("compact", *settings, "--schedule", "--until-caught-up"))
    assert compacted["caught_up"] and compacted["pending_after"] == []

    synced = _report(cli("catalog", "sync", *settings, "--metastore-uris", hive_metastore))
    assert (synced[0]["kind"], synced[0]["tables"]) == ("log", ["applogs_ro", "applogs_rt"])

    expired = _report(cli("gdpr", "expire", *settings, "--older-than", "30d"))
    old_dates = {r["event_date"] for r in left if r["envelope_id"].startswith("env-91-")}
    assert old_dates and {p.split("=")[1] for p in expired["partitions_dropped"]} == old_dates
    after = read_hudi_rs(str(table)).to_pylist()
    assert len(after) == len(left) - sum(r["event_date"] in old_dates for r in left)
