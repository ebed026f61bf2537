"""Ingest through a real schema registry (Apicurio, Confluent API): writer schemas by id, evolution
into new columns, refused and unknown ids to quarantine, and a registry that goes away mid-stream.

Every value is checked field by field against what was sent, with Spark and with hudi-rs.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from builders import (
    as_version,
    encode_with,
    expected_rows,
    make_batches,
    normalize,
    read_hudi_rs,
    send,
)
from conftest import free_port

from app.produce import schema_versions
from devservers import registry_server
from ingest.job import run
from ingest.metrics import IngestMetrics
from loglake.errors import SchemaRegistryUnavailableError

pytestmark = pytest.mark.integration

ADDED = ("trace_id", "env")


def register_versions(url: str, topic: str) -> dict[str, int]:
    """v1, v2 and v3 under the topic's subject, in order, as BACKWARD-compatible versions."""
    return {
        name: registry_server.register(url, f"{topic}-value", json.dumps(s)) for name, s in schema_versions().items()
    }


def produce_versions(
    bootstrap: str, topic: str, ids: dict[str, int], versions: list[str], seed: int
) -> list[dict[str, Any]]:
    """One message per entry of ``versions``, each a batch written with that schema version."""
    schemas = schema_versions()
    raw = make_batches(len(versions), seed=seed, records=(3, 6))
    batches = [as_version(b, v, f"s{seed}m{i}") for i, (b, v) in enumerate(zip(raw, versions, strict=True))]
    send(bootstrap, topic, [encode_with(schemas[v], b, ids[v]) for b, v in zip(batches, versions, strict=True)])
    return batches


def expected_with_extras(batches: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The contract's columns (computed without loglake code) plus the added columns, by record key."""
    rows = expected_rows(batches)
    for b in batches:
        for key, row in rows.items():
            if key.split(":")[-2] == b["batch_id"]:
                index = int(key.rsplit(":", 1)[1])
                row["trace_id"] = b["records"][index].get("trace_id")
                row["env"] = b.get("env")
    return rows


def table_rows(spark: Any, path: str) -> dict[str, dict[str, Any]]:
    rows = [r.asDict(recursive=True) for r in spark.read.format("hudi").load(path).collect()]
    return {r["record_key"]: {**normalize(r), **{c: r.get(c) for c in ADDED}} for r in rows}


def hudi_rs_rows(path: str) -> dict[str, dict[str, Any]]:
    rows = read_hudi_rs(path).to_pylist()
    return {r["record_key"]: {**normalize(r), **{c: r.get(c) for c in ADDED}} for r in rows}


def quarantine(spark: Any, path: str) -> list[dict[str, Any]]:
    if not (Path(path) / ".hoodie").exists():
        return []
    return [r.asDict() for r in spark.read.format("hudi").load(path).collect()]


def test_three_versions_and_an_unknown_id_in_one_micro_batch(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any, schema_registry: str
) -> None:
    topic = topic_factory(partitions=2)
    ids = register_versions(schema_registry, topic)
    batches = produce_versions(kafka_bootstrap, topic, ids, ["v1", "v2", "v3"] * 4, seed=61)
    unknown_id = max(ids.values()) + 1000
    [stray] = make_batches(1, seed=62)
    send(kafka_bootstrap, topic, [encode_with(schema_versions()["v1"], stray, unknown_id)])
    settings = settings_factory(topic, f"ingest.schema_registry.url={schema_registry}")

    result = run(settings, once=True)

    assert result.batches == 1  # every version and the stray id in one micro-batch
    path = str(settings.table.path)
    expected = expected_with_extras(batches)
    assert table_rows(spark, path) == expected
    columns = spark.read.format("hudi").load(path).columns
    assert set(columns[-2:]) == {"trace_id", "env"}  # added after the contract's columns
    # The independent reader sees the same values, field by field, the new columns included.
    assert hudi_rs_rows(path) == expected
    [bad] = quarantine(spark, settings.table.effective_quarantine_path)
    assert bad["reason_code"] == "unknown_schema_id"
    assert f"schema id {unknown_id} is not in the schema registry at {schema_registry}" == bad["reason"]
    assert result.quarantined_by_reason == {"unknown_schema_id": 1}

    # A restarted stream meets only v1: the columns earlier writers added are written as nulls
    # (Hudi refuses a batch that lacks a column of the table).
    later = produce_versions(kafka_bootstrap, topic, ids, ["v1", "v1"], seed=63)
    again = run(settings, once=True)
    assert again.rows_quarantined == 0
    expected |= expected_with_extras(later)
    assert table_rows(spark, path) == expected
    assert hudi_rs_rows(path) == expected


def test_writer_schemas_the_table_cannot_take_go_to_quarantine(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any, schema_registry: str
) -> None:
    topic = topic_factory(partitions=1)
    ids = register_versions(schema_registry, topic)
    v1 = schema_versions()["v1"]
    # Another team's schemas under subjects of their own (nothing checks them against ours).
    level_int = json.loads(json.dumps(v1))
    level_int["fields"][5]["type"]["items"]["fields"][1]["type"] = "int"
    look_alike = json.loads(json.dumps(v1))
    look_alike["fields"][5]["type"]["items"]["fields"].append(
        {"name": "Email", "type": ["null", "string"], "default": None}
    )
    trace_long = json.loads(json.dumps(v1))
    trace_long["fields"][5]["type"]["items"]["fields"].append(
        {"name": "trace_id", "type": ["null", "long"], "default": None}
    )
    other = {
        name: registry_server.register(schema_registry, f"{topic}-{name}", json.dumps(s), compatibility="NONE")
        for name, s in (("level_int", level_int), ("look_alike", look_alike), ("trace_long", trace_long))
    }
    good = produce_versions(kafka_bootstrap, topic, ids, ["v1", "v2"], seed=64)
    [a, b] = make_batches(2, seed=65, records=(2, 2))
    for r in a["records"]:
        r["level"] = 3
    send(
        kafka_bootstrap,
        topic,
        [encode_with(level_int, a, other["level_int"]), encode_with(look_alike, b, other["look_alike"])],
    )
    settings = settings_factory(topic, f"ingest.schema_registry.url={schema_registry}")

    result = run(settings, once=True)

    assert table_rows(spark, str(settings.table.path)) == expected_with_extras(good)
    reasons = {
        r["kafka_offset"]: (r["reason_code"], r["reason"])
        for r in quarantine(spark, settings.table.effective_quarantine_path)
    }
    assert set(reasons) == {2, 3}
    assert reasons[2][0] == "incompatible_schema"
    assert f"schema id {other['level_int']} cannot be read into the table" in reasons[2][1]
    assert "level" in reasons[2][1]
    assert reasons[3][0] == "incompatible_schema" and "records[].Email" in reasons[3][1]
    assert result.quarantined_by_reason == {"incompatible_schema": 2}

    # After a restart, a writer (of another subject) that makes trace_id a long is refused, naming it.
    [c] = make_batches(1, seed=66, records=(2, 2))
    for i, r in enumerate(c["records"]):
        r["trace_id"] = i
    send(kafka_bootstrap, topic, [encode_with(trace_long, c, other["trace_long"])])
    again = run(settings, once=True)
    assert again.quarantined_by_reason == {"incompatible_schema": 1}
    [last] = [r for r in quarantine(spark, settings.table.effective_quarantine_path) if r["kafka_offset"] == 4]
    assert "field records[].trace_id: reader union lacking writer type: LONG" in last["reason"]


def test_a_new_field_of_another_type_than_the_tables_column_is_refused(spark: Any, tmp_path: Path) -> None:
    """A column no writer of this run has met (an earlier run's, of another subject) still binds its
    type: the table's schema read at start, not the reader, says string."""
    from ingest.registry import SchemaBook
    from ingest.sink import reserved_names
    from loglake.settings import SchemaRegistrySettings
    from loglake.shape import default_shape

    shape = default_shape()
    # Nothing is fetched: the schemas are handed over as if the registry had answered.
    book = SchemaBook(
        spark,
        SchemaRegistrySettings(url="http://127.0.0.1:9"),
        shape,
        reserved_names(shape),
        table_columns={"score": "string", "trace_id": "string"},
    )
    v1 = schema_versions()["v1"]
    score_long = json.loads(json.dumps(v1))
    score_long["fields"].append({"name": "score", "type": ["null", "long"], "default": None})
    book.take(21, json.dumps(schema_versions()["v2"]))  # trace_id string, as the table has it
    book.take(22, json.dumps(score_long))
    plan = book.decoding()
    assert set(plan.writers) == {21}
    assert plan.rejected[22] == (
        "schema id 22 cannot be read into the table: field score is bigint but the table's column score is string"
    )
    # The table's columns no writer has are staged as typed nulls; trace_id now comes from id 21.
    assert plan.absent == (("score", "string"),)


def _wait_for(what: str, check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_registry_stopped_mid_stream_then_restarted(
    spark: Any,
    kafka_bootstrap: str,
    topic_factory: Any,
    settings_factory: Any,
    schema_registry: str,
    schema_registry_dir: Path,
) -> None:
    """The stream waits for the registry and loses and quarantines nothing; past the configured wait
    it stops with one line naming the settings, and a restart writes the batch once."""
    topic = topic_factory(partitions=2)
    subject, versions = f"{topic}-value", {k: json.dumps(v) for k, v in schema_versions().items()}
    # Only v1 exists when the stream starts (it learns the subject's versions then).
    ids = {"v1": registry_server.register(schema_registry, subject, versions["v1"])}
    port = int(schema_registry.split(":")[2].split("/")[0])
    first = produce_versions(kafka_bootstrap, topic, ids, ["v1", "v1"], seed=67)
    settings = settings_factory(topic, f"ingest.schema_registry.url={schema_registry}", "ingest.trigger=1 second")
    metrics = IngestMetrics()

    def value(name: str) -> float:
        return metrics.registry.get_sample_value(name) or 0.0

    outcome: dict[str, Any] = {}
    stream = threading.Thread(target=lambda: outcome.update(result=run(settings, metrics=metrics)), daemon=True)
    stream.start()
    try:
        count = sum(len(b["records"]) for b in first)
        _wait_for("the v1 messages", lambda: value("loglake_ingest_records_written_total") >= count)
        ids["v2"] = registry_server.register(schema_registry, subject, versions["v2"])
        registry_server.stop(data_dir=schema_registry_dir)
        # v2's id is new to the stream: its batch needs the registry, which is gone.
        second = produce_versions(kafka_bootstrap, topic, ids, ["v2", "v2", "v1"], seed=68)
        _wait_for(
            "the stream to notice the registry is down",
            lambda: (
                value("loglake_ingest_schema_registry_up") == 0
                and value("loglake_ingest_schema_registry_errors_total") >= 1
            ),
        )
        assert value("loglake_ingest_records_written_total") == count  # the batch waits, writes nothing
        registry_server.start(port=port, data_dir=schema_registry_dir)
        count += sum(len(b["records"]) for b in second)
        _wait_for("the waiting batch", lambda: value("loglake_ingest_records_written_total") >= count)
        assert value("loglake_ingest_schema_registry_up") == 1
    finally:
        for query in spark.streams.active:
            query.stop()
        stream.join(timeout=120)
    assert outcome["result"].rows_quarantined == 0
    assert table_rows(spark, str(settings.table.path)) == expected_with_extras(first + second)
    assert quarantine(spark, settings.table.effective_quarantine_path) == []

    # Past ingest.schema_registry.unavailable_timeout the stream stops, naming the cause and settings.
    # The registry is gone as above (its port refuses), here at an address nothing listens on: a
    # second stop and start of the registry would prove nothing more.
    gone = f"http://127.0.0.1:{free_port()}/apis/ccompat/v7"
    short = settings_factory(
        topic, f"ingest.schema_registry.url={gone}", "ingest.schema_registry.unavailable_timeout=2 seconds"
    )
    assert (short.table.path, short.checkpoint_dir) == (settings.table.path, settings.checkpoint_dir)
    ids["v3"] = registry_server.register(schema_registry, subject, versions["v3"])
    third = produce_versions(kafka_bootstrap, topic, ids, ["v3", "v1"], seed=69)
    with pytest.raises(SchemaRegistryUnavailableError) as stopped:
        run(short, once=True)
    message = str(stopped.value)
    assert "ingest.schema_registry.unavailable_timeout" in message and gone in message
    assert "\n" not in message and "Py4J" not in message
    assert stopped.value.exit_code == 7
    resumed = run(settings_factory(topic, f"ingest.schema_registry.url={schema_registry}"), once=True)
    assert resumed.rows_quarantined == 0
    assert table_rows(spark, str(settings.table.path)) == expected_with_extras(first + second + third)
