"""A team's own log schema, not LogBatch: configured in YAML, ingested through a real schema registry,
read back with Spark and hudi-rs, and erased by its own identifier column (``phone``) with 0 hits.

The schema (tests/data/envelope.avsc) has other field names, entries instead of records, a nested
struct, an epoch-microseconds event time and a ``phone`` identifier.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import encode_with, raw_hits, read_hudi_rs, send

from devservers import registry_server
from gdpr.job import run_delete
from gdpr.requests import parse_text
from ingest.job import run
from loglake.settings import load_settings

pytestmark = pytest.mark.integration

ENVELOPE = Path(__file__).parent / "data" / "envelope.avsc"
BASE_US = 1_764_000_000_123_456  # 2025-11-24T16:00:00.123456Z
PHONES = ["+44 20 7946 0018", "+44 20 7946 0019", "+1 202 555 0143", "+33 1 70 18 99 00"]
# The erased number less its last digit: a prefix or substring match would erase it too.
LOOK_ALIKE = "+44 20 7946 001"


def envelopes(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        entries = []
        for j in range(rng.randint(3, 6)):
            entries.append(
                {
                    "occurred_us": BASE_US + rng.randint(0, 86_400_000_000 * 2) + j,
                    "severity": rng.choice(["INFO", "WARN", "ERROR"]),
                    "phone": rng.choice([*PHONES, LOOK_ALIKE, None]),
                    "text": f"entry {j} of envelope {i}: näive ☃",
                    "device": None if j % 3 == 0 else {"model": f"pixel-{j}", "os_version": None if j % 2 else "14"},
                }
            )
        out.append({"envelope_id": f"env-{seed}-{i}", "app": "billing:eu", "pod": f"pod-{i % 3}", "entries": entries})
    return out


def expected(batches: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The table's rows by record key, computed here without loglake code."""
    rows = {}
    for b in batches:
        for i, e in enumerate(b["entries"]):
            key = f"billing%3Aeu:{b['envelope_id']}:{i}"
            when = datetime.fromtimestamp(e["occurred_us"] / 1_000_000, tz=UTC)
            rows[key] = {
                "ts_us": e["occurred_us"],
                "event_date": when.strftime("%Y-%m-%d"),
                "severity": e["severity"],
                "phone": e["phone"],
                "text": e["text"],
                "device": e["device"],
                "envelope_id": b["envelope_id"],
                "app": b["app"],
                "pod": b["pod"],
                "record_index": i,
            }
    return rows


def test_own_schema_via_yaml_and_registry_then_erase_by_phone(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, schema_registry: str, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=2)
    schema = json.loads(ENVELOPE.read_text())
    schema_id = registry_server.register(schema_registry, f"{topic}-value", json.dumps(schema))
    batches = envelopes(12, seed=71)
    send(kafka_bootstrap, topic, [encode_with(schema, b, schema_id) for b in batches])
    # One entry without its required text: quarantined alone, naming the field, its envelope's
    # other entries go on.
    broken = copy.deepcopy(envelopes(1, seed=72)[0])
    phone_in_quarantine = PHONES[0]
    broken["entries"][1]["phone"] = phone_in_quarantine
    broken["entries"][1]["occurred_us"] = -5
    send(kafka_bootstrap, topic, [encode_with(schema, broken, schema_id)])
    table = tmp_path / "applogs"
    # No .avsc given: the shape is checked against the registry's latest version of the subject.
    config = tmp_path / "loglake.yaml"
    config.write_text(
        f"""
kafka: {{bootstrap_servers: "{kafka_bootstrap}", topic: {topic}}}
table: {{path: "{table}", name: applogs}}
metrics: {{port: 0}}
ingest:
  schema_registry: {{url: "{schema_registry}"}}
log_schema:
  records_field: entries
  key_fields: [app, envelope_id]
  event_time_field: occurred_us
  event_time_unit: micros
  subject_columns: [phone]
spark:
  conf: {{spark.master: "local[2]", spark.sql.shuffle.partitions: "4", spark.ui.enabled: "false"}}
"""
    )
    settings = load_settings(config)

    result = run(settings, once=True)

    want = expected(batches)
    broken_rows = expected([broken])
    del broken_rows[f"billing%3Aeu:{broken['envelope_id']}:1"]
    want |= broken_rows
    assert result.records_written == len(want)
    assert result.quarantined_by_reason == {"bad_ts": 1}
    df = spark.read.format("hudi").load(str(table))
    assert df.columns[5:] == [
        "record_key",
        "ts",
        "severity",
        "phone",
        "text",
        "device",
        "envelope_id",
        "app",
        "pod",
        "record_index",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "ingested_at",
        "event_date",
    ]
    rows = {r["record_key"]: r.asDict(recursive=True) for r in df.selectExpr("*", "unix_micros(ts) AS ts_us").collect()}
    got = {
        key: {c: (r[c] if c != "device" or r[c] is None else dict(r[c])) for c in next(iter(want.values()))}
        for key, r in rows.items()
    }
    assert got == want  # microseconds kept, the nested struct whole, the key from app and envelope_id
    by_key = {r["record_key"]: r for r in read_hudi_rs(str(table)).to_pylist()}
    assert {k: (r["phone"], r["severity"], r["event_date"]) for k, r in by_key.items()} == {
        k: (r["phone"], r["severity"], r["event_date"]) for k, r in want.items()
    }
    [bad] = spark.read.format("hudi").load(settings.table.effective_quarantine_path).collect()
    assert bad["reason"].startswith(
        "record 1: occurred_us -5 is outside [1970-01-01, 2100-01-01) in epoch microseconds"
    )
    assert bad["batch_id"] == broken["envelope_id"]

    # Erase one phone number: every row and the quarantined copy go, the look-alike stays.
    erased = PHONES[0]
    assert raw_hits(str(table), [erased]) > 0  # the check below can fail
    requests = parse_text(
        json.dumps({"request_id": "r1", "phone": erased}), "requests.jsonl", subject_columns=["phone"]
    )
    deleted = run_delete(settings, requests, do_purge=True)
    assert deleted.verification is not None and deleted.verification["clean"] is True, deleted.verification
    remaining = spark.read.format("hudi").load(str(table))
    assert remaining.where(f"phone = '{erased}'").count() == 0
    kept = {k for k, r in want.items() if r["phone"] != erased}
    assert {r["record_key"] for r in remaining.select("record_key").collect()} == kept
    assert {r["record_key"] for r in read_hudi_rs(str(table)).to_pylist()} == kept
    assert remaining.where(f"phone = '{LOOK_ALIKE}'").count() == sum(r["phone"] == LOOK_ALIKE for r in want.values())
    assert raw_hits(str(table), [erased]) == 0
    assert raw_hits(settings.table.effective_quarantine_path, [phone_in_quarantine]) == 0
