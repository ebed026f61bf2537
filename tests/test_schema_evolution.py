"""Writer schemas by id, read into one growing reader schema: the pure parts, on tiny DataFrames.

No registry here: the decodings are built by hand the way :class:`ingest.registry.SchemaBook` builds
them, so every reason and every added column is checked without a server (the registry's own path
is tested against a real one in test_schema_registry).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from builders import as_version, encode_with, make_batches
from test_ingest_parse import bad, good, kafka_df

from app.produce import schema_versions
from ingest import parse
from ingest.schema import Decoding, SchemaMismatch, encoding_delta, merge
from loglake.settings import IngestSettings
from loglake.shape import default_shape
from loglake.shape import with_plain_times as plain_times

RESERVED = {"record_key", "email", "kafka_offset"}


def reader_schema() -> dict[str, Any]:
    return json.loads(default_shape().schema)


def with_plain_times(schema: dict[str, Any]) -> dict[str, Any]:
    return plain_times(schema, default_shape())


def decoding(**kw: Any) -> Decoding:
    versions = schema_versions()
    reader = reader_schema()
    batch_fields: list[str] = []
    record_fields: list[str] = []
    writers = {}
    for sid, name in ((1, "v1"), (2, "v2"), (3, "v3")):
        writer = with_plain_times(versions[name])
        reader, b, r = merge(reader, writer, RESERVED)
        batch_fields += b
        record_fields += r
        writers[sid] = json.dumps(writer)
    args: dict[str, Any] = {
        "reader": json.dumps(reader),
        "writers": writers,
        "deltas": {sid: encoding_delta(reader, json.loads(w)) for sid, w in writers.items()},
        "batch_fields": tuple(batch_fields),
        "record_fields": tuple(record_fields),
    }
    args.update(kw)
    return Decoding(**args)


def staged(spark: Any, payloads: list[bytes], plan: Decoding, **settings: Any) -> list[dict[str, Any]]:
    kafka = kafka_df(spark, payloads)
    df = kafka.transform(parse.stage(IngestSettings(**settings), decoding=plan))
    return [r.asDict(recursive=True) for r in df.collect()]


def test_merge_adds_optional_fields_at_both_levels() -> None:
    versions = schema_versions()
    reader, batch_new, record_new = merge(reader_schema(), versions["v2"], RESERVED)
    assert (batch_new, record_new) == ([], ["trace_id"])
    reader, batch_new, record_new = merge(reader, versions["v3"], RESERVED)
    assert (batch_new, record_new) == (["env"], [])
    env = next(f for f in reader["fields"] if f["name"] == "env")
    # Optional in the reader: writers without the field resolve to null.
    assert env["type"][0] == "null" and env["default"] is None
    # A field the writer dropped stays in the reader (old rows and other writers still have it).
    assert any(f["name"] == "region" for f in reader["fields"])


@pytest.mark.parametrize(
    ("level", "name", "words"),
    [
        ("record", "Email", "records[].Email"),  # a look-alike of a contract column, case aside
        ("batch", "level", "level"),  # a record column's name at the batch level
        ("record", "_hoodie_commit_time", "starts with _"),
        ("batch", "kafka_offset", "kafka_offset"),
    ],
)
def test_merge_refuses_a_field_named_like_a_column(level: str, name: str, words: str) -> None:
    writer = json.loads(json.dumps(schema_versions()["v1"]))
    field = {"name": name, "type": ["null", "string"], "default": None}
    if level == "batch":
        writer["fields"].append(field)
    else:
        writer["fields"][5]["type"]["items"]["fields"].append(field)
    with pytest.raises(SchemaMismatch, match="rename it") as err:
        merge(reader_schema(), writer, RESERVED)
    assert words in str(err.value)


def test_three_writer_schemas_decode_in_one_pass(spark: Any) -> None:
    versions = ("v1", "v2", "v3")
    batches = [as_version(b, versions[i % 3], f"m{i}") for i, b in enumerate(make_batches(6, seed=31, records=(2, 4)))]
    schemas = schema_versions()
    payloads = [encode_with(schemas[versions[i % 3]], b, i % 3 + 1) for i, b in enumerate(batches)]
    rows = staged(spark, payloads, decoding())
    assert not bad(rows)
    assert len(rows) == sum(len(b["records"]) for b in batches)
    for row in rows:
        sent = batches[row["kafka_offset"]]
        record = sent["records"][row["record_index"]]
        assert row["trace_id"] == record.get("trace_id")
        assert row["env"] == sent.get("env")
        assert row["region"] == sent.get("region")
        assert (row["user_id"], row["email"], row["message"]) == (record["user_id"], record["email"], record["message"])
    assert {r["env"] is None for r in rows} == {True, False}


def test_ids_the_registry_refused_or_does_not_know_are_quarantined(spark: Any) -> None:
    [batch] = make_batches(1, seed=32, records=(2, 2))
    v1 = schema_versions()["v1"]
    plan = decoding(rejected={4: "schema id 4 cannot be read into the table: level is int"}, unknown=frozenset({9}))
    payloads = [
        encode_with(v1, batch, 4),
        encode_with(v1, batch, 9),
        encode_with(v1, batch, 1),
        encode_with(v1, batch, 5),
    ]
    rows = staged(spark, payloads, plan)
    reasons = {r["kafka_offset"]: (r["reason_code"], r["reason"]) for r in bad(rows)}
    assert reasons[0] == (parse.REASON_INCOMPATIBLE_SCHEMA, "schema id 4 cannot be read into the table: level is int")
    assert reasons[1][0] == parse.REASON_UNKNOWN_SCHEMA and "schema id 9 is not in the schema registry" in reasons[1][1]
    # Not met before: pending, which the writer resolves by a lookup before anything is written.
    assert reasons[3] == (parse.REASON_SCHEMA_PENDING, "schema id 5 is not looked up yet")
    assert {r["kafka_offset"] for r in good(rows)} == {2}
    closed = staged(spark, payloads, Decoding(**{**plan.__dict__, "closed": True}))
    over = next(r for r in bad(closed) if r["kafka_offset"] == 3)
    assert over["reason_code"] == parse.REASON_UNKNOWN_SCHEMA
    assert "ingest.schema_registry.max_new_ids_per_batch" in over["reason"]


@pytest.mark.parametrize("by_length", [True, False], ids=["schema-length-delta", "second-decode"])
def test_strict_check_reads_each_message_with_its_own_writer_schema(spark: Any, by_length: bool) -> None:
    """Messages with a trailing byte are caught although decoded into another reader schema: from
    the lengths the schemas fix (v1 adds a byte per record, v3 one per message), or by decoding
    again with the writer schema where no delta is known."""
    schemas = schema_versions()
    plan = decoding() if by_length else decoding(deltas={})
    assert bool(plan.deltas) == by_length
    payloads = []
    for i, (version, b) in enumerate(zip(("v1", "v2", "v3"), make_batches(3, seed=33, records=(2, 5)), strict=True)):
        payload = encode_with(schemas[version], as_version(b, version, "x"), i + 1)
        payloads += [payload, payload + b"\x00"]
    rows = staged(spark, payloads, plan)
    assert {r["kafka_offset"] for r in good(rows)} == {0, 2, 4}
    assert {(r["kafka_offset"], r["reason_code"]) for r in bad(rows)} == {
        (1, parse.REASON_TRAILING),
        (3, parse.REASON_TRAILING),
        (5, parse.REASON_TRAILING),
    }


def test_length_deltas_follow_the_schemas() -> None:
    versions = {k: with_plain_times(v) for k, v in schema_versions().items()}
    reader = reader_schema()
    for v in versions.values():
        reader, _, _ = merge(reader, v, set())
    # v1 lacks env (a null: 1 byte a message) and trace_id (1 byte a record); v3 lacks region.
    assert [encoding_delta(reader, versions[v]) for v in ("v1", "v2", "v3")] == [(1, 1), (1, 0), (1, 0)]
    promoted = json.loads(json.dumps(versions["v1"]))
    promoted["fields"][5]["type"]["items"]["fields"][0]["type"] = "int"  # ts as int: read as long
    assert encoding_delta(reader, promoted) is None  # value-dependent: decoded again


def test_a_message_without_the_header_names_the_registry_setting(spark: Any) -> None:
    from builders import encode

    [batch] = make_batches(1, seed=34, records=(2, 2))
    [row] = staged(spark, [encode(batch)], decoding())
    assert row["reason_code"] == parse.REASON_BAD_HEADER
    assert "ingest.schema_registry.url" in row["reason"]


def test_the_tables_columns_no_writer_has_are_staged_as_nulls(spark: Any) -> None:
    [batch] = make_batches(1, seed=35, records=(2, 2))
    plan = Decoding(
        reader=json.dumps(reader_schema()),
        writers={1: json.dumps(with_plain_times(schema_versions()["v1"]))},
        absent=(("env", "string"), ("trace_id", "string"), ("score", "bigint")),
        table_columns=("env", "trace_id", "score"),
    )
    kafka = kafka_df(spark, [encode_with(schema_versions()["v1"], batch, 1)])
    rows = parse.log_rows(kafka.transform(parse.stage(IngestSettings(), decoding=plan)))
    assert rows.columns[-3:] == ["env", "trace_id", "score"]
    assert dict(rows.dtypes)["score"] == "bigint"
    assert {(r["env"], r["trace_id"], r["score"]) for r in rows.collect()} == {(None, None, None)}
