"""The synthetic generator and its encodings, without Kafka.

Avro is checked against the committed schema file read directly, so a drift between the writer
and the public contract fails here.
"""

from __future__ import annotations

import io
import ipaddress
import json
import random
import re
import struct
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from app.produce import (
    ProduceResult,
    decode_avro,
    encode_avro,
    encode_json,
    generate_batches,
    make_batch,
    produce,
)
from loglake.errors import ConfigError

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
