"""The log_schema settings checked against a schema at start: every mistake names the setting and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from builders import LOGBATCH_COLUMNS

from loglake.errors import ConfigError
from loglake.settings import LogSchemaSettings, load_settings
from loglake.shape import avro_schema, default_shape, load, resolve

ENVELOPE = Path(__file__).parent / "data" / "envelope.avsc"
ENVELOPE_SHAPE = {
    "records_field": "entries",
    "key_fields": ["app", "envelope_id"],
    "event_time_field": "occurred_us",
    "event_time_unit": "micros",
    "subject_columns": ["phone"],
}


def envelope() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(ENVELOPE.read_text())
    return schema


def test_the_default_shape_is_the_logbatch_contract() -> None:
    shape = default_shape()
    assert shape.columns == LOGBATCH_COLUMNS
    assert shape.key_fields == ("service", "batch_id")
    assert shape.time_columns == (("sent_at", "millis"),)
    assert shape.subject_columns == ("user_id", "email", "client_ip")


def test_another_schema_maps_to_columns() -> None:
    shape = resolve(LogSchemaSettings(**ENVELOPE_SHAPE), envelope(), "envelope.avsc")
    assert shape.columns == (
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
    )
    assert shape.record_strings == ("severity", "phone", "text")
    assert shape.record_required == ("severity", "text")
    # The event time is read as a plain long in the schema the messages are decoded with.
    entry = json.loads(shape.schema)["fields"][3]["type"]["items"]["fields"][0]
    assert entry == {"name": "occurred_us", "type": "long"}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"records_field": "records"}, "log_schema.records_field: 'records' is not a field holding an array"),
        ({"key_fields": ["app", "batch_id"]}, "log_schema.key_fields: 'batch_id' is not a field of the batch"),
        ({"key_fields": ["pod"]}, "log_schema.key_fields: 'pod' must be a required string"),
        ({"event_time_field": "ts"}, "log_schema.event_time_field: 'ts' is not a field of the records"),
        ({"event_time_field": "text"}, "'text' must be an int or long"),
        ({"subject_columns": ["email"]}, "log_schema.subject_columns: 'email' is not among the table's columns"),
        ({"subject_columns": ["device"]}, "log_schema.subject_columns: 'device' is not a string field"),
        ({"record_fields": ["severity", "msisdn"]}, "log_schema.record_fields: 'msisdn' is not a field there"),
        ({"record_fields": ["occurred_us"]}, "'occurred_us' is the records array or the event time"),
    ],
)
def test_a_field_the_schema_lacks_is_named_at_start(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve(LogSchemaSettings(**{**ENVELOPE_SHAPE, **change}), envelope(), "envelope.avsc")
    assert words in str(err.value)
    assert "envelope.avsc" in str(err.value)


def test_a_field_named_like_a_loglake_column_is_refused() -> None:
    schema = envelope()
    schema["fields"].append({"name": "kafka_offset", "type": ["null", "long"], "default": None})
    with pytest.raises(ConfigError, match="'kafka_offset' would be a second column of that name"):
        resolve(LogSchemaSettings(**ENVELOPE_SHAPE), schema, "envelope.avsc")


def test_load_reads_the_schema_file_and_refuses_json_messages(tmp_path: Path) -> None:
    assignments = [f"log_schema.{k}={json.dumps(v)}" for k, v in ENVELOPE_SHAPE.items()]
    settings = load_settings(assignments=[f"log_schema.avro_schema={ENVELOPE}", *assignments])
    assert load(settings).record_columns == ("severity", "phone", "text", "device")
    with pytest.raises(ConfigError, match="JSON messages follow the LogBatch contract"):
        load(settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"encoding": "json"})}))
    broken = tmp_path / "broken.avsc"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match=r"log_schema\.avro_schema: cannot read"):
        load(load_settings(assignments=[f"log_schema.avro_schema={broken}"]))


def test_the_logbatch_schema_still_loads_by_default() -> None:
    assert load(load_settings()) == default_shape()
    assert avro_schema()["name"] == "LogBatch"
