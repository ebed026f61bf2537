"""The ingest job end to end: real Kafka broker, real Spark, real Hudi, checked with hudi-rs too."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from builders import LOGBATCH_COLUMNS, encode, expected_rows, make_batches, normalize, read_hudi_rs, send
from conftest import free_port

from ingest.job import run
from ingest.metrics import IngestMetrics
from ingest.summary import summarize

pytestmark = pytest.mark.integration


def quarantine_by_coordinates(spark: Any, settings: Any) -> dict[tuple[int, int | None], Any]:
    """The quarantine table's rows by (Kafka offset, record index), read with Spark."""
    return {
        (r["kafka_offset"], r["record_index"]): r
        for r in spark.read.format("hudi").load(settings.table.effective_quarantine_path).collect()
    }


def timeline(path: str) -> list[str]:
    return sorted(p.name for p in (Path(path) / ".hoodie" / "timeline").iterdir() if not p.name.startswith("."))


def test_round_trip_spark_and_hudi_rs_agree(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any
) -> None:
    topic = topic_factory(partitions=3)
    batches = make_batches(60, seed=21)
    send(kafka_bootstrap, topic, [encode(b) for b in batches])
    settings = settings_factory(topic, "kafka.max_offsets_per_trigger=25")
    metrics = IngestMetrics()

    result = run(settings, once=True, metrics=metrics)

    expected = expected_rows(batches)
    path = settings.table.path
    assert result.records_written == len(expected)
    assert result.rows_quarantined == 0
    assert result.batches >= 3  # 60 messages, at most 25 per micro-batch

    df = spark.read.format("hudi").load(path)
    rows = [r.asDict(recursive=True) for r in df.collect()]
    assert len(rows) == len(expected)  # no duplicates
    assert {r["record_key"]: normalize(r) for r in rows} == expected
    for r in rows:
        assert r["_hoodie_record_key"] == r["record_key"]
        assert r["_hoodie_partition_path"] == f"event_date={r['event_date']}"
        assert r["kafka_topic"] == topic
        assert r["_hoodie_commit_time"]

    # hudi-rs reads the same rows without Spark or a JVM.
    independent = read_hudi_rs(path).to_pylist()
    assert len(independent) == len(expected)
    assert {r["record_key"]: normalize(r) for r in independent} == expected
    assert set(read_hudi_rs(path).column_names) >= set(LOGBATCH_COLUMNS)

    # A merge-on-read table written with delta commits, hive-style partitions.
    props = (Path(path) / ".hoodie" / "hoodie.properties").read_text()
    assert "hoodie.table.type=MERGE_ON_READ" in props
    completed = [n for n in timeline(path) if n.endswith(".deltacommit") and "_" in n]
    assert len(completed) == result.batches
    assert {p.name for p in Path(path).glob("event_date=*")} == {
        f"event_date={d}" for d in {e["event_date"] for e in expected.values()}
    }

    # Metrics came from the listener and the writer.
    value = metrics.registry.get_sample_value
    assert value("loglake_ingest_records_written_total") == len(expected)
    assert value("loglake_ingest_input_messages_total") == len(batches) == result.messages
    assert value("loglake_ingest_batches_total") == result.batches
    assert value("loglake_ingest_last_commit_timestamp_seconds") > 0
    assert value("loglake_ingest_batch_duration_seconds_count") == result.batches
    for partition in range(3):
        assert value("loglake_ingest_kafka_offsets_behind", {"topic": topic, "partition": str(partition)}) == 0
        labels = {"topic": topic, "partition": str(partition)}
        assert value("loglake_ingest_kafka_oldest_unconsumed_age_seconds", labels) == 0  # caught up

    # The summary (the demo's last step) reads it back; no bad input, so no quarantine table.
    summary = summarize(settings)
    assert summary["rows"] == summary["distinct_keys"] == len(expected)
    assert summary["quarantine"] == {}
    assert not Path(settings.table.effective_quarantine_path).exists()

    # Nothing new: a second run commits nothing.
    again = run(settings, once=True)
    assert again.records_written == 0
    assert len([n for n in timeline(path) if n.endswith(".deltacommit") and "_" in n]) == result.batches


def test_resent_batches_do_not_duplicate(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any
) -> None:
    topic = topic_factory(partitions=2)
    batches = make_batches(30, seed=22)
    # Retries inside one micro-batch: Hudi's pre-combine is off, so the writer must catch these.
    send(kafka_bootstrap, topic, [encode(b) for b in batches + batches[20:25]])
    settings = settings_factory(topic)
    first = run(settings, once=True)
    assert first.batches == 1
    assert first.records_written == len(expected_rows(batches))
    # A producer retry sends the same batches again, at new offsets.
    send(kafka_bootstrap, topic, [encode(b) for b in batches[:10]])
    second = run(settings, once=True)
    assert second.records_written == sum(len(b["records"]) for b in batches[:10])
    rows = read_hudi_rs(settings.table.path).to_pylist()
    assert len(rows) == len(expected_rows(batches))
    assert len({r["record_key"] for r in rows}) == len(rows)


@pytest.mark.parametrize(("encoding", "wire"), [("avro", True), ("json", False)])
def test_quarantine_holds_every_bad_message_and_good_records_land(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any, encoding: str, wire: bool
) -> None:
    topic = topic_factory(partitions=1)
    batches = make_batches(12, seed=23, records=(4, 9))
    batches[3]["records"][1]["ts"] = -10  # one bad record inside an otherwise good message
    payloads = [encode(b, encoding, wire) for b in batches]
    bad_payloads = {
        "garbage": b"\x00\x00\x00\x00\x01garbage",
        "truncated": payloads[0][: len(payloads[0]) // 3],
        "empty": b"",
        "oversized": encode(batches[5], encoding, wire) + b" " * 5000,
    }
    # Interleave bad messages between good ones, all in one partition, to keep offsets predictable.
    stream = payloads[:4] + list(bad_payloads.values()) + payloads[4:]
    send(kafka_bootstrap, topic, stream, partition=0)
    settings = settings_factory(
        topic, f"ingest.encoding={encoding}", f"ingest.confluent_wire_format={wire}", "ingest.max_message_bytes=5000"
    )

    result = run(settings, once=True)

    expected = expected_rows(batches)
    bad_key = next(k for k, v in expected.items() if v["ts"] == -10)
    del expected[bad_key]
    got = {r["record_key"]: normalize(r) for r in read_hudi_rs(settings.table.path).to_pylist()}
    assert got == expected
    assert result.records_written == len(expected)

    quarantine = quarantine_by_coordinates(spark, settings)
    assert set(quarantine) == {(3, 1), (4, None), (5, None), (6, None), (7, None)}
    assert quarantine[(3, 1)]["reason_code"] == "bad_ts"
    assert quarantine[(7, None)]["reason_code"] == "too_large"
    for offset, raw in zip(range(4, 8), bad_payloads.values(), strict=True):
        assert bytes(quarantine[(offset, None)]["raw_value"]) == raw
        assert quarantine[(offset, None)]["reason"]
    assert result.rows_quarantined == 5
    # The independent reader sees the quarantine table too.
    assert read_hudi_rs(settings.table.effective_quarantine_path).num_rows == 5


@pytest.mark.parametrize("flag_limit", [100_000, 1])
def test_rows_of_the_deferred_checks_never_reach_the_table(
    spark: Any,
    kafka_bootstrap: str,
    topic_factory: Any,
    settings_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    flag_limit: int,
) -> None:
    """Trailing bytes and invalid UTF-8 are checked in the counting pass only; the write pass must still
    leave their rows out, by coordinates or (past the limit) by checking again."""
    from ingest import sink

    monkeypatch.setattr(sink, "FLAG_LIMIT", flag_limit)
    topic = topic_factory(partitions=1)
    batches = make_batches(6, seed=31, records=(4, 4))
    batches[1]["records"][2]["message"] = "IN?FO marker-one"
    batches[1]["records"][3]["message"] = "IN?FO marker-two"
    batches[2]["host"] = "host-?-marker"
    payloads = [encode(b) for b in batches]
    payloads[1] = (
        payloads[1]
        .replace(b"IN?FO marker-one", b"IN\xffFO marker-one")
        .replace(b"?FO marker-two", b"\xfeFO marker-two")
    )
    payloads[2] = payloads[2].replace(b"host-?-marker", b"host-\xfe-marker")
    payloads[3] = payloads[3] + b"\x00\x01"  # trailing bytes
    send(kafka_bootstrap, topic, payloads, partition=0)
    settings = settings_factory(topic)

    result = run(settings, once=True)

    expected = expected_rows([batches[0], batches[4], batches[5]])
    expected.update({k: v for k, v in expected_rows([batches[1]]).items() if v["record_index"] < 2})
    got = {r["record_key"]: normalize(r) for r in read_hudi_rs(settings.table.path).to_pylist()}
    assert got == expected
    assert result.records_written == len(expected)
    quarantine = quarantine_by_coordinates(spark, settings)
    assert {k: q["reason_code"] for k, q in quarantine.items()} == {
        (1, 2): "invalid_utf8",
        (1, 3): "invalid_utf8",
        (2, None): "invalid_utf8",
        (3, None): "avro_trailing_bytes",
    }
    assert bytes(quarantine[(1, 2)]["raw_value"]) == payloads[1] and quarantine[(1, 3)]["raw_value"] is None
    assert result.quarantined_by_reason == {"invalid_utf8": 3, "avro_trailing_bytes": 1}


def test_metrics_endpoint_serves_ingest_metrics() -> None:
    from loglake import metrics as prom

    m = IngestMetrics()
    m.records_written.inc(7)
    port = free_port()
    prom.serve(m.registry, port, "127.0.0.1")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "loglake_ingest_records_written_total 7.0" in body


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_cli_fails_fast_naming_the_setting(tmp_path: Path) -> None:
    no_table = _cli("ingest", "--once")
    assert no_table.returncode == 2
    assert "table.path" in no_table.stderr

    bad_trigger = _cli("ingest", "--table-path", str(tmp_path / "t"), "--trigger", "soon")
    assert bad_trigger.returncode == 2
    assert "ingest.trigger" in bad_trigger.stderr

    port = free_port()  # nothing listens there
    unreachable = _cli(
        "ingest",
        "--once",
        "--table-path",
        str(tmp_path / "t"),
        "--bootstrap-servers",
        f"127.0.0.1:{port}",
        "--set",
        "kafka.connect_timeout_seconds=2",
    )
    assert unreachable.returncode == 1
    assert f"kafka.bootstrap_servers=127.0.0.1:{port}" in unreachable.stderr
    assert not (tmp_path / "t").exists()
