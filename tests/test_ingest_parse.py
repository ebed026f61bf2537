"""Pure decode/flatten/quarantine transforms on tiny DataFrames: real Spark, no Kafka."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from builders import encode, escape, expected_rows, make_batches, normalize

from ingest import parse
from loglake.settings import IngestSettings


def kafka_df(spark: Any, payloads: list[bytes | None], topic: str = "logs", partition: int = 0) -> Any:
    rows = [(None, p, topic, partition, i, datetime(2025, 11, 24, 12, 0, 0), 0) for i, p in enumerate(payloads)]
    schema = (
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, timestampType int"
    )
    return spark.createDataFrame(rows, schema)


def stage(spark: Any, payloads: list[bytes | None], **settings: Any) -> list[dict[str, Any]]:
    kafka = kafka_df(spark, payloads)
    df = kafka.transform(parse.stage(IngestSettings(**settings)))
    bad = parse.with_raw_bytes(df.where(df.reason_code.isNotNull()), kafka)
    return [r.asDict(recursive=True) for r in df.where(df.reason_code.isNull()).unionByName(bad).collect()]


def good(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["reason_code"] is None]


def bad(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (r for r in rows if r["reason_code"] is not None), key=lambda r: (r["kafka_offset"], r["record_index"] or -1)
    )


@pytest.mark.parametrize(("encoding", "wire"), [("avro", False), ("avro", True), ("json", False)])
def test_good_batches_flatten_to_one_row_per_record(spark: Any, encoding: str, wire: bool) -> None:
    batches = make_batches(5, seed=1)
    rows = stage(spark, [encode(b, encoding, wire) for b in batches], encoding=encoding, confluent_wire_format=wire)
    assert not bad(rows)
    got = {r["record_key"]: normalize(r) for r in good(rows)}
    assert got == expected_rows(batches)


def test_record_key_and_kafka_coordinates(spark: Any) -> None:
    [batch] = make_batches(1, seed=2)
    batch["service"] = "checkout:eu"
    rows = good(stage(spark, [encode(batch)]))
    assert sorted(r["record_key"] for r in rows) == sorted(
        f"checkout%3Aeu:{batch['batch_id']}:{i}" for i in range(len(batch["records"]))
    )
    assert {(r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in rows} == {("logs", 0, 0)}
    assert sorted(r["record_index"] for r in rows) == list(range(len(batch["records"])))


def test_empty_record_list_yields_no_rows(spark: Any) -> None:
    [batch] = make_batches(1, seed=3)
    batch["records"] = []
    assert stage(spark, [encode(batch)]) == []


UNDECODABLE = [
    (lambda p: p + b"\x00\x01", parse.REASON_TRAILING, "trailing data"),
    (lambda p: p[: len(p) // 2], parse.REASON_NOT_AVRO, "truncated"),
    (lambda p: b"", parse.REASON_NOT_AVRO, "not a binary-Avro"),
    (lambda p: b"hello, not avro at all", parse.REASON_NOT_AVRO, "not a binary-Avro"),
    (lambda p: b'{"batch_id": "x"}', parse.REASON_NOT_AVRO, "not a binary-Avro"),
    # A string length of about 2^31 must fail cleanly, not allocate.
    (lambda p: b"\x02a\xfe\xff\xff\xff\x0f", parse.REASON_NOT_AVRO, "not a binary-Avro"),
]


def test_undecodable_avro_is_quarantined_with_reason(spark: Any) -> None:
    # Every kind in one micro-batch, as they arrive: each is judged on its own bytes.
    batches = make_batches(1 + len(UNDECODABLE), seed=4)
    mangled = [mangle(encode(b)) for (mangle, _, _), b in zip(UNDECODABLE, batches[1:], strict=True)]
    payloads = [encode(batches[0]), *mangled]
    rows = stage(spark, payloads)
    quarantined = bad(rows)
    assert len(quarantined) == len(UNDECODABLE)
    for offset, (q, (_, code, words)) in enumerate(zip(quarantined, UNDECODABLE, strict=True), start=1):
        assert (q["reason_code"], q["kafka_offset"], q["record_index"]) == (code, offset, None)
        assert words in q["reason"], (offset, q["reason"])
        assert q["raw_value"] == payloads[offset]
    # The good message next to them is untouched.
    assert {r["record_key"] for r in good(rows)} == set(expected_rows(batches[:1]))


def test_too_large_message_names_the_limit(spark: Any) -> None:
    [batch] = make_batches(1, seed=5)
    payload = encode(batch)
    [q] = bad(stage(spark, [payload], max_message_bytes=len(payload) - 1))
    assert q["reason_code"] == parse.REASON_TOO_LARGE
    assert f"{len(payload)} bytes" in q["reason"] and "ingest.max_message_bytes" in q["reason"]


def test_missing_wire_format_header(spark: Any) -> None:
    [batch] = make_batches(1, seed=6)
    [q] = bad(stage(spark, [encode(batch, wire=False)], confluent_wire_format=True))
    assert q["reason_code"] == parse.REASON_BAD_HEADER
    assert "confluent_wire_format" in q["reason"]


def test_unusable_ts_quarantines_only_that_record(spark: Any) -> None:
    [batch] = make_batches(1, seed=8, records=(5, 5))
    batch["records"][2]["ts"] = -1
    batch["records"][4]["ts"] = 5_000_000_000_000  # year 2128
    rows = stage(spark, [encode(batch)])
    assert [(q["record_index"], q["reason_code"]) for q in bad(rows)] == [(2, "bad_ts"), (4, "bad_ts")]
    assert "record 2: ts -1 is outside" in bad(rows)[0]["reason"]
    assert json.loads(bad(rows)[0]["record_json"])["event"] == batch["records"][2]["event"]
    assert sorted(r["record_index"] for r in good(rows)) == [0, 1, 3]


def test_json_reasons_name_the_field(spark: Any) -> None:
    [batch] = make_batches(1, seed=9, records=(3, 3))
    ok = json.loads(encode(batch, "json"))
    no_service = {k: v for k, v in ok.items() if k != "service"}
    wrong_type = {**ok, "sent_at": "yesterday"}
    bad_records = {
        **ok,
        "records": [
            {k: v for k, v in ok["records"][0].items() if k != "ts"},
            None,
            {k: v for k, v in ok["records"][2].items() if k not in ("level", "attributes")},
        ],
    }
    payloads = [
        b"{not json",
        json.dumps(no_service).encode(),
        json.dumps(wrong_type).encode(),
        json.dumps(bad_records).encode(),
    ]
    got = [
        (q["kafka_offset"], q["record_index"], q["reason_code"], q["reason"])
        for q in bad(stage(spark, payloads, encoding="json"))
    ]
    assert got == [
        (0, None, "not_json", "not a JSON LogBatch object"),
        (1, None, "missing_field", "field service is missing or of the wrong type"),
        (2, None, "missing_field", "field sent_at is missing or of the wrong type"),
        (3, 0, "bad_ts", "record 0: ts is missing or not epoch milliseconds"),
        (3, 1, "null_record", "record 1: null instead of a record"),
        (3, 2, "missing_field", "record 2: field level is missing"),
    ]


def test_json_attributes_default_to_empty_map(spark: Any) -> None:
    [batch] = make_batches(1, seed=10, records=(1, 1))
    doc = json.loads(encode(batch, "json"))
    del doc["records"][0]["attributes"]
    [row] = good(stage(spark, [json.dumps(doc).encode()], encoding="json"))
    assert row["attributes"] == {}


def test_quarantine_rows_are_keyed_by_kafka_coordinates(spark: Any) -> None:
    [batch] = make_batches(1, seed=11, records=(3, 3))
    batch["records"][1]["ts"] = -5
    df = kafka_df(spark, [b"junk", encode(batch)], topic="t1", partition=3)
    q = parse.quarantine_rows(df.transform(parse.stage(IngestSettings())))
    got = sorted((r["quarantine_key"], r["quarantine_date"], r["batch_id"]) for r in q.collect())
    assert got == [("t1:3:0:m", "2025-11-24", None), ("t1:3:1:1", "2025-11-24", batch["batch_id"])]


def test_log_rows_have_the_table_columns(spark: Any) -> None:
    from builders import LOGBATCH_COLUMNS

    [batch] = make_batches(1, seed=12)
    df = kafka_df(spark, [encode(batch)]).transform(parse.stage(IngestSettings()))
    assert tuple(parse.log_rows(df).columns) == LOGBATCH_COLUMNS
    assert escape("a:b") == "a%3Ab"


def _zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _negative_block_encoding(batch: dict[str, Any]) -> bytes:
    """The batch with its records in one array block written the other valid way: a negative count
    followed by the block's size in bytes (Avro spec, "Arrays")."""
    import io

    import fastavro

    from loglake.shape import avro_schema

    schema = fastavro.parse_schema(avro_schema())
    head = io.BytesIO()
    fastavro.schemaless_writer(head, schema, {**batch, "records": []})
    record_schema = schema["fields"][-1]["type"]["items"]
    body = io.BytesIO()
    for record in batch["records"]:
        fastavro.schemaless_writer(body, record_schema, record)
    assert head.getvalue().endswith(b"\x00")  # the empty array's end marker
    block = _zigzag(-len(batch["records"])) + _zigzag(len(body.getvalue())) + body.getvalue()
    return head.getvalue()[:-1] + block + b"\x00"


def test_array_blocks_with_negative_counts_decode(spark: Any) -> None:
    [batch] = make_batches(1, seed=20, records=(4, 4))
    payload = _negative_block_encoding(batch)
    assert payload != encode(batch) and len(payload) > len(encode(batch))
    rows = stage(spark, [payload, payload + b"\x00\x01"])
    assert {r["record_key"]: normalize(r) for r in good(rows)} == expected_rows([batch])
    # Trailing bytes after such a message are still caught.
    assert [(q["kafka_offset"], q["reason_code"]) for q in bad(rows)] == [(1, parse.REASON_TRAILING)]


def test_ts_of_long_min_is_a_bad_ts_not_an_undecodable_message(spark: Any) -> None:
    [batch] = make_batches(1, seed=21, records=(3, 3))
    batch["records"][1]["ts"] = -(2**63)
    rows = stage(spark, [encode(batch)])
    assert [(q["record_index"], q["reason_code"]) for q in bad(rows)] == [(1, parse.REASON_BAD_TS)]
    assert "ts -9223372036854775808 is outside" in bad(rows)[0]["reason"]
    assert sorted(r["record_index"] for r in good(rows)) == [0, 2]


def test_strings_that_are_not_utf8_are_quarantined_not_stored(spark: Any) -> None:
    batches = make_batches(2, seed=22, records=(3, 3))
    batches[0]["records"][1]["message"] = "IN?FO marker-one"
    batches[1]["host"] = "host-?-marker"
    payloads = [
        encode(batches[0]).replace(b"IN?FO marker-one", b"IN\xffFO marker-one"),
        encode(batches[1]).replace(b"host-?-marker", b"host-\xfe-marker"),
    ]
    rows = stage(spark, payloads)
    got = [(q["kafka_offset"], q["record_index"], q["reason_code"], q["reason"]) for q in bad(rows)]
    assert got == [
        (0, 1, parse.REASON_INVALID_UTF8, "record 1: field message is not valid UTF-8"),
        (1, None, parse.REASON_INVALID_UTF8, "field host is not valid UTF-8"),
    ]
    assert sorted(r["record_index"] for r in good(rows)) == [0, 2]
    assert all("\ufffd" not in (r["message"] or "") for r in good(rows))
    # Nothing is lost: the quarantine keeps the original bytes.
    assert bad(rows)[0]["raw_value"] == payloads[0]


def test_too_many_records_quarantines_the_message(spark: Any) -> None:
    [small, big] = make_batches(2, seed=23, records=(3, 3))
    big["records"] = big["records"] * 4
    [q] = bad(stage(spark, [encode(small), encode(big)], max_records_per_message=10))
    assert (q["kafka_offset"], q["reason_code"]) == (1, parse.REASON_TOO_MANY_RECORDS)
    assert q["reason"] == "message holds 12 records, over ingest.max_records_per_message=10"


def test_raw_bytes_ride_on_the_first_bad_record_only(spark: Any) -> None:
    [batch] = make_batches(1, seed=24, records=(6, 6))
    for i in (1, 3, 4):
        batch["records"][i]["ts"] = -1
    payload = encode(batch)
    quarantined = bad(stage(spark, [payload]))
    assert [(q["record_index"], q["raw_value"] == payload) for q in quarantined] == [
        (1, True),
        (3, False),
        (4, False),
    ]
    assert [q["raw_value"] for q in quarantined[1:]] == [None, None]
    assert all(q["record_json"] for q in quarantined)


def test_tally_counts_reasons_and_finds_a_batch_repeated_across_partitions(spark: Any) -> None:
    batches = make_batches(3, seed=41, records=(3, 3))
    batches[1]["records"][0]["ts"] = -1
    trailing = encode(batches[2]) + b"\x00\x01"
    kafka = kafka_df(spark, [encode(batches[0]), encode(batches[1]), trailing], partition=0).unionByName(
        kafka_df(spark, [encode(batches[0])], partition=1)  # the same LogBatch again, elsewhere
    )
    rows = parse.tally(kafka.transform(parse.stage(IngestSettings())), limit=10).collect()
    [whole] = [r for r in rows if r["grouping"]]
    assert (whole["batches"], whole["distinct_batches"]) == (3, 2)
    by_group = {(r["reason_code"], r["kafka_partition"]): r for r in rows if not r["grouping"]}
    assert {k: (r["rows"], r["messages"]) for k, r in by_group.items()} == {
        (None, 0): (5, 1),  # batch 1 is counted as a message where its record 0 is: bad_ts
        (None, 1): (3, 1),
        ("bad_ts", 0): (1, 1),
        ("avro_trailing_bytes", 0): (1, 1),
    }
    assert [(f["kafka_offset"], f["record_index"]) for f in by_group[("avro_trailing_bytes", 0)]["bad_rows"]] == [
        (2, None)
    ]
    assert [(f["kafka_offset"], f["record_index"]) for f in by_group[("bad_ts", 0)]["bad_rows"]] == [(1, 0)]
    assert by_group[(None, 0)]["bad_rows"] == by_group[(None, 1)]["bad_rows"] == []


def test_tally_finds_no_repeat_among_distinct_batches(spark: Any) -> None:
    batches = make_batches(4, seed=42)
    rows = parse.tally(kafka_df(spark, [encode(b) for b in batches]).transform(parse.stage(IngestSettings())), 10)
    [whole] = [r for r in rows.collect() if r["grouping"]]
    assert whole["batches"] == whole["distinct_batches"] == 4
