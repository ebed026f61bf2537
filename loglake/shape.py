"""Which fields of a log message are what: the batch, its records, the key, the event time.

:class:`LogShape` is the ``log_schema`` settings checked against an Avro schema (the messages', or the
registry's reader schema) and resolved into what the transforms in :mod:`ingest.parse` need: column
names by level, which of them are strings (UTF-8 checks), which are required, which are Avro
timestamps. Pure: schema dicts in, a frozen dataclass out; a field the settings name and the schema
lacks is a :class:`~loglake.errors.ConfigError` naming both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from loglake.errors import ConfigError
from loglake.settings import LogSchemaSettings, Settings

# The table's key and partition columns, named here because the shape places every column.
RECORD_KEY = "record_key"
PARTITION_FIELD = "event_date"
# Columns every log table has, whatever the messages' shape: the key and the event time first, then
# after the message's own columns where each record came from and when it was written.
EVENT_TIME_COLUMN = "ts"
PROVENANCE_COLUMNS = ("record_index", "kafka_topic", "kafka_partition", "kafka_offset", "ingested_at")
CONTRACT_COLUMNS = (RECORD_KEY, EVENT_TIME_COLUMN, *PROVENANCE_COLUMNS, PARTITION_FIELD)
# LogBatch's table has indexed these since its first commit; a changed list makes Hudi rebuild them.
LOGBATCH_STATS_COLUMNS = ("level", "service", "event")
_TIME_UNITS = {"timestamp-millis": "millis", "timestamp-micros": "micros"}
_NUMBERS = ("int", "long")
LOGBATCH_SCHEMA_FILE = "log_batch.avsc"


@cache
def avro_schema_json() -> str:
    """The LogBatch contract as committed in ``loglake/schemas/log_batch.avsc`` (Spark's from_avro wants text)."""
    return resources.files("loglake").joinpath("schemas", LOGBATCH_SCHEMA_FILE).read_text(encoding="utf-8")


def avro_schema() -> dict[str, Any]:
    """The LogBatch contract as a dict (for fastavro's ``parse_schema``)."""
    schema: dict[str, Any] = json.loads(avro_schema_json())
    return schema


@dataclass(frozen=True)
class LogShape:
    """The message shape the ingest decodes and flattens (the default is the LogBatch contract)."""

    records_field: str
    key_fields: tuple[str, ...]
    event_time_field: str
    event_time_unit: str
    # Columns taken from the batch and from each record, in table order.
    batch_columns: tuple[str, ...]
    record_columns: tuple[str, ...]
    subject_columns: tuple[str, ...]
    # Of those: string fields and string maps (checked for valid UTF-8), required ones (non-null).
    batch_strings: tuple[str, ...] = ()
    record_strings: tuple[str, ...] = ()
    record_string_maps: tuple[str, ...] = ()
    batch_required: tuple[str, ...] = ()
    record_required: tuple[str, ...] = ()
    # Avro timestamps other than the event time: read as plain longs, turned into timestamps in SQL.
    time_columns: tuple[tuple[str, str], ...] = ()
    # Columns whose min/max Hudi keeps for data skipping (the event time first); never a subject column.
    stats_columns: tuple[str, ...] = (EVENT_TIME_COLUMN,)
    # The messages' Avro schema as JSON, its event time and timestamp columns as plain longs: what a
    # message without a registry is decoded with, and the reader schema writers' fields are added to.
    schema: str = ""
    # Where that schema came from, for messages that name it.
    source: str = "the LogBatch schema"

    @property
    def columns(self) -> tuple[str, ...]:
        """The log table's columns after Hudi's meta columns, in order."""
        return (
            RECORD_KEY,
            EVENT_TIME_COLUMN,
            *self.record_columns,
            *self.batch_columns,
            *PROVENANCE_COLUMNS,
            PARTITION_FIELD,
        )

    @property
    def batch_label(self) -> str:
        """The batch field that names a batch in the quarantine (the last key field, e.g. ``batch_id``)."""
        return self.key_fields[-1]

    @property
    def batch_fields_read(self) -> tuple[str, ...]:
        """Every batch field the ingest reads: the key fields, then the other columns."""
        return (*self.key_fields, *(c for c in self.batch_columns if c not in self.key_fields))

    def time_unit(self, column: str) -> str | None:
        return dict(self.time_columns).get(column)


def _branches(avro_type: Any) -> list[Any]:
    return list(avro_type) if isinstance(avro_type, list) else [avro_type]


def is_nullable(avro_type: Any) -> bool:
    return "null" in _branches(avro_type)


def bare_type(avro_type: Any) -> Any:
    """The non-null branch of ``["null", T]``, or the type itself."""
    rest = [b for b in _branches(avro_type) if b != "null"]
    return rest[0] if len(rest) == 1 else avro_type


def _name(avro_type: Any) -> str:
    bare = bare_type(avro_type)
    return str(bare.get("type")) if isinstance(bare, dict) else str(bare)


def _logical(avro_type: Any) -> str | None:
    bare = bare_type(avro_type)
    return bare.get("logicalType") if isinstance(bare, dict) else None


def _fields(record: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["type"] for f in record.get("fields", [])}


def resolve(settings: LogSchemaSettings, schema: dict[str, Any], source: str) -> LogShape:
    """The shape ``settings`` describe, checked against the Avro ``schema`` (named ``source`` in errors).

    Raises:
        ConfigError: a field the settings name is missing or of a type it cannot be, naming the
            setting, the field and ``source``.
    """

    def bad(setting: str, text: str) -> ConfigError:
        return ConfigError(f"setting log_schema.{setting}: {text} in {source}")

    if schema.get("type") != "record":
        raise ConfigError(f"{source} is not an Avro record schema")
    batch = _fields(schema)
    records = batch.get(settings.records_field)
    items = bare_type(records).get("items") if isinstance(bare_type(records), dict) else None
    if records is None or _name(records) != "array" or not isinstance(items, dict) or items.get("type") != "record":
        raise bad("records_field", f"{settings.records_field!r} is not a field holding an array of records")
    record = _fields(items)

    for key in settings.key_fields:
        if key not in batch:
            raise bad("key_fields", f"{key!r} is not a field of the batch (fields: {', '.join(batch)})")
        if is_nullable(batch[key]) or _name(batch[key]) not in ("string", *_NUMBERS):
            raise bad("key_fields", f"{key!r} must be a required string, int or long")
    time_field = settings.event_time_field
    if time_field not in record:
        raise bad("event_time_field", f"{time_field!r} is not a field of the records (fields: {', '.join(record)})")
    if _name(record[time_field]) not in _NUMBERS:
        raise bad("event_time_field", f"{time_field!r} must be an int or long (epoch time) or an Avro timestamp")
    unit = _TIME_UNITS.get(_logical(record[time_field]) or "", settings.event_time_unit)

    batch_columns = _pick(settings.batch_fields, batch, {settings.records_field}, "batch_fields", bad)
    record_columns = _pick(settings.record_fields, record, {time_field}, "record_fields", bad)
    batch_columns = [*[k for k in settings.key_fields if k not in batch_columns], *batch_columns]
    taken = {c.lower() for c in CONTRACT_COLUMNS}
    seen: set[str] = set()
    for column in (*record_columns, *batch_columns):
        if column.lower() in taken or column.lower() in seen or column.startswith("_"):
            level = "record_fields" if column in record_columns else "batch_fields"
            raise bad(
                level,
                f"field {column!r} would be a second column of that name (loglake's own columns: "
                f"{', '.join(CONTRACT_COLUMNS)}; names starting with _ are Hudi's); leave it out",
            )
        seen.add(column.lower())
    for subject in settings.subject_columns:
        if subject not in (*record_columns, *batch_columns):
            raise bad("subject_columns", f"{subject!r} is not among the table's columns from the message")
        # Erasure matches identifiers as text, byte for byte; a number would match "007" as 7.
        if _name(record.get(subject, batch.get(subject))) != "string":
            raise bad("subject_columns", f"{subject!r} is not a string field; identifiers are matched as text")

    stats_columns = _stats_columns(settings, (*record_columns, *batch_columns), bad)

    def strings(names: list[str], fields: dict[str, Any]) -> tuple[str, ...]:
        return tuple(n for n in names if _name(fields[n]) == "string")

    shape = LogShape(
        records_field=settings.records_field,
        key_fields=tuple(settings.key_fields),
        event_time_field=time_field,
        event_time_unit=unit,
        batch_columns=tuple(batch_columns),
        record_columns=tuple(record_columns),
        subject_columns=tuple(settings.subject_columns),
        batch_strings=strings(batch_columns, batch),
        record_strings=strings(record_columns, record),
        record_string_maps=tuple(
            n for n in record_columns if _name(record[n]) == "map" and bare_type(record[n]).get("values") == "string"
        ),
        batch_required=tuple(n for n in batch_columns if not is_nullable(batch[n])),
        record_required=tuple(
            n for n in record_columns if not is_nullable(record[n]) and _name(record[n]) not in ("map", "array")
        ),
        time_columns=tuple(
            (n, _TIME_UNITS[_logical(fields[n]) or ""])
            for names, fields in ((batch_columns, batch), (record_columns, record))
            for n in names
            if (_logical(fields[n]) or "") in _TIME_UNITS
        ),
        stats_columns=stats_columns,
        source=source,
    )
    return replace(shape, schema=json.dumps(with_plain_times(schema, shape)))


def _stats_columns(settings: LogSchemaSettings, columns: tuple[str, ...], bad: Any) -> tuple[str, ...]:
    """:func:`stats_columns`, each checked to be a column of the table and no subject column."""
    chosen = stats_columns(settings)
    for name in chosen[1:]:
        if name not in (*columns, *PROVENANCE_COLUMNS):
            raise bad("stats_columns", f"{name!r} is not a column of the table")
        if name in settings.subject_columns:
            raise bad("stats_columns", f"{name!r} is a subject column; its min and max would be identifiers")
    return chosen


def stats_columns(settings: LogSchemaSettings) -> tuple[str, ...]:
    """The columns Hudi keeps min/max statistics of: ``ts`` and ``log_schema.stats_columns``; unset,
    LogBatch's list for LogBatch and the key fields that are no subject column for a shape of one's own.

    Every writer of the table (stream, erasure, compaction) takes its list from here, from settings
    alone, so they agree without reading the messages' schema. A subject column never belongs: its
    min and max are identifiers, kept in the metadata table's HFiles where an erasure cannot reach them.
    """
    if settings.stats_columns is not None:
        chosen: tuple[str, ...] = tuple(settings.stats_columns)
    elif settings == LogSchemaSettings():
        chosen = LOGBATCH_STATS_COLUMNS
    else:
        chosen = tuple(k for k in settings.key_fields if k not in settings.subject_columns)
    return (EVENT_TIME_COLUMN, *(c for c in chosen if c != EVENT_TIME_COLUMN))


@cache
def default_shape() -> LogShape:
    """The LogBatch contract's shape (the default ``log_schema`` settings)."""
    return resolve(LogSchemaSettings(), avro_schema(), "the LogBatch schema")


def _pick(wanted: list[str] | None, fields: dict[str, Any], skip: set[str], setting: str, bad: Any) -> list[str]:
    if wanted is None:
        return [n for n in fields if n not in skip]
    for name in wanted:
        if name not in fields:
            raise bad(setting, f"{name!r} is not a field there (fields: {', '.join(fields)})")
        if name in skip:
            raise bad(setting, f"{name!r} is the records array or the event time, not a column")
    return list(wanted)


def with_plain_times(schema: dict[str, Any], shape: LogShape) -> dict[str, Any]:
    """A copy of ``schema`` whose event time and Avro timestamp columns are plain ``long``.

    Spark turns a ``timestamp-millis`` into microseconds and fails on overflow, which made a record
    with ts = Long.MIN look like an undecodable message; read as a long it is a record with a bad ts.
    The transforms turn them into timestamps (:attr:`LogShape.time_columns`).
    """
    out: dict[str, Any] = json.loads(json.dumps(schema))
    plain_batch = {n for n, _ in shape.time_columns}
    plain_record = {shape.event_time_field, *plain_batch}

    def plain(fields: list[dict[str, Any]], names: set[str]) -> None:
        for f in fields:
            if f["name"] in names and (_logical(f["type"]) or "") in _TIME_UNITS:
                f["type"] = ["null", "long"] if is_nullable(f["type"]) else "long"

    plain(out.get("fields", []), plain_batch)
    for f in out.get("fields", []):
        if f["name"] == shape.records_field:
            items = bare_type(f["type"]).get("items") if isinstance(bare_type(f["type"]), dict) else None
            if isinstance(items, dict):
                plain(items.get("fields", []), plain_record)
    return out


def load(settings: Settings) -> LogShape:
    """The shape of the messages of ``settings``, checked against their schema: the ``log_schema.avro_schema``
    file, else for a shape of one's own the registry's latest version of the topic's subject, else LogBatch.

    Raises:
        ConfigError: the file is not an Avro record schema, a field the settings name is missing, a
            custom shape with JSON messages, or the registry does not answer at start.
    """
    config = settings.log_schema
    if config.avro_schema:
        path = Path(config.avro_schema).expanduser()
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"setting log_schema.avro_schema: cannot read {path} as an Avro schema: {exc}") from None
        if not isinstance(schema, dict):
            raise ConfigError(f"setting log_schema.avro_schema: {path} is not an Avro record schema")
        source = str(path)
    elif (
        settings.ingest.schema_registry.url
        and config != LogSchemaSettings()
        and (latest := _latest_registered(settings)) is not None
    ):
        # A shape of one's own is checked against what producers register now. LogBatch stays the
        # base of its own table, so the columns do not move with the subject's latest version.
        schema, source = latest
    else:
        schema, source = avro_schema(), "the LogBatch schema"
    shape = resolve(config, schema, source)
    _check_parses(shape)
    if settings.ingest.encoding == "json" and shape != default_shape():
        raise ConfigError(
            "setting ingest.encoding: JSON messages follow the LogBatch contract; a log_schema of your own needs "
            "ingest.encoding=avro"
        )
    return shape


def _latest_registered(settings: Settings) -> tuple[dict[str, Any], str] | None:
    """The latest schema of the topic's subject (``<topic>-value``), if the registry has one."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    registry = settings.ingest.schema_registry
    subject = f"{settings.kafka.topic.split(',')[0].strip()}-value"
    client = SchemaRegistryClient(registry.client_config())
    try:
        latest = client.get_latest_version(subject)
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        raise ConfigError(
            f"setting ingest.schema_registry.url: {registry.url} refused subject {subject}: {exc.error_message}"
        ) from None
    except Exception as exc:  # the HTTP client's errors: refused, timed out
        raise ConfigError(
            f"setting ingest.schema_registry.url: no schema registry answers at {registry.url}: {exc}"
        ) from None
    return json.loads(latest.schema.schema_str or "{}"), f"subject {subject} version {latest.version} at {registry.url}"


def _check_parses(shape: LogShape) -> None:
    """Fail at start on a schema Avro cannot read: every decoder of it (the stream's, the erasure's
    reading of quarantined messages) would otherwise fail message by message."""
    import fastavro

    try:
        fastavro.parse_schema(json.loads(shape.schema))
    except Exception as exc:
        raise ConfigError(f"setting log_schema.avro_schema: {shape.source} is not an Avro schema: {exc}") from None
