"""The synthetic generator and its encodings, without Kafka.

Avro is checked against the committed schema file read directly, so a drift between the writer
and the public contract fails here.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import random
import re
import struct
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import fastavro
import pytest
from fastavro.validation import validate

import app.produce
from app.produce import (
    N_SUBJECTS,
    ProduceResult,
    decode_avro,
    encode_avro,
    encode_json,
    generate_batches,
    make_batch,
    make_shaped_batch,
    produce,
    registry_schema,
)
from loglake.errors import ConfigError
from loglake.settings import LogSchemaSettings
from loglake.shape import LogShape, avro_schema, default_shape, resolve

NOW_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
SCHEMA_FILE = Path(__file__).resolve().parents[1] / "loglake" / "schemas" / "log_batch.avsc"
BATCH_FIELDS = {"batch_id", "service", "host", "region", "sent_at", "records"}
RECORD_FIELDS = {"ts", "level", "user_id", "email", "client_ip", "event", "message", "attributes"}


def committed_schema() -> Any:
    return fastavro.parse_schema(json.loads(SCHEMA_FILE.read_text()))


def batches(n: int, seed: int = 1, records: tuple[int, int] = (7, 25)) -> list[dict[str, Any]]:
    return list(generate_batches(random.Random(seed), NOW_MS, n, records))


def millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def read_with_committed_schema(payload: bytes) -> dict[str, Any]:
    """fastavro's own reader; timestamp-millis comes back as aware datetimes."""
    decoded = fastavro.schemaless_reader(io.BytesIO(payload), committed_schema(), None)
    assert isinstance(decoded, dict)
    decoded["sent_at"] = millis(decoded["sent_at"])
    for record in decoded["records"]:
        record["ts"] = millis(record["ts"])
    return decoded


def test_avro_round_trips_through_the_committed_schema() -> None:
    for batch in batches(50):
        payload = encode_avro(batch)
        assert read_with_committed_schema(payload) == batch
        assert decode_avro(payload) == batch


def test_avro_wire_format_header() -> None:
    [batch] = batches(1, seed=2)
    plain = encode_avro(batch)
    framed = encode_avro(batch, confluent_wire_format=True, schema_id=258)
    assert framed[:5] == b"\x00\x00\x00\x01\x02"
    assert struct.unpack(">bI", framed[:5]) == (0, 258)
    assert framed[5:] == plain
    assert encode_avro(batch, confluent_wire_format=True)[:5] == b"\x00\x00\x00\x00\x01"
    assert decode_avro(framed, confluent_wire_format=True) == batch
    assert read_with_committed_schema(framed[5:]) == batch


def test_decode_avro_rejects_a_missing_header() -> None:
    [batch] = batches(1, seed=3)
    # A plain payload starts with the batch id's length (0x48 for 36 characters), not magic 0.
    with pytest.raises(ValueError, match="no Confluent wire-format header"):
        decode_avro(encode_avro(batch), confluent_wire_format=True)
    with pytest.raises(ValueError, match="no Confluent wire-format header"):
        decode_avro(b"\x00\x00", confluent_wire_format=True)


def test_avro_accepts_datetimes_too() -> None:
    [batch] = batches(1, seed=4, records=(2, 2))
    as_datetimes = {
        **batch,
        "sent_at": datetime.fromtimestamp(batch["sent_at"] / 1000, tz=UTC),
        "records": [{**r, "ts": datetime.fromtimestamp(r["ts"] / 1000, tz=UTC)} for r in batch["records"]],
    }
    assert encode_avro(as_datetimes) == encode_avro(batch)


def test_json_encoding_fields() -> None:
    for batch in batches(20, seed=5):
        doc = json.loads(encode_json(batch))
        assert set(doc) == BATCH_FIELDS
        assert isinstance(doc["sent_at"], int) and doc["sent_at"] == batch["sent_at"]
        for got, record in zip(doc["records"], batch["records"], strict=True):
            assert set(got) == RECORD_FIELDS
            assert isinstance(got["ts"], int) and got["ts"] == record["ts"]
            assert isinstance(got["attributes"], dict)
            assert all(isinstance(v, str) for v in got["attributes"].values())
        assert doc == batch
    # Nulls are JSON nulls, not missing keys.
    with_nulls = next(
        r for b in batches(50, seed=6) for r in json.loads(encode_json(b))["records"] if r["user_id"] is None
    )
    assert "user_id" in with_nulls and with_nulls["user_id"] is None


def test_same_seed_same_batches_and_different_seed_different_batches() -> None:
    assert batches(30, seed=7) == batches(30, seed=7)
    assert [encode_avro(b) for b in batches(30, seed=7)] == [encode_avro(b) for b in batches(30, seed=7)]
    other = batches(30, seed=8)
    assert {b["batch_id"] for b in other}.isdisjoint({b["batch_id"] for b in batches(30, seed=7)})


def test_batch_ids_are_unique_uuids() -> None:
    ids = [b["batch_id"] for b in batches(3000, seed=9, records=(0, 1))]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i) for i in ids)


def test_records_per_message_bounds() -> None:
    sizes = Counter(len(b["records"]) for b in batches(500, seed=10, records=(3, 6)))
    assert set(sizes) == {3, 4, 5, 6}
    assert {len(b["records"]) for b in batches(20, seed=11, records=(9, 9))} == {9}


def test_zero_records() -> None:
    for batch in batches(5, seed=12, records=(0, 0)):
        assert batch["records"] == []
        assert decode_avro(encode_avro(batch)) == batch
        assert json.loads(encode_json(batch))["records"] == []
    assert make_batch(random.Random(1), NOW_MS, 0)["records"] == []


def test_records_are_fresh_dicts() -> None:
    # Tests corrupt single records on purpose; that must not leak into other records or batches.
    rng = random.Random(13)
    first = make_batch(rng, NOW_MS, 30)
    first["records"][0]["ts"] = -1
    first["records"][0]["attributes"]["extra"] = "x"
    again = make_batch(random.Random(13), NOW_MS, 30)
    assert again["records"][0]["ts"] != -1
    assert all("extra" not in r["attributes"] for b in (first, again) for r in b["records"][1:])
    assert "extra" not in again["records"][0]["attributes"]


def test_data_looks_like_real_logs() -> None:
    sample = batches(2000, seed=14)
    records = [r for b in sample for r in b["records"]]
    levels = Counter(r["level"] for r in records)
    assert set(levels) == {"INFO", "WARN", "ERROR", "DEBUG"}
    shares = {level: count / len(records) for level, count in levels.items()}
    assert shares["INFO"] > 0.5 and shares["ERROR"] < shares["WARN"] < shares["INFO"]

    with_user = [r for r in records if r["user_id"] is not None]
    assert 0.80 < len(with_user) / len(records) < 0.95
    assert all(re.fullmatch(r"u-\d{6}", r["user_id"]) for r in with_user)
    assert len({r["user_id"] for r in with_user}) > 5000
    emails = [r["email"] for r in with_user if r["email"] is not None]
    assert 0.9 < len(emails) / len(with_user) < 1.0
    assert all(re.fullmatch(r"[a-z._]+\d*@[a-z.]+", e) for e in emails)
    # One user, one email: the identity a deletion request names is consistent.
    by_user: dict[str, set[str | None]] = {}
    for r in with_user:
        by_user.setdefault(r["user_id"], set()).add(r["email"])
    assert all(len(e) == 1 for e in by_user.values())
    assert all(r["email"] is None for r in records if r["user_id"] is None)

    ips = [r["client_ip"] for r in records if r["client_ip"] is not None]
    assert all(isinstance(ipaddress.ip_address(ip), ipaddress.IPv4Address) for ip in ips)
    assert 0 < len(records) - len(ips) < 0.1 * len(records)

    assert 0 < sum(b["region"] is None for b in sample) < 0.15 * len(sample)
    assert len({b["service"] for b in sample}) >= 5
    assert all(b["host"].startswith(b["service"]) for b in sample)
    assert all("trace_id" in r["attributes"] for r in records)


def test_timestamps_are_before_sent_at_and_now() -> None:
    for batch in batches(500, seed=15):
        assert NOW_MS - 10 * 60_000 <= batch["sent_at"] <= NOW_MS
        ts = [r["ts"] for r in batch["records"]]
        assert ts == sorted(ts)
        assert all(batch["sent_at"] - 3 * 3_600_000 < t <= batch["sent_at"] for t in ts)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"messages": -1}, "messages -1"),
        ({"records_per_message": (5, 2)}, "records_per_message (5, 2)"),
        ({"records_per_message": (-1, 2)}, "records_per_message (-1, 2)"),
        ({"encoding": "xml"}, "encoding 'xml'"),
        ({"encoding": "json", "confluent_wire_format": True}, "Avro only"),
    ],
)
def test_produce_rejects_bad_arguments_before_connecting(kwargs: dict[str, Any], words: str) -> None:
    # Port 9 (discard) on loopback: nothing answers, so reaching the network would fail differently.
    args: dict[str, Any] = {"bootstrap_servers": "127.0.0.1:9", "topic": "t", "messages": 1, **kwargs}
    with pytest.raises(ConfigError, match=re.escape(words)):
        produce(**args)


def test_produce_result_is_frozen() -> None:
    result = ProduceResult(topic="t", messages=1, records=2, bytes=3, seconds=0.1, encoding="avro")
    with pytest.raises(AttributeError):
        result.messages = 5  # type: ignore[misc]


# ---------------------------------------------------------------- sending, with a stand-in producer


class FakeProducer:
    """confluent_kafka's Producer as produce() uses it, keeping what was sent instead of sending it."""

    sent: ClassVar[list[tuple[str, bytes, bytes]]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        FakeProducer.sent.clear()

    def list_topics(self, timeout: float | None = None) -> None:
        return None

    def produce(self, topic: str, payload: bytes, key: bytes) -> None:
        FakeProducer.sent.append((topic, payload, key))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bytes, bytes]]:
    """Makes produce() hand its messages to a FakeProducer; the messages of the last call."""
    monkeypatch.setattr(app.produce, "Producer", FakeProducer)
    return FakeProducer.sent


def sent_digest() -> str:
    h = hashlib.sha256()
    for _topic, payload, key in FakeProducer.sent:
        h.update(key + b"\0" + len(payload).to_bytes(4, "big") + payload)
    return h.hexdigest()


# What produce() sent for seed 20240601 (300 messages, 7-25 records, NOW_MS) before it learned
# other shapes: the LogBatch load, and so the benchmark, must stay byte for byte the same.
LOG_BATCH_DIGESTS = {
    "avro": ("a6119b628fd51c366c57230ef261f23d12c640f5adffe0573b7eb662d8d21273", 4732, 835580),
    "wire": ("c51d06adff9c3a861b622a6d177a019a42207c60cedb8dc4d568371f20d377d8", 4732, 837080),
    "json": ("c7db47bf03e4f0535afa01c15ba4fc2d648998a6745350376d02401c4edfce1b", 4732, 1364219),
}


@pytest.mark.parametrize("shape", [None, "default"])
@pytest.mark.parametrize("variant", list(LOG_BATCH_DIGESTS))
def test_log_batch_messages_for_a_seed_are_unchanged(sent: Any, variant: str, shape: str | None) -> None:
    by_variant: dict[str, dict[str, Any]] = {
        "avro": {},
        "wire": {"confluent_wire_format": True},
        "json": {"encoding": "json"},
    }
    options = by_variant[variant]
    result = produce(
        "127.0.0.1:9",
        "logs",
        300,
        seed=20240601,
        now_ms=NOW_MS,
        shape=default_shape() if shape else None,
        **options,
    )
    assert (sent_digest(), result.records, result.bytes) == LOG_BATCH_DIGESTS[variant]


# ---------------------------------------------------------------- shapes of one's own

ENVELOPE_FILE = Path(__file__).resolve().parent / "data" / "envelope.avsc"
# As tests/test_custom_log_schema.py configures the ingest for it.
ENVELOPE_SETTINGS = LogSchemaSettings(
    records_field="entries",
    key_fields=["app", "envelope_id"],
    event_time_field="occurred_us",
    event_time_unit="micros",
    subject_columns=["phone"],
)
# Every Avro type, named types used again by name, a recursive record, and subject columns of each kind.
EVERYTHING: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "test.shapes",
    "fields": [
        {"name": "batch_no", "type": "long"},
        {"name": "flag", "type": "boolean"},
        {"name": "count", "type": "int"},
        {"name": "ratio", "type": "float"},
        {"name": "score", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 16}},
        {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["FREE", "PRO", "ENTERPRISE"]}},
        {"name": "labels", "type": {"type": "map", "values": "string"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "owner_email", "type": ["null", "string"], "default": None},
        {
            "name": "items",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Item",
                    "fields": [
                        {"name": "at_s", "type": "long"},
                        {"name": "email", "type": ["null", "string"], "default": None},
                        {"name": "clientIp", "type": "string"},
                        {"name": "account_id", "type": ["null", "string"], "default": None},
                        {"name": "either", "type": ["null", "int", "string"], "default": None},
                        {"name": "tier_then", "type": "Tier"},
                        {"name": "checksum", "type": ["null", "test.shapes.Digest"], "default": None},
                        {
                            "name": "node",
                            "type": [
                                "null",
                                {
                                    "type": "record",
                                    "name": "Node",
                                    "fields": [
                                        {"name": "label", "type": "string"},
                                        {"name": "next", "type": ["null", "Node"], "default": None},
                                    ],
                                },
                            ],
                            "default": None,
                        },
                        {"name": "series", "type": {"type": "map", "values": {"type": "array", "items": "double"}}},
                    ],
                },
            },
        },
    ],
}
EVERYTHING_SETTINGS = LogSchemaSettings(
    records_field="items",
    key_fields=["batch_no"],
    event_time_field="at_s",
    event_time_unit="seconds",
    subject_columns=["owner_email", "email", "clientIp", "account_id"],
)
RECENT_MS = (NOW_MS - 10 * 60_000 - 5_000, NOW_MS)


def envelope_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(ENVELOPE_FILE.read_text())
    return schema


def replace_settings(settings: LogSchemaSettings, **changes: Any) -> LogSchemaSettings:
    return settings.model_copy(update=changes)


def envelope_shape() -> LogShape:
    return resolve(ENVELOPE_SETTINGS, envelope_schema(), str(ENVELOPE_FILE))


def everything_shape() -> LogShape:
    return resolve(EVERYTHING_SETTINGS, EVERYTHING, "the test's Everything schema")


def shaped(shape: LogShape, n: int, seed: int = 1, records: tuple[int, int] = (7, 25)) -> list[dict[str, Any]]:
    return list(generate_batches(random.Random(seed), NOW_MS, n, records, shape))


def entries(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in batches for e in b["entries"]]


def test_envelope_batches_are_valid_for_the_envelope_schema_and_its_plain_time_twin() -> None:
    shape = envelope_shape()
    original = fastavro.parse_schema(envelope_schema())
    plain = fastavro.parse_schema(json.loads(shape.schema))
    for batch in shaped(shape, 200):
        assert validate(batch, original)
        assert validate(batch, plain)
        assert set(batch) == {"envelope_id", "app", "pod", "entries"}
        assert all(set(e) == {"occurred_us", "severity", "phone", "text", "device"} for e in batch["entries"])


def test_envelope_batches_round_trip_through_avro() -> None:
    shape = envelope_shape()
    parsed = fastavro.parse_schema(json.loads(shape.schema))
    for batch in shaped(shape, 100, seed=2):
        payload = encode_avro(batch, schema=parsed)
        assert fastavro.schemaless_reader(io.BytesIO(payload), parsed, None) == batch
        framed = encode_avro(batch, confluent_wire_format=True, schema_id=7, schema=parsed)
        assert framed[:5] == b"\x00\x00\x00\x00\x07" and framed[5:] == payload


def test_a_seed_reproduces_the_same_envelope_bytes() -> None:
    shape = envelope_shape()
    parsed = fastavro.parse_schema(json.loads(shape.schema))

    def payloads(seed: int) -> list[bytes]:
        return [encode_avro(b, schema=parsed) for b in shaped(shape, 50, seed=seed)]

    assert payloads(3) == payloads(3)
    assert set(payloads(3)).isdisjoint(payloads(4))
    rng = random.Random(5)
    assert make_shaped_batch(rng, NOW_MS, 9, shape, 1) == make_shaped_batch(random.Random(5), NOW_MS, 9, shape, 1)


def test_envelope_key_fields_are_new_in_every_batch() -> None:
    batches = shaped(envelope_shape(), 3000, seed=6, records=(0, 2))
    for field in ("envelope_id", "app"):
        values = [b[field] for b in batches]
        assert len(set(values)) == len(values)
        assert all(uuid.UUID(v).version == 4 for v in values)
    # Another run does not reuse them either: its records would overwrite this run's.
    assert {b["envelope_id"] for b in batches}.isdisjoint(b["envelope_id"] for b in shaped(envelope_shape(), 100))


def test_int_and_long_key_fields_count_up_from_where_the_seed_says() -> None:
    numbers = [b["batch_no"] for b in shaped(everything_shape(), 500, seed=7, records=(0, 1))]
    assert numbers == list(range(numbers[0], numbers[0] + 500))
    assert 0 <= numbers[0] < 2**30
    assert shaped(everything_shape(), 1, seed=8)[0]["batch_no"] != numbers[0]


def test_envelope_subjects_recur_across_batches_and_runs() -> None:
    shape = envelope_shape()
    run = shaped(shape, 300, seed=9)
    batches_of: dict[str, set[int]] = {}
    for n, batch in enumerate(run):
        for e in batch["entries"]:
            if e["phone"] is not None:
                batches_of.setdefault(e["phone"], set()).add(n)
    assert all(re.fullmatch(r"\+44\d{10}", phone) for phone in batches_of)
    assert len(batches_of) <= N_SUBJECTS
    assert sum(len(seen) > 1 for seen in batches_of.values()) > 100
    other_run = {e["phone"] for e in entries(shaped(shape, 300, seed=10))}
    assert len(other_run & set(batches_of)) > 100


def test_subject_columns_hold_identifiers_their_names_suggest() -> None:
    batches = shaped(everything_shape(), 200, seed=11)
    items = [i for b in batches for i in b["items"]]
    emails = [i["email"] for i in items if i["email"] is not None]
    assert all(re.fullmatch(r"[a-z._]+\d*@[a-z.]+", e) for e in emails)
    assert all(re.fullmatch(r"[a-z._]+\d*@[a-z.]+", b["owner_email"]) for b in batches if b["owner_email"])
    assert all(isinstance(ipaddress.ip_address(i["clientIp"]), ipaddress.IPv4Address) for i in items)
    assert all(re.fullmatch(r"account-\d{5}", i["account_id"]) for i in items if i["account_id"] is not None)
    # One record, one person: the same index in every column's pool.
    by_account: dict[str, set[tuple[str | None, str]]] = {}
    for i in items:
        if i["account_id"] is not None and i["email"] is not None:
            by_account.setdefault(i["account_id"], set()).add((i["email"], i["clientIp"]))
    assert by_account and all(len(people) == 1 for people in by_account.values())


@pytest.mark.parametrize("unit", ["seconds", "millis", "micros"])
def test_event_times_are_recent_in_the_shape_unit_and_in_order(unit: str) -> None:
    shape = resolve(replace_settings(ENVELOPE_SETTINGS, event_time_unit=unit), envelope_schema(), "envelope")
    per_ms = {"seconds": 0.001, "millis": 1, "micros": 1000}[unit]
    low, high = RECENT_MS
    for batch in shaped(shape, 300, seed=12):
        times = [e["occurred_us"] for e in batch["entries"]]
        assert times == sorted(times)
        assert all(isinstance(t, int) and low * per_ms - 1 <= t <= high * per_ms for t in times)
    if unit == "micros":
        # Sub-millisecond digits, as a microsecond clock gives.
        assert {t % 1000 for e in entries(shaped(shape, 20)) for t in [e["occurred_us"]]} != {0}


def test_nullable_fields_are_sometimes_null_and_required_ones_never() -> None:
    batches = shaped(envelope_shape(), 500, seed=13)
    records = entries(batches)
    for values in (
        [b["pod"] for b in batches],
        [e["phone"] for e in records],
        [e["device"] for e in records],
        [e["device"]["os_version"] for e in records if e["device"] is not None],
    ):
        nulls = sum(v is None for v in values)
        assert 0.03 * len(values) < nulls < 0.2 * len(values)
    assert all(e["severity"] and e["text"] and e["occurred_us"] for e in records)
    assert {e["severity"] for e in records} == {"DEBUG", "INFO", "WARN", "ERROR"}


def test_every_avro_type_gets_a_value_of_its_type() -> None:
    shape = everything_shape()
    parsed = fastavro.parse_schema(EVERYTHING)
    batches = shaped(shape, 300, seed=14)
    for batch in batches:
        assert validate(batch, parsed)
        assert fastavro.schemaless_reader(io.BytesIO(encode_avro(batch, schema=parsed)), parsed, None) == batch
        assert len(batch["digest"]) == 16 and batch["tier"] in ("FREE", "PRO", "ENTERPRISE")
    items = [i for b in batches for i in b["items"]]
    assert {type(i["either"]) for i in items} == {type(None), int, str}
    assert {type(b["flag"]) for b in batches} == {bool} and {b["flag"] for b in batches} == {True, False}
    assert any(b["labels"] for b in batches) and any(b["tags"] for b in batches)
    chains = [i["node"] for i in items if i["node"] is not None]
    assert any(n["next"] is not None for n in chains)  # the recursion is followed, and it ends


def test_logical_types_get_values_of_their_kind() -> None:
    schema = {
        "type": "record",
        "name": "Logical",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 7, "scale": 2}},
            {
                "name": "fee",
                "type": {
                    "type": "fixed",
                    "name": "Fee",
                    "size": 4,
                    "logicalType": "decimal",
                    "precision": 9,
                    "scale": 3,
                },
            },
            {
                "name": "meta",
                "type": {
                    "type": "record",
                    "name": "Meta",
                    "fields": [{"name": "seen", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
                },
            },
            {
                "name": "records",
                "type": {
                    "type": "array",
                    "items": {"type": "record", "name": "R", "fields": [{"name": "ts", "type": "long"}]},
                },
            },
        ],
    }
    settings = LogSchemaSettings(key_fields=["id"], subject_columns=["id"])
    shape = resolve(settings, schema, "the test's Logical schema")
    parsed = fastavro.parse_schema(schema)
    for batch in shaped(shape, 50, seed=15):
        assert validate(batch, parsed)
        uuid.UUID(batch["ref"])
        assert NOW_MS // 86_400_000 - 1 <= batch["day"] <= NOW_MS // 86_400_000
        assert 0 <= batch["clock"] < 86_400_000
        assert isinstance(batch["price"], Decimal) and batch["price"].as_tuple().exponent == -2
        assert batch["price"] < Decimal("100000.00")
        assert RECENT_MS[0] <= batch["meta"]["seen"] <= RECENT_MS[1]
        decoded = fastavro.schemaless_reader(io.BytesIO(encode_avro(batch, schema=parsed)), parsed, None)
        assert isinstance(decoded, dict) and (decoded["price"], decoded["fee"]) == (batch["price"], batch["fee"])


def timed_envelope() -> dict[str, Any]:
    """The envelope with a batch timestamp and a nullable record one of another unit."""
    schema = envelope_schema()
    schema["fields"].insert(2, {"name": "sent", "type": {"type": "long", "logicalType": "timestamp-millis"}})
    entry = schema["fields"][-1]["type"]["items"]
    entry["fields"].append(
        {"name": "received", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}], "default": None}
    )
    return schema


def test_time_columns_are_recent_in_their_own_unit() -> None:
    shape = resolve(ENVELOPE_SETTINGS, timed_envelope(), "timed envelope")
    assert dict(shape.time_columns) == {"sent": "millis", "received": "micros"}
    batches = shaped(shape, 300, seed=16)
    low, high = RECENT_MS
    assert all(low <= b["sent"] <= high for b in batches)
    received = [e["received"] for e in entries(batches)]
    assert 0 < received.count(None) < 0.2 * len(received)
    assert all(low * 1000 <= r <= high * 1000 + 999 for r in received if r is not None)
    assert all(validate(b, fastavro.parse_schema(timed_envelope())) for b in batches)


def test_registry_schema_keeps_the_time_units_the_shape_read_as_plain_longs() -> None:
    assert registry_schema() == avro_schema() == registry_schema(default_shape())
    schema = timed_envelope()
    shape = resolve(ENVELOPE_SETTINGS, schema, "timed envelope")
    registered = registry_schema(shape)
    # The event time, a plain long in the file, now says its unit itself.
    entry = registered["fields"][-1]["type"]["items"]
    assert entry["fields"][0] == {"name": "occurred_us", "type": {"type": "long", "logicalType": "timestamp-micros"}}
    entry["fields"][0] = schema["fields"][-1]["type"]["items"]["fields"][0]
    assert registered == schema
    # A reader that resolves its shape from the registry gets the producer's.
    again = resolve(replace_settings(ENVELOPE_SETTINGS, event_time_unit="millis"), registry_schema(shape), "registry")
    assert replace(again, source=shape.source) == shape


def test_a_log_batch_schema_with_other_settings_gets_log_batch_data() -> None:
    shape = resolve(LogSchemaSettings(subject_columns=["email"]), avro_schema(), "the LogBatch schema")
    assert shape != default_shape()
    assert shaped(shape, 20) == batches(20)


@pytest.mark.parametrize("options", [{}, {"confluent_wire_format": True}])
def test_produce_json_with_a_shape_of_ones_own_is_refused_naming_the_setting(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as error:
        produce("127.0.0.1:9", "t", 1, encoding="json", shape=envelope_shape(), **options)
    message = str(error.value)
    assert "ingest.encoding" in message and "--encoding" in message and "\n" not in message


def test_produce_sends_shaped_batches_keyed_by_their_last_key_field(sent: Any) -> None:
    shape = envelope_shape()
    result = produce("127.0.0.1:9", "applogs", 40, seed=17, now_ms=NOW_MS, shape=shape, records_per_message=(1, 4))
    parsed = fastavro.parse_schema(json.loads(shape.schema))
    want = shaped(shape, 40, seed=17, records=(1, 4))
    got = [fastavro.schemaless_reader(io.BytesIO(payload), parsed, None) for _, payload, _ in sent]
    assert got == want
    assert [key for _, _, key in sent] == [b["envelope_id"].encode() for b in want]
    assert {topic for topic, _, _ in sent} == {"applogs"}
    assert (result.messages, result.records) == (40, sum(len(b["entries"]) for b in want))
    assert result.bytes == sum(len(payload) for _, payload, _ in sent)


def test_produce_registers_the_shape_schema_with_a_registry(sent: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[tuple[str, str, str]] = []

    def register(url: str, subject: str, schema_json: str) -> int:
        registered.append((url, subject, schema_json))
        return 42

    monkeypatch.setattr("devservers.registry_server.register", register)
    shape = envelope_shape()
    result = produce("127.0.0.1:9", "applogs", 5, seed=18, schema_registry="http://registry:8081", shape=shape)
    assert registered == [("http://registry:8081", "applogs-value", json.dumps(registry_schema(shape)))]
    assert result.schema_id == 42
    parsed = fastavro.parse_schema(json.loads(shape.schema))
    for _, payload, _ in sent:
        assert payload[:5] == b"\x00\x00\x00\x00\x2a"
        assert validate(fastavro.schemaless_reader(io.BytesIO(payload[5:]), parsed, None), parsed)
    produce("127.0.0.1:9", "logs", 1, seed=18, schema_registry="http://registry:8081")
    assert registered[-1] == ("http://registry:8081", "logs-value", json.dumps(avro_schema()))
