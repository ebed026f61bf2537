"""Configured subject columns (log_schema.subject_columns) across the erasure: resolution, matching,
the verifier's scan and the quarantine's decoding. The table here has ``phone`` and ``user_ref``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gdpr import resolve
from gdpr.job import matcher_for, message_decoders
from gdpr.match import BOUNDED, EQUAL, HASH, AvroDecoder, Found, HashedIdentifier, decode_document, subject_digest
from gdpr.requests import parse_text
from gdpr.verify import matching_documents, scan_bytes
from loglake.errors import ConfigError, TableError
from loglake.settings import load_settings
from loglake.shape import load as load_shape

COLUMNS = ["phone", "user_ref"]
PHONE = "+442079460000"
REQUESTS = parse_text(
    "\n".join(
        [
            json.dumps({"request_id": "r-phone", "phone": PHONE}),
            json.dumps({"request_id": "r-ref", "user_ref": "ref-1"}),
            json.dumps({"request_id": "r-key", "record_key": "api:b1:2"}),
        ]
    ),
    "r.jsonl",
    subject_columns=COLUMNS,
).requests

AVSC = {
    "type": "record",
    "name": "PhoneBatch",
    "fields": [
        {"name": "batch_id", "type": "string"},
        {
            "name": "records",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "PhoneRecord",
                    "fields": [
                        {"name": "ts", "type": "long"},
                        {"name": "phone", "type": ["null", "string"]},
                        {"name": "note", "type": "string"},
                    ],
                },
            },
        },
    ],
}


def test_resolution_finds_the_configured_columns(spark: Any) -> None:
    rows = [
        ("api:b1:0", "2026-11-27", "f1_0-1-1_1.parquet", "logs", PHONE, "ref-9"),
        ("api:b1:1", "2026-11-27", "f1_0-1-1_1.parquet", "logs", PHONE + "1", "ref-1"),  # a look-alike phone
        ("api:b1:2", "2026-11-28", "f2_0-1-1_1.parquet", "logs", None, None),
        ("api:b1:3", "2026-11-28", "f2_0-1-1_1.parquet", "logs", "+442079460001", "ref-10"),
    ]
    snapshot = spark.createDataFrame(
        rows,
        "record_key string, event_date string, _hoodie_file_name string, kafka_topic string, "
        "phone string, user_ref string",
    )
    matches = resolve.match_records(snapshot, REQUESTS, subject_columns=COLUMNS)
    found = sorted((r["request_id"], r["kind"], r["record_key"], r["file_group"]) for r in matches.collect())
    assert found == [
        ("r-key", "record_key", "api:b1:2", "f2"),
        ("r-phone", "phone", "api:b1:0", "f1"),
        ("r-ref", "user_ref", "api:b1:1", "f1"),
    ]

    # A request for a column the resolution was not given is refused, not reported as having no records.
    email = parse_text('{"request_id": "e", "email": "x@example.com"}', "r.jsonl").requests
    with pytest.raises(ValueError, match="email, which is not one of phone, user_ref, record_key"):
        resolve.match_records(snapshot, email, subject_columns=COLUMNS)
    with pytest.raises(TableError, match="names msisdn, which the table has no column for"):
        resolve.match_records(snapshot, REQUESTS, subject_columns=[*COLUMNS, "msisdn"])
    numbers = snapshot.withColumn("user_ref", snapshot["phone"].isNull().cast("int"))
    with pytest.raises(TableError, match=r"user_ref \(int\) is not a string column"):
        resolve.match_records(numbers, REQUESTS, subject_columns=COLUMNS)


def test_verifier_judges_configured_columns_by_equality() -> None:
    table = pa.table(
        {
            "phone": [PHONE, PHONE + "1", None],
            # A default subject column that this table does not treat as one: its values are text.
            "user_id": [f"call {PHONE}", "ref-1", "x"],
            "user_ref": ["ref-10", "ref-1", None],
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    found, _ = scan_bytes("part.parquet", out.getvalue(), matcher_for(REQUESTS, subject_columns=COLUMNS))
    assert {(f.column, f.match, f.request_id) for f in found} == {
        ("phone", EQUAL, "r-phone"),
        ("user_ref", EQUAL, "r-ref"),
        ("user_id", BOUNDED, "r-phone"),
        ("user_id", BOUNDED, "r-ref"),
    }


def test_matcher_keeps_the_columns_of_requests_erased_before_a_change() -> None:
    earlier = [
        HashedIdentifier("old", "email", subject_digest("salt", "email", "a@b.com")),
        HashedIdentifier("old-key", "record_key", subject_digest("salt", "record_key", "api:b0:0")),
    ]
    matcher = matcher_for(REQUESTS, earlier, "salt", subject_columns=COLUMNS)
    assert matcher.identifier_fields == {"phone", "user_ref", "email"}
    assert matcher_for(REQUESTS).identifier_fields == {"user_id", "email", "client_ip"}
    assert set(matcher.walk({"email": "a@b.com"}, "")) == {Found("email", HASH, "old")}


def _message(phone: str) -> bytes:
    out = io.BytesIO()
    batch = {"batch_id": "b1", "records": [{"ts": 1, "phone": phone, "note": "hello"}]}
    fastavro.schemaless_writer(out, fastavro.parse_schema(AVSC), batch)
    return out.getvalue()


def _phone_settings(avsc: Path) -> Any:
    return load_settings(
        overrides={
            "table.path": "/t",
            "log_schema.avro_schema": str(avsc),
            "log_schema.key_fields": ["batch_id"],
            "log_schema.subject_columns": ["phone"],
        }
    )


def test_quarantined_messages_are_decoded_with_the_configured_schema(tmp_path: Path) -> None:
    avsc = tmp_path / "phone.avsc"
    avsc.write_text(json.dumps(AVSC))
    decoders = message_decoders(load_shape(_phone_settings(avsc)))
    assert decode_document(_message(PHONE), decoders)["records"][0]["phone"] == PHONE
    # The LogBatch schema cannot read these messages whole: without the setting they are searched raw.
    assert decode_document(_message(PHONE), message_decoders()) is None
    matcher = matcher_for(REQUESTS, subject_columns=COLUMNS)
    assert {(f.column, f.match) for f in matcher.walk(decode_document(_message(PHONE), decoders), "raw_value")} == {
        ("raw_value.records.phone", EQUAL)
    }
    rows = [("q1", _message(PHONE), None), ("q2", _message(PHONE + "1"), None), ("q3", b"\x00garbage", None)]
    assert list(matching_documents(matcher, rows, decoders)) == ["q1"]
    assert isinstance(decoders[1], AvroDecoder) and json.loads(decoders[1].schema_json) == AVSC


def test_an_unreadable_schema_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.avsc"
    bad.write_text(json.dumps({**AVSC, "fields": [*AVSC["fields"], {"name": "a", "type": "nope"}]}))
    with pytest.raises(ConfigError, match=r"log_schema.avro_schema: .*bad.avsc is not an Avro schema"):
        load_shape(_phone_settings(bad))
    with pytest.raises(ConfigError, match=r"log_schema.avro_schema.*gone.avsc"):
        load_shape(_phone_settings(tmp_path / "gone.avsc"))
