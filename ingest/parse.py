"""Pure DataFrame transforms: Kafka rows -> decoded batches -> one row per log record.

Everything here runs in the JVM (from_avro / from_json, posexplode, SQL expressions); there is no
Python UDF on the per-record path. Nothing here touches a SparkSession or does I/O, so each step is
tested on tiny DataFrames without Kafka.

Bad input policy: a message that cannot be decoded, is too large, holds too many records, or lacks a
required batch field becomes one quarantine row; a record without a usable ``ts``, without a required
field, or with a string that is not UTF-8 becomes one quarantine row for that record while the
message's other records go on to the table. Every quarantine row carries its Kafka coordinates, a
stable ``reason_code`` (for metrics) and a ``reason`` that names the field or limit; the raw message
bytes ride on the message's first quarantine row only, so a message of many bad records is stored once.

No message under the limits can exhaust memory: a row per record never carries the message's other
records or its raw bytes (the batch fields are projected to columns before the explode), so a
message's size bounds what any one row holds.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.avro.functions import from_avro, to_avro

from ingest.schema import Decoding
from loglake.settings import IngestSettings
from loglake.shape import EVENT_TIME_COLUMN, LogShape, bare_type, default_shape, is_nullable
from loglake.table import (
    PARTITION_FIELD,
    QUARANTINE_COLUMNS,
    QUARANTINE_KEY,
    QUARANTINE_PARTITION_FIELD,
    RECORD_KEY,
    record_key_of,
    utc_date,
)

# A usable ts lies in [1970-01-01, 2100-01-01): it must name a sensible event_date partition.
TS_MIN_MS = 0
TS_MAX_MS = 4_102_444_800_000
WIRE_HEADER_BYTES = 5

REASON_TOO_LARGE = "too_large"
REASON_BAD_HEADER = "bad_wire_header"
REASON_NOT_AVRO = "not_avro"
REASON_TRAILING = "avro_trailing_bytes"
REASON_NOT_JSON = "not_json"
REASON_MISSING_FIELD = "missing_field"
REASON_BAD_TS = "bad_ts"
REASON_NULL_RECORD = "null_record"
REASON_TOO_MANY_RECORDS = "too_many_records"
REASON_INVALID_UTF8 = "invalid_utf8"
# Schema registry: an id it does not have, a writer schema the table cannot take, and (never
# written: the writer looks the id up and stages the batch again) an id not looked up yet.
REASON_UNKNOWN_SCHEMA = "unknown_schema_id"
REASON_INCOMPATIBLE_SCHEMA = "incompatible_schema"
REASON_SCHEMA_PENDING = "schema_id_pending"

# Staged columns that are not the log table's: what a bad row carries to the quarantine. The batch
# label (the last key field, e.g. batch_id) is the quarantine's batch_id.
BATCH_LABEL = "_batch_label"
STAGING_COLUMNS = ("reason_code", "reason", "raw_value", "record_json", "kafka_timestamp", "kafka_key", BATCH_LABEL)

# The checks that cost the most per record: the strict Avro re-encode and the UTF-8 round trip (half
# of the staging time between them). The writer runs them once per batch, in its counting pass, and
# its write pass skips them ("deferred") and leaves out the rows they flagged by Kafka coordinates.
DEFERRED_REASONS = (REASON_TRAILING, REASON_INVALID_UTF8)

# Where a message sits in Kafka: what the writer's passes use to name messages and rows to each other.
COORDINATES = ("kafka_topic", "kafka_partition", "kafka_offset")
MESSAGES_SCHEMA = "kafka_topic string, kafka_partition int, kafka_offset long"
FLAGGED_SCHEMA = f"{MESSAGES_SCHEMA}, record_index int"

# Avro's primitive types as Spark reads them from JSON (times arrive as epoch numbers: the shape's
# schema already has them as plain longs).
_SPARK_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "enum": T.StringType(),
    "long": T.LongType(),
    "int": T.IntegerType(),
    "boolean": T.BooleanType(),
    "double": T.DoubleType(),
    "float": T.FloatType(),
    "bytes": T.BinaryType(),
}


def spark_type(avro_type: Any) -> T.DataType:
    """The Spark type ``from_json`` reads an Avro type into, the same struct ``from_avro`` builds."""
    bare = bare_type(avro_type)
    kind = bare.get("type") if isinstance(bare, dict) else bare
    if kind == "record":
        return T.StructType([T.StructField(f["name"], spark_type(f["type"])) for f in bare["fields"]])
    if kind == "array":
        return T.ArrayType(spark_type(bare["items"]))
    if kind == "map":
        return T.MapType(T.StringType(), spark_type(bare["values"]))
    if isinstance(kind, str) and kind in _SPARK_TYPES:
        return _SPARK_TYPES[kind]
    raise ValueError(f"Avro type {avro_type!r} has no JSON reading")


def json_schema(shape: LogShape) -> T.StructType:
    """The JSON reader schema of ``shape``: its messages' Avro schema as Spark types."""
    schema = spark_type(json.loads(shape.schema))
    assert isinstance(schema, T.StructType)
    return schema


def required_batch_fields(shape: LogShape) -> tuple[str, ...]:
    """The batch fields a message must have, in the schema's order: the non-nullable ones."""
    fields = json.loads(shape.schema)["fields"]
    return tuple(f["name"] for f in fields if not is_nullable(f["type"]))


def _first_reason(*pairs: tuple[Column, str, Column]) -> tuple[Column, Column]:
    """(code, text) of the first failing check; both null when every check passes."""
    code: Column = F.lit(None).cast("string")
    text: Column = F.lit(None).cast("string")
    for failed, reason_code, reason_text in reversed(pairs):
        code = F.when(failed, F.lit(reason_code)).otherwise(code)
        text = F.when(failed, reason_text).otherwise(text)
    return code, text


def _kafka_columns(df: DataFrame) -> DataFrame:
    return df.select(
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").alias("kafka_key"),
        F.col("value").alias("raw_value"),
    )


def once(df: DataFrame, column: Column, name: str) -> DataFrame:
    """``df`` with ``column`` added as ``name``, computed exactly once per row.

    Spark's optimizer copies an expression into every place that uses its alias when it pushes a
    filter down or collapses projections: a ``from_avro`` referenced by a reason code, a filter and a
    struct ran once per reference (four decodes per message, and a 100,000-record message ran the
    driver out of memory decoding itself again inside each check). A generator is a boundary neither
    rule crosses, so exploding a one-element array pins the value to one evaluation.
    """
    return df.select("*", F.explode(F.array(column)).alias(name))


def schema_id() -> Column:
    """The schema id in a Confluent header (bytes 2-5, big-endian), as a long."""
    return F.conv(F.hex(F.substring("raw_value", 2, 4)), 16, 10).cast("long")


def _by_writer(decoding: Decoding, make: Callable[[int, str], Column], otherwise: Column) -> Column:
    """``make(id, writer schema)`` for the schema id of each message; ``otherwise`` for other ids."""
    if not decoding.writers:
        return otherwise
    sid = F.col("_sid")
    ids = iter(decoding.writers.items())
    first_id, first = next(ids)
    expr = F.when(sid == first_id, make(first_id, first))
    for other_id, writer in ids:
        expr = expr.when(sid == other_id, make(other_id, writer))
    return expr.otherwise(otherwise)


def invalid_utf8(*strings: Column) -> Column:
    """True when the bytes of any of ``strings`` are not valid UTF-8.

    Spark keeps the bytes of Avro strings as they came; decoding them as UTF-8 replaces what is not,
    so a decode that changes them found invalid bytes. One decode of the joined strings, compared
    with them as they are (a second encode and compare cost a third more of the whole staging).
    """
    joined = F.concat_ws("", *strings)
    return F.coalesce(F.decode(joined.cast("binary"), "UTF-8") != joined, F.lit(False))


def _first_invalid_utf8(named: list[tuple[str, Column]]) -> Column:
    """The name of the first of ``named`` strings that is not valid UTF-8 (for the reason text)."""
    return F.coalesce(*[F.when(invalid_utf8(col), F.lit(name)) for name, col in named])


def _batch_checks(
    settings: IngestSettings, batch: Column, deferred: bool, shape: LogShape
) -> list[tuple[Column, str, Column]]:
    """Message-level checks shared by both encodings, after decoding: record count, UTF-8 of batch fields."""
    count = F.size(batch[shape.records_field])
    strings = [(c, batch[c]) for c in shape.batch_strings]
    utf8 = (
        invalid_utf8(*(col for _, col in strings)),
        REASON_INVALID_UTF8,
        F.format_string("field %s is not valid UTF-8", _first_invalid_utf8(strings)),
    )
    return [
        (
            count > F.lit(settings.max_records_per_message),
            REASON_TOO_MANY_RECORDS,
            F.format_string(
                "message holds %d records, over ingest.max_records_per_message=%d",
                count,
                F.lit(settings.max_records_per_message),
            ),
        ),
        *([] if deferred or not strings else [utf8]),
    ]


def _id_checks(decoding: Decoding) -> list[tuple[Column, str, Column]]:
    """Checks of the header's schema id against what the registry said about it."""
    sid = F.col("_sid")
    rejected = F.lit(None).cast("string")
    for rejected_id, reason in decoding.rejected.items():
        rejected = F.when(sid == rejected_id, F.lit(reason)).otherwise(rejected)
    unknown = sid.isin(*decoding.unknown) if decoding.unknown else F.lit(False)
    met = sid.isin(*decoding.writers, *decoding.rejected, *decoding.unknown)
    return [
        (
            unknown,
            REASON_UNKNOWN_SCHEMA,
            F.format_string(f"schema id %d is not in the schema registry at {decoding.registry}", sid),
        ),
        (rejected.isNotNull(), REASON_INCOMPATIBLE_SCHEMA, rejected),
        (
            ~met & F.lit(decoding.closed),
            REASON_UNKNOWN_SCHEMA,
            F.format_string(
                "schema id %d was not looked up: more new schema ids in one micro-batch than "
                "ingest.schema_registry.max_new_ids_per_batch",
                sid,
            ),
        ),
        (~met, REASON_SCHEMA_PENDING, F.format_string("schema id %d is not looked up yet", sid)),
    ]


def _avro_batch(
    settings: IngestSettings, deferred: bool, decoding: Decoding | None, shape: LogShape
) -> Callable[[DataFrame], DataFrame]:
    """Decode binary Avro (optionally after the 5-byte Confluent header) into ``batch``.

    With a ``decoding`` (schema registry), each message is read with the writer schema of its id into
    the one reader schema; without, with the messages' schema (:attr:`LogShape.schema`).
    """
    reader = decoding.reader if decoding is not None else shape.schema
    # A good batch always has its first key field (required, non-null); a failed decode has none.
    marker = shape.key_fields[0]
    # Writer schemas by id come from the header: a decoding implies it.
    header = settings.wire_header or decoding is not None

    def read(payload: Column, writer: str) -> Column:
        options = {"mode": "PERMISSIVE"}
        if writer != reader:
            # Avro schema resolution, in the JVM: added fields take their defaults, removed ones drop.
            options["avroSchema"] = reader
        return from_avro(payload, writer, options)

    def transform(df: DataFrame) -> DataFrame:
        raw = F.col("raw_value")
        size = F.length(raw)
        if header:
            header_ok = (size >= WIRE_HEADER_BYTES) & (F.substring(raw, 1, 1) == F.lit(bytearray(1)))
            payload = F.when(header_ok, F.expr(f"substring(raw_value, {WIRE_HEADER_BYTES + 1})"))
        else:
            header_ok = F.lit(True)
            payload = raw
        too_large = size > F.lit(settings.max_message_bytes)
        df = df.withColumn("_payload", F.when(~too_large, payload))
        nothing = from_avro(F.lit(None).cast("binary"), reader)
        if decoding is not None:
            df = df.withColumn("_sid", F.when(header_ok & ~too_large, schema_id()))
            decoded = _by_writer(decoding, lambda _, w: read(F.col("_payload"), w), nothing)
        else:
            decoded = read(F.col("_payload"), reader)
        df = once(df, decoded, "_avro")
        # PERMISSIVE from_avro yields a struct of nulls on failure.
        failed = F.col("_avro")[marker].isNull()
        if settings.strict_avro and not deferred:
            # The length of a message as its writer schema encodes it. A decode resolved into a
            # reader schema with other fields re-encodes longer by a number of bytes the schemas fix
            # (a null's branch index per field the writer lacks: :func:`encoding_delta`); where
            # the values decide, the message is decoded once more as written.
            as_reader = F.length(to_avro(F.col("_avro"), reader))
            records = F.size(F.col("_avro")[shape.records_field])

            def reencoded(schema_id: int | None, writer: str) -> Column:
                if writer == reader:
                    return as_reader
                if decoding is not None and schema_id is not None and schema_id in decoding.deltas:
                    per_message, per_record = decoding.deltas[schema_id]
                    return as_reader - F.lit(per_message) - records * F.lit(per_record)
                return F.length(to_avro(from_avro(F.col("_payload"), writer), writer))

            def shortened_ok(_: int | None, writer: str) -> Column:
                shortened = F.expr("substring(_payload, 1, length(_payload) - 1)")
                return from_avro(shortened, writer, {"mode": "PERMISSIVE"})[marker].isNotNull()

            if decoding is None:
                length, shorter = reencoded(None, reader), shortened_ok(None, reader)
            else:
                length = _by_writer(decoding, reencoded, F.lit(None).cast("int"))
                shorter = _by_writer(decoding, shortened_ok, F.lit(False))
            # CASE WHEN keeps to_avro away from the all-null struct, which it cannot serialize.
            df = once(df, F.when(~failed, length), "_used")
            # A re-encoding shorter than the payload means trailing bytes, or array blocks written with
            # negative counts (valid Avro: such a block also carries its byte size, which a re-encoding
            # drops). Only with trailing bytes does the payload still decode without its last byte (a
            # LogBatch ends with its array's end marker). The second decode runs for those rare messages.
            trailing = F.coalesce(F.when(F.col("_used") < F.length("_payload"), shorter), F.lit(False))
            used = F.col("_used")
        else:
            used, trailing = F.lit(0), F.lit(False)
        avro = F.col("_avro")
        code, text = _first_reason(
            (
                too_large,
                REASON_TOO_LARGE,
                F.format_string(
                    "message of %d bytes is over ingest.max_message_bytes=%d", size, F.lit(settings.max_message_bytes)
                ),
            ),
            (
                ~header_ok,
                REASON_BAD_HEADER,
                F.lit(
                    "no Confluent wire-format header (magic byte 0x00 + 4-byte schema id) "
                    + (
                        "while ingest.schema_registry.url is set"
                        if decoding is not None
                        else "while ingest.confluent_wire_format is true"
                    )
                ),
            ),
            *(_id_checks(decoding) if decoding is not None else []),
            (
                failed,
                REASON_NOT_AVRO,
                F.lit(
                    "not binary Avro of its schema id: truncated or not Avro"
                    if decoding is not None
                    else "not a binary-Avro batch of the messages' schema: truncated, not Avro, or written with "
                    "another schema"
                ),
            ),
            (
                trailing,
                REASON_TRAILING,
                F.format_string(
                    "the decoded batch accounts for %d of %d bytes: trailing data or another schema",
                    used,
                    F.length("_payload"),
                ),
            ),
            *_batch_checks(settings, avro, deferred, shape),
        )
        extra = decoding.batch_fields if decoding is not None else ()
        batch = F.struct(
            *(avro[f].alias(f) for f in shape.batch_fields_read),
            avro[shape.records_field].alias("records"),
            *(avro[f].alias(f) for f in extra),
        )
        return _decoded(df, code, text, batch)

    return transform


def _decoded(df: DataFrame, code: Column, text: Column, batch: Column) -> DataFrame:
    """The Kafka columns plus ``reason_code``, ``reason`` and ``batch`` (null when the message is bad),
    computed once (:func:`once`): every later filter and projection reads them as plain columns."""
    result = F.struct(code.alias("reason_code"), text.alias("reason"), F.when(code.isNull(), batch).alias("batch"))
    kafka = ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_key", "raw_value"]
    return once(df, result, "_decoded").select(*kafka, "_decoded.reason_code", "_decoded.reason", "_decoded.batch")


def _json_batch(settings: IngestSettings, deferred: bool, shape: LogShape) -> Callable[[DataFrame], DataFrame]:
    """Decode a JSON LogBatch into the same ``batch`` shape as :func:`_avro_batch`."""

    reader = json_schema(shape)
    records_type = reader[shape.records_field].dataType
    assert isinstance(records_type, T.ArrayType) and isinstance(records_type.elementType, T.StructType)
    record_type = records_type.elementType

    def transform(df: DataFrame) -> DataFrame:
        size = F.length("raw_value")
        too_large = size > F.lit(settings.max_message_bytes)
        parsed = F.from_json(F.col("raw_value").cast("string"), reader, {"mode": "PERMISSIVE"})
        df = once(df, F.when(~too_large, parsed), "_json")
        j = F.col("_json")
        # PERMISSIVE from_json turns text that is not JSON into a struct of nulls.
        nothing = reduce(operator.and_, (j[f].isNull() for f in reader.fieldNames()))
        missing = [
            (j[f].isNull(), REASON_MISSING_FIELD, F.lit(f"field {f} is missing or of the wrong type"))
            for f in required_batch_fields(shape)
        ]
        code, text = _first_reason(
            (
                too_large,
                REASON_TOO_LARGE,
                F.format_string(
                    "message of %d bytes is over ingest.max_message_bytes=%d", size, F.lit(settings.max_message_bytes)
                ),
            ),
            (j.isNull() | nothing, REASON_NOT_JSON, F.lit("not a JSON LogBatch object")),
            *missing,
            *_batch_checks(settings, j, deferred, shape),
        )
        # A map JSON leaves out is empty, as Avro's decoder gives it (the schema's default).
        empty_map = F.create_map().cast("map<string,string>")
        records = F.transform(
            j[shape.records_field],
            lambda r: F.when(
                r.isNotNull(),
                F.struct(
                    *(
                        (F.coalesce(r[f.name], empty_map) if f.name in shape.record_string_maps else r[f.name]).alias(
                            f.name
                        )
                        for f in record_type.fields
                    )
                ),
            ),
        )
        batch = F.struct(
            *((records if name == shape.records_field else j[name]).alias(name) for name in reader.fieldNames())
        )
        return _decoded(df, code, text, batch)

    return transform


def decode(
    settings: IngestSettings,
    deferred: bool = False,
    decoding: Decoding | None = None,
    shape: LogShape | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """Kafka rows -> one row per message: Kafka coordinates, ``batch`` (null if bad), ``reason``.

    ``deferred`` leaves out the checks of :data:`DEFERRED_REASONS`; ``decoding`` gives the writer
    schemas by id (schema registry); ``shape`` the messages' fields (default: LogBatch).
    """
    shape = shape or default_shape()
    if settings.encoding == "avro":
        batch = _avro_batch(settings, deferred, decoding, shape)
    else:
        batch = _json_batch(settings, deferred, shape)

    def transform(df: DataFrame) -> DataFrame:
        return df.transform(_kafka_columns).transform(batch)

    return transform


# The range of a usable event time in each unit; a value in it converts to milliseconds without overflow.
_PER_MS = {"seconds": 1000, "millis": 1, "micros": 0.001}
_UNIT_WORDS = {"seconds": "seconds", "millis": "milliseconds", "micros": "microseconds"}


def event_time_ms(value: Column, unit: str) -> Column:
    """An epoch number in ``unit`` as epoch milliseconds (long)."""
    if unit == "seconds":
        return value * F.lit(1000)
    if unit == "micros":
        return F.floor(value / F.lit(1000)).cast("long")
    return value


def _timestamp(value: Column, unit: str) -> Column:
    if unit == "seconds":
        return F.timestamp_seconds(value)
    if unit == "micros":
        return F.timestamp_micros(value)
    return F.timestamp_millis(value)


def _record_failures(rec: Column, index: Column, deferred: bool, shape: LogShape) -> list[tuple[Column, str, Column]]:
    where = F.format_string("record %d: ", index)
    name, unit = shape.event_time_field, shape.event_time_unit
    words = _UNIT_WORDS[unit]
    ts = rec[name]
    low, high = (int(bound / _PER_MS[unit]) for bound in (TS_MIN_MS, TS_MAX_MS))
    strings = [(c, rec[c]) for c in shape.record_strings]
    for m in shape.record_string_maps:
        strings += [(m, F.array_join(F.map_keys(rec[m]), "")), (m, F.array_join(F.map_values(rec[m]), ""))]
    checks = [
        (rec.isNull(), REASON_NULL_RECORD, F.concat(where, F.lit("null instead of a record"))),
        (ts.isNull(), REASON_BAD_TS, F.concat(where, F.lit(f"{name} is missing or not epoch {words}"))),
        (
            (ts < low) | (ts >= high),
            REASON_BAD_TS,
            F.concat(where, F.format_string(f"{name} %d is outside [1970-01-01, 2100-01-01) in epoch {words}", ts)),
        ),
    ]
    checks += [
        (rec[f].isNull(), REASON_MISSING_FIELD, F.concat(where, F.lit(f"field {f} is missing")))
        for f in shape.record_required
    ]
    if not deferred and strings:
        checks.append(
            (
                invalid_utf8(*(col for _, col in strings)),
                REASON_INVALID_UTF8,
                F.concat(where, F.format_string("field %s is not valid UTF-8", _first_invalid_utf8(strings))),
            )
        )
    return checks


def flatten(
    ingested_at: Column | None = None,
    deferred: bool = False,
    decoding: Decoding | None = None,
    shape: LogShape | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """Decoded messages -> staged rows: one per good record, one per bad record, one per bad message.

    Good rows have a null ``reason_code`` and every log-table column; bad rows carry their reason. A
    bad message's row carries its raw bytes; a bad record's row does not (:func:`with_raw_bytes` adds
    them to the first bad row of each message, on the rare path that writes the quarantine).

    One explode of the records array, then every check as a plain per-row expression: Spark compiles
    those to Java (a check inside ``transform`` over the array was interpreted, and took two thirds
    of the whole staging time). The explode sees the batch fields as plain columns and never the
    message's raw bytes or other records, so no row grows with the message (a 100,000-record message
    once ran the driver out of memory copying the whole batch into every one of its rows).

    With a ``decoding``, the fields writers added follow the contract's columns (:attr:`Decoding.columns`).
    """
    now = ingested_at if ingested_at is not None else F.current_timestamp()
    shape = shape or default_shape()
    batch_extra = decoding.batch_fields if decoding is not None else ()
    record_extra = decoding.record_fields if decoding is not None else ()
    r = F.col("col")

    def column(value: Column, name: str) -> Column:
        unit = shape.time_unit(name)
        return (_timestamp(value, unit) if unit else value).alias(name)

    extras = {name: F.lit(None).cast(kind) for name, kind in (decoding.absent if decoding is not None else ())}
    extras |= {c: F.col(f"_b_{c}") for c in batch_extra}
    extras |= {c: r[c] for c in record_extra}
    order = decoding.columns if decoding is not None else ()
    ts_ms = event_time_ms(r[shape.event_time_field], shape.event_time_unit)
    last_key = shape.key_fields[-1]

    def transform(df: DataFrame) -> DataFrame:
        kafka = ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_key"]
        scalars = (*shape.batch_fields_read, *batch_extra)
        message_bad = F.col("reason_code").isNotNull()
        messages = df.select(
            *kafka,
            # Only a bad message keeps its bytes here, and it explodes into exactly one row.
            F.when(message_bad, F.col("raw_value")).alias("_raw"),
            F.col("reason_code").alias("_m_code"),
            F.col("reason").alias("_m_text"),
            *(F.col("batch")[c].alias(f"_b_{c}") for c in scalars),
            F.col("batch.records").alias("_records"),
        )
        # outer: a bad message (null records) still yields its one row; an empty good one yields a
        # row of nulls that the filter drops.
        exploded = messages.select(
            *kafka, "_raw", "_m_code", "_m_text", *(f"_b_{c}" for c in scalars), F.posexplode_outer("_records")
        ).where(F.col("_m_code").isNotNull() | F.col("pos").isNotNull())
        index = F.col("pos")
        whole = F.col("_m_code").isNotNull()
        rec_code, rec_text = _first_reason(*_record_failures(r, index, deferred, shape))
        # Pinned (:func:`once`): the filters downstream would otherwise run every check a second time.
        coded = once(exploded, F.when(whole, F.col("_m_code")).otherwise(rec_code), "reason_code")
        code = F.col("reason_code")
        good = code.isNull()
        return coded.select(
            *kafka,
            F.col("_raw").alias("raw_value"),
            code.alias("reason_code"),
            F.when(whole, F.col("_m_text")).when(~good, rec_text).alias("reason"),
            index.alias("record_index"),
            F.when(~good & r.isNotNull(), F.to_json(r)).alias("record_json"),
            F.when(
                index.isNotNull(), record_key_of([F.col(f"_b_{k}").cast("string") for k in shape.key_fields], index)
            ).alias(RECORD_KEY),
            F.when(good, _timestamp(r[shape.event_time_field], shape.event_time_unit)).alias(EVENT_TIME_COLUMN),
            *(column(r[c], c) for c in shape.record_columns),
            *(column(F.col(f"_b_{c}"), c) for c in shape.batch_columns),
            now.alias("ingested_at"),
            F.when(good, utc_date(ts_ms)).alias(PARTITION_FIELD),
            F.col(f"_b_{last_key}").cast("string").alias(BATCH_LABEL),
            *(extras[c].alias(c) for c in order),
        )

    return transform


def with_raw_bytes(bad: DataFrame, messages: DataFrame) -> DataFrame:
    """``bad`` staged rows with the raw message bytes on each message's first bad row.

    ``messages`` is the Kafka batch the rows came from (``raw_value`` or Kafka's own ``value``). Runs
    on bad rows only: a join on Kafka coordinates with the few messages that have a bad record.
    """
    coords = list(COORDINATES)
    if "value" in messages.columns:
        messages = _kafka_columns(messages)
    first = bad.where(F.col("record_index").isNotNull()).groupBy(*coords).agg(F.min("record_index").alias("_first_bad"))
    raw = messages.select(*coords, F.col("raw_value").alias("_msg_raw")).join(F.broadcast(first), coords)
    joined = bad.join(raw, coords, "left")
    return joined.select(
        *(
            F.coalesce(
                F.col("raw_value"), F.when(F.col("record_index") == F.col("_first_bad"), F.col("_msg_raw"))
            ).alias("raw_value")
            if c == "raw_value"
            else F.col(c)
            for c in bad.columns
        )
    )


def first_row_of_message() -> Column:
    """True on exactly one staged row per message that has rows: counting it counts messages.

    Every message with records has a row with ``record_index`` 0; a quarantined whole message is
    one row with a null ``record_index``. A message with an empty ``records`` array has no row.
    """
    index = F.col("record_index")
    return index.isNull() | (index == 0)


def tally(staged: DataFrame, limit: int, shape: LogShape | None = None) -> DataFrame:
    """One aggregation over ``staged`` that serves the writer's counts and its repeat check.

    Rows per (``reason_code``, ``kafka_topic``, ``kafka_partition``) with ``grouping`` 0: ``rows``,
    ``messages`` and ``first_offset``; one more row with ``grouping`` 1 over the whole batch, where
    ``batches`` (record-0 rows) exceeds ``distinct_batches`` exactly when some LogBatch arrived twice.
    ``bad_rows`` lists up to ``limit`` + 1 (offset, record_index) of the group's rows when its reason
    is not null: the write pass leaves out those of a deferred reason instead of checking them again,
    and the quarantine stages only the messages they name (past the limit, both do the full work).

    Two levels, one job. The first folds the records into one row per LogBatch identity (record 0)
    or bad row with plain hash aggregates; the distinct count and the list then run over those
    ~messages rows, not over every record. In one level, the list's object aggregate shared its
    buffers with the distinct's per-batch groups and fell back to sorting every record (a third of
    the pass).
    """
    flags = staged.select("*", first_row_of_message().alias("_first"))
    # The key fields are validated identifiers; backquoted all the same.
    identity = ", ".join(f"`{k}`" for k in (shape or default_shape()).key_fields)
    return staged.sparkSession.sql(
        """
        WITH folded AS (
            SELECT reason_code, kafka_topic, kafka_partition,
                   CASE WHEN reason_code IS NOT NULL THEN struct(kafka_offset, record_index) END AS bad,
                   CASE WHEN record_index = 0 THEN struct({identity}) END AS identity,
                   count(1) AS rows,
                   count_if(_first) AS messages,
                   min(kafka_offset) AS first_offset,
                   count_if(record_index = 0) AS batches
            FROM {staged}
            GROUP BY 1, 2, 3, 4, 5
        )
        SELECT reason_code, kafka_topic, kafka_partition, grouping_id() AS grouping,
               sum(rows) AS rows,
               sum(messages) AS messages,
               min(first_offset) AS first_offset,
               sum(batches) AS batches,
               count(DISTINCT identity) AS distinct_batches,
               slice(collect_list(bad), 1, :keep) AS bad_rows
        FROM folded
        GROUP BY GROUPING SETS ((reason_code, kafka_topic, kafka_partition), ())
        """.replace("{identity}", identity),
        args={"keep": limit + 1},
        staged=flags,
    )


def repeated_batches(staged: DataFrame, shape: LogShape | None = None) -> DataFrame:
    """(key fields..., copies) of every batch that arrived more than once in ``staged``.

    Checked on one row per message (record 0), so it costs an aggregation over messages, not
    records. A producer retry that lands in the same micro-batch as the original shows up here.
    """
    return (
        staged.where(F.col("record_index") == 0)
        .groupBy(*(shape or default_shape()).key_fields)
        .agg(F.count(F.lit(1)).alias("copies"))
        .where(F.col("copies") > 1)
    )


def latest_copy_per_key(rows: DataFrame) -> DataFrame:
    """One row per record key: the copy at the highest Kafka (partition, offset).

    Deterministic, so a replayed micro-batch keeps the same copy; and the later send wins, as
    commit-time ordering would across batches.
    """
    order = Window.partitionBy(RECORD_KEY).orderBy(F.desc("kafka_partition"), F.desc("kafka_offset"))
    return rows.withColumn("_copy", F.row_number().over(order)).where(F.col("_copy") == 1).drop("_copy")


def log_rows(staged: DataFrame, shape: LogShape | None = None) -> DataFrame:
    """The good rows, projected onto the log table's columns (the shape's, then any a writer schema added)."""
    columns = (shape or default_shape()).columns
    extra = [c for c in staged.columns if c not in columns and c not in STAGING_COLUMNS]
    return staged.where(F.col("reason_code").isNull()).select(*columns, *extra)


def quarantine_rows(staged: DataFrame, quarantined_at: Column | None = None) -> DataFrame:
    """The bad rows, projected onto the quarantine table's columns.

    The key is ``topic:partition:offset:record_index`` (``m`` for a whole message), so replaying a
    batch rewrites the same quarantine rows. The partition is the UTC date of the Kafka timestamp,
    which a replay also reproduces.
    """
    now = quarantined_at if quarantined_at is not None else F.current_timestamp()
    index = F.coalesce(F.col("record_index").cast("string"), F.lit("m"))
    return (
        staged.where(F.col("reason_code").isNotNull())
        .select(
            F.concat_ws(":", *COORDINATES, index).alias(QUARANTINE_KEY),
            "reason_code",
            "reason",
            "kafka_topic",
            "kafka_partition",
            "kafka_offset",
            "kafka_timestamp",
            "kafka_key",
            "raw_value",
            "record_index",
            "record_json",
            F.col(BATCH_LABEL).alias("batch_id"),
            now.alias("quarantined_at"),
            utc_date(F.unix_millis("kafka_timestamp")).alias(QUARANTINE_PARTITION_FIELD),
        )
        .select(*QUARANTINE_COLUMNS)
    )


def stage(
    settings: IngestSettings,
    deferred: bool = False,
    decoding: Decoding | None = None,
    shape: LogShape | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """Kafka rows -> staged rows (decode then flatten): the whole per-record path of ingest.

    ``deferred`` skips the checks of :data:`DEFERRED_REASONS`: only for a pass whose rows those checks
    already flagged, by :func:`without_flagged`. ``decoding``: writer schemas by id (schema registry);
    ``shape``: the messages' fields (default: LogBatch).
    """

    def transform(df: DataFrame) -> DataFrame:
        return df.transform(decode(settings, deferred, decoding, shape)).transform(
            flatten(deferred=deferred, decoding=decoding, shape=shape)
        )

    return transform


def of_messages(batch: DataFrame, coordinates: DataFrame) -> DataFrame:
    """The Kafka ``batch`` rows at ``coordinates`` (kafka_topic, kafka_partition, kafka_offset).

    A broadcast semi-join: the quarantine stages only the messages the counting pass found bad.
    """
    # Kafka's own column names on the batch side.
    on = [batch[c.removeprefix("kafka_")] == coordinates[c] for c in COORDINATES]
    return batch.join(F.broadcast(coordinates), reduce(operator.and_, on), "left_semi")


def without_flagged(rows: DataFrame, flagged: DataFrame) -> DataFrame:
    """``rows`` less those ``flagged`` holds: a whole message where its ``record_index`` is null, else one record.

    A broadcast anti-join: ``flagged`` comes from the counting pass and is small (the writer falls back
    to the full checks when it is not).
    """
    f = F.broadcast(flagged.alias("_f"))
    r = rows.alias("_r")
    on = [F.col(f"_r.{c}") == F.col(f"_f.{c}") for c in COORDINATES]
    whole_or_same = F.col("_f.record_index").isNull() | (F.col("_f.record_index") == F.col("_r.record_index"))
    return r.join(f, reduce(operator.and_, on) & whole_or_same, "left_anti").select(
        *(F.col(f"_r.{c}") for c in rows.columns)
    )


def unmet_schema_ids(batch: DataFrame, decoding: Decoding, limit: int) -> DataFrame:
    """Up to ``limit`` distinct schema ids in the Kafka ``batch`` that ``decoding`` does not know yet.

    Run only when the counting pass found such ids: one more read of the headers, not a decode.
    """
    rows = _kafka_columns(batch) if "value" in batch.columns else batch
    raw = F.col("raw_value")
    framed = (F.length(raw) >= WIRE_HEADER_BYTES) & (F.substring(raw, 1, 1) == F.lit(bytearray(1)))
    met = [*decoding.writers, *decoding.rejected, *decoding.unknown]
    ids = rows.where(framed).select(schema_id().alias("schema_id"))
    if met:
        ids = ids.where(~F.col("schema_id").isin(*met))
    return ids.distinct().limit(limit)
