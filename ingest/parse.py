"""Pure DataFrame transforms: Kafka rows -> decoded batches -> one row per log record.

Everything here runs in the JVM (from_avro / from_json, posexplode, SQL expressions); there is no
Python UDF on the per-record path. Nothing here touches a SparkSession or does I/O, so each step is
tested on tiny DataFrames without Kafka.

Bad input policy: a message that cannot be decoded, is too large, or lacks a required batch field
becomes one quarantine row; a record without a usable ``ts`` (or a required field) becomes one
quarantine row for that record while the message's other records go on to the table. Every
quarantine row carries the raw message bytes, its Kafka coordinates, a stable ``reason_code`` (for
metrics) and a ``reason`` that names the field or limit.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.avro.functions import from_avro, to_avro

from ingest.schema import avro_schema_json
from loglake.settings import IngestSettings
from loglake.table import (
    LOG_COLUMNS,
    PARTITION_FIELD,
    QUARANTINE_COLUMNS,
    QUARANTINE_KEY,
    QUARANTINE_PARTITION_FIELD,
    RECORD_KEY,
    record_key,
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

_BATCH_REQUIRED = ("batch_id", "service", "host", "sent_at", "records")
_RECORD_REQUIRED = ("level", "event", "message")

# The JSON twin of log_batch.avsc; timestamps arrive as epoch milliseconds.
_JSON_RECORD = T.StructType(
    [
        T.StructField("ts", T.LongType()),
        T.StructField("level", T.StringType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("email", T.StringType()),
        T.StructField("client_ip", T.StringType()),
        T.StructField("event", T.StringType()),
        T.StructField("message", T.StringType()),
        T.StructField("attributes", T.MapType(T.StringType(), T.StringType())),
    ]
)
JSON_SCHEMA = T.StructType(
    [
        T.StructField("batch_id", T.StringType()),
        T.StructField("service", T.StringType()),
        T.StructField("host", T.StringType()),
        T.StructField("region", T.StringType()),
        T.StructField("sent_at", T.LongType()),
        T.StructField("records", T.ArrayType(_JSON_RECORD)),
    ]
)


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


def _avro_batch(settings: IngestSettings) -> Callable[[DataFrame], DataFrame]:
    """Decode binary Avro (optionally after the 5-byte Confluent header) into ``batch`` with ms times."""
    schema = avro_schema_json()

    def transform(df: DataFrame) -> DataFrame:
        raw = F.col("raw_value")
        size = F.length(raw)
        if settings.confluent_wire_format:
            header_ok = (size >= WIRE_HEADER_BYTES) & (F.substring(raw, 1, 1) == F.lit(bytearray(1)))
            payload = F.when(header_ok, F.expr(f"substring(raw_value, {WIRE_HEADER_BYTES + 1})"))
        else:
            header_ok = F.lit(True)
            payload = raw
        too_large = size > F.lit(settings.max_message_bytes)
        df = df.withColumn("_payload", F.when(~too_large, payload))
        df = df.withColumn("_avro", from_avro(F.col("_payload"), schema, {"mode": "PERMISSIVE"}))
        # PERMISSIVE from_avro yields a struct of nulls on failure; batch_id is never null in a good one.
        failed = F.col("_avro")["batch_id"].isNull()
        if settings.strict_avro:
            # CASE WHEN keeps to_avro away from the all-null struct, which it cannot serialize.
            used = F.when(~failed, F.length(to_avro(F.col("_avro"), schema)))
            trailing = F.coalesce(used != F.length("_payload"), F.lit(False))
        else:
            used, trailing = F.lit(0), F.lit(False)
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
                    "while ingest.confluent_wire_format is true"
                ),
            ),
            (
                failed,
                REASON_NOT_AVRO,
                F.lit("not a binary-Avro LogBatch: truncated, not Avro, or written with another schema"),
            ),
            (
                trailing,
                REASON_TRAILING,
                F.format_string(
                    "the decoded LogBatch accounts for %d of %d bytes: trailing data or another schema",
                    used,
                    F.length("_payload"),
                ),
            ),
        )
        avro = F.col("_avro")
        records = F.transform(
            avro["records"],
            lambda r: F.struct(
                F.unix_millis(r["ts"]).alias("ts_ms"),
                *(r[c].alias(c) for c in ("level", "user_id", "email", "client_ip", "event", "message", "attributes")),
            ),
        )
        batch = F.struct(
            avro["batch_id"].alias("batch_id"),
            avro["service"].alias("service"),
            avro["host"].alias("host"),
            avro["region"].alias("region"),
            F.unix_millis(avro["sent_at"]).alias("sent_at_ms"),
            records.alias("records"),
        )
        return (
            df.withColumn("batch", F.when(code.isNull(), batch))
            .withColumn("reason_code", code)
            .withColumn("reason", text)
            .drop("_payload", "_avro")
        )

    return transform


def _json_batch(settings: IngestSettings) -> Callable[[DataFrame], DataFrame]:
    """Decode a JSON LogBatch into the same ``batch`` shape as :func:`_avro_batch`."""

    def transform(df: DataFrame) -> DataFrame:
        size = F.length("raw_value")
        too_large = size > F.lit(settings.max_message_bytes)
        parsed = F.from_json(F.col("raw_value").cast("string"), JSON_SCHEMA, {"mode": "PERMISSIVE"})
        df = df.withColumn("_json", F.when(~too_large, parsed))
        j = F.col("_json")
        # PERMISSIVE from_json turns text that is not JSON into a struct of nulls.
        nothing = reduce(operator.and_, (j[f].isNull() for f in JSON_SCHEMA.fieldNames()))
        missing = [
            (j[f].isNull(), REASON_MISSING_FIELD, F.lit(f"field {f} is missing or of the wrong type"))
            for f in _BATCH_REQUIRED
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
        )
        records = F.transform(
            j["records"],
            lambda r: F.when(
                r.isNotNull(),
                F.struct(
                    r["ts"].alias("ts_ms"),
                    *(r[c].alias(c) for c in ("level", "user_id", "email", "client_ip", "event", "message")),
                    F.coalesce(r["attributes"], F.create_map().cast("map<string,string>")).alias("attributes"),
                ),
            ),
        )
        batch = F.struct(
            j["batch_id"].alias("batch_id"),
            j["service"].alias("service"),
            j["host"].alias("host"),
            j["region"].alias("region"),
            j["sent_at"].alias("sent_at_ms"),
            records.alias("records"),
        )
        return (
            df.withColumn("batch", F.when(code.isNull(), batch))
            .withColumn("reason_code", code)
            .withColumn("reason", text)
            .drop("_json")
        )

    return transform


def decode(settings: IngestSettings) -> Callable[[DataFrame], DataFrame]:
    """Kafka rows -> one row per message: Kafka coordinates, ``batch`` (null if bad), ``reason``."""
    batch = _avro_batch(settings) if settings.encoding == "avro" else _json_batch(settings)

    def transform(df: DataFrame) -> DataFrame:
        return df.transform(_kafka_columns).transform(batch)

    return transform


def _record_failures(rec: Column, index: Column) -> list[tuple[Column, str, Column]]:
    where = F.format_string("record %d: ", index)
    ts = rec["ts_ms"]
    checks = [
        (rec.isNull(), REASON_NULL_RECORD, F.concat(where, F.lit("null instead of a LogRecord"))),
        (ts.isNull(), REASON_BAD_TS, F.concat(where, F.lit("ts is missing or not epoch milliseconds"))),
        (
            (ts < TS_MIN_MS) | (ts >= TS_MAX_MS),
            REASON_BAD_TS,
            F.concat(where, F.format_string("ts %d is outside [1970-01-01, 2100-01-01) in epoch milliseconds", ts)),
        ),
    ]
    checks += [
        (rec[f].isNull(), REASON_MISSING_FIELD, F.concat(where, F.lit(f"field {f} is missing")))
        for f in _RECORD_REQUIRED
    ]
    return checks


def _record_checks(rec: Column, index: Column) -> tuple[Column, Column]:
    return _first_reason(*_record_failures(rec, index))


def _has_bad_record(records: Column) -> Column:
    """True when any record of the array fails a record check (a null check counts as failing)."""

    def bad(rec: Column) -> Column:
        failed = [c for c, _, _ in _record_failures(rec, F.lit(0))]
        return F.coalesce(reduce(operator.or_, failed), F.lit(True))

    return F.exists(records, bad)


def flatten(ingested_at: Column | None = None) -> Callable[[DataFrame], DataFrame]:
    """Decoded messages -> staged rows: one per good record, one per bad record, one per bad message.

    Good rows have a null ``reason_code`` and every log-table column; bad rows keep the raw message.
    """
    now = ingested_at if ingested_at is not None else F.current_timestamp()

    def transform(df: DataFrame) -> DataFrame:
        kafka = ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_key", "raw_value"]
        bad_messages = df.where(F.col("reason_code").isNotNull()).select(
            *kafka,
            "reason_code",
            "reason",
            F.lit(None).cast("int").alias("record_index"),
            F.lit(None).cast("string").alias("record_json"),
        )
        # The raw message rides along only for messages with a bad record: copied onto every record
        # row of every message, it made the cached batch ~15x larger and decoding 2x slower.
        exploded = df.where(F.col("reason_code").isNull()).select(
            *kafka[:-1],
            F.when(_has_bad_record(F.col("batch.records")), F.col("raw_value")).alias("raw_value"),
            "batch",
            F.posexplode("batch.records").alias("record_index", "rec"),
        )
        code, text = _record_checks(F.col("rec"), F.col("record_index"))
        b, r = F.col("batch"), F.col("rec")
        records = exploded.select(
            *kafka[:-1],
            F.when(code.isNotNull(), F.col("raw_value")).alias("raw_value"),
            code.alias("reason_code"),
            text.alias("reason"),
            F.col("record_index"),
            F.when(code.isNotNull(), F.to_json(r)).alias("record_json"),
            record_key(b["service"], b["batch_id"], F.col("record_index")).alias(RECORD_KEY),
            F.timestamp_millis(r["ts_ms"]).alias("ts"),
            *(r[c].alias(c) for c in ("level", "user_id", "email", "client_ip", "event", "message", "attributes")),
            *(b[c].alias(c) for c in ("batch_id", "service", "host", "region")),
            F.timestamp_millis(b["sent_at_ms"]).alias("sent_at"),
            now.alias("ingested_at"),
            F.when(code.isNull(), utc_date(r["ts_ms"])).alias(PARTITION_FIELD),
        )
        return records.unionByName(bad_messages, allowMissingColumns=True)

    return transform


def first_row_of_message() -> Column:
    """True on exactly one staged row per message that has rows: counting it counts messages.

    Every message with records has a row with ``record_index`` 0; a quarantined whole message is
    one row with a null ``record_index``. A message with an empty ``records`` array has no row.
    """
    index = F.col("record_index")
    return index.isNull() | (index == 0)


def repeated_batches(staged: DataFrame) -> DataFrame:
    """(service, batch_id, copies) of every batch that arrived more than once in ``staged``.

    Checked on one row per message (record 0), so it costs an aggregation over messages, not
    records. A producer retry that lands in the same micro-batch as the original shows up here.
    """
    return (
        staged.where(F.col("record_index") == 0)
        .groupBy("service", "batch_id")
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


def log_rows(staged: DataFrame) -> DataFrame:
    """The good rows, projected onto the log table's columns."""
    return staged.where(F.col("reason_code").isNull()).select(*LOG_COLUMNS)


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
            F.concat_ws(":", "kafka_topic", "kafka_partition", "kafka_offset", index).alias(QUARANTINE_KEY),
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
            "batch_id",
            now.alias("quarantined_at"),
            utc_date(F.unix_millis("kafka_timestamp")).alias(QUARANTINE_PARTITION_FIELD),
        )
        .select(*QUARANTINE_COLUMNS)
    )


def stage(settings: IngestSettings) -> Callable[[DataFrame], DataFrame]:
    """Kafka rows -> staged rows (decode then flatten): the whole per-record path of ingest."""

    def transform(df: DataFrame) -> DataFrame:
        return df.transform(decode(settings)).transform(flatten())

    return transform
