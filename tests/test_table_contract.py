"""Record key and partition path: deterministic, unambiguous, time-zone independent."""

from typing import Any

import pytest
from pyspark.sql import functions as F

from loglake import table
from loglake.settings import load_settings


def test_python_and_spark_keys_agree(spark: Any) -> None:
    cases = [("api", "b-1", 0), ("svc:a", "b:2", 17), ("100%", "x", 3), ("a%3Ab", "y", 9)]
    df = spark.createDataFrame(cases, "service string, batch_id string, record_index int")
    got = [
        r[0] for r in df.select(table.record_key(F.col("service"), F.col("batch_id"), F.col("record_index"))).collect()
    ]
    assert got == [table.record_key_py(*c) for c in cases]


def test_keys_are_unambiguous() -> None:
    # Without escaping these two would both be "a:b:c:0".
    assert table.record_key_py("a:b", "c", 0) != table.record_key_py("a", "b:c", 0)
    # A literal "%3A" in a service cannot collide with an escaped colon.
    assert table.record_key_py("a%3Ab", "c", 0) != table.record_key_py("a:b", "c", 0)


@pytest.mark.parametrize("tz", ["UTC", "America/Los_Angeles", "Asia/Kolkata"])
def test_event_date_is_utc_whatever_the_session_zone(spark: Any, tz: str) -> None:
    spark.conf.set("spark.sql.session.timeZone", tz)
    try:
        millis = [0, 86_399_999, 86_400_000, 1_764_028_799_999, 1_764_028_800_000]
        df = spark.createDataFrame([(m,) for m in millis], "ms long")
        got = [r[0] for r in df.select(table.utc_date(F.col("ms"))).collect()]
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert got == ["1970-01-01", "1970-01-01", "1970-01-02", "2025-11-24", "2025-11-25"]


def test_every_writer_shares_key_partition_and_merge_semantics() -> None:
    s = load_settings(overrides={"table.path": "/t"}, assignments=["hoodie.parquet.max.file.size=1234"])
    ingest = table.ingest_options(s)
    assert ingest["hoodie.datasource.write.table.type"] == "MERGE_ON_READ"
    assert ingest["hoodie.datasource.write.recordkey.field"] == table.RECORD_KEY
    assert ingest["hoodie.datasource.write.partitionpath.field"] == table.PARTITION_FIELD
    assert ingest["hoodie.record.merge.mode"] == "COMMIT_TIME_ORDERING"
    assert ingest["hoodie.parquet.max.file.size"] == "1234"  # user settings win
    quarantine = table.quarantine_options(s)
    assert quarantine["hoodie.table.name"] == "logs_quarantine"
    assert quarantine["hoodie.datasource.write.recordkey.field"] == table.QUARANTINE_KEY


def test_user_layout_settings_do_not_leak_into_quarantine() -> None:
    s = load_settings(overrides={"table.path": "/t"}, assignments=["hoodie.datasource.write.recordkey.field=other"])
    assert table.ingest_options(s)["hoodie.datasource.write.recordkey.field"] == "other"
    assert table.quarantine_options(s)["hoodie.datasource.write.recordkey.field"] == table.QUARANTINE_KEY


def test_every_table_locks_through_the_configured_lock_service() -> None:
    from gdpr import ledger
    from loglake.settings import load_settings
    from loglake.table import delete_options, ingest_options, quarantine_options

    dynamo = "org.apache.hudi.aws.transaction.lock.DynamoDBBasedLockProvider"
    settings = load_settings(
        assignments=[
            "table.path=s3://b/logs",
            f"hoodie.write.lock.provider={dynamo}",
            "hoodie.write.lock.dynamodb.table=locks",
        ]
    )
    for opts in (
        ingest_options(settings),
        delete_options(settings),
        quarantine_options(settings),
        ledger.options(settings),
    ):
        assert opts["hoodie.write.lock.provider"] == dynamo
        assert opts["hoodie.write.lock.dynamodb.table"] == "locks"
        assert opts["hoodie.write.concurrency.mode"] == "OPTIMISTIC_CONCURRENCY_CONTROL"
        assert opts["hoodie.clean.failed.writes.policy"] == "LAZY"
    # Personal columns never get min/max statistics in the metadata table.
    for opts in (ingest_options(settings), quarantine_options(settings)):
        indexed = opts["hoodie.metadata.index.column.stats.column.list"].split(",")
        assert not {"user_id", "email", "client_ip", "raw_value", "record_json", "message"} & set(indexed)


def test_only_the_streams_files_skip_dictionary_encoding() -> None:
    s = load_settings(overrides={"table.path": "/t"})
    assert table.ingest_options(s)["hoodie.parquet.dictionary.enabled"] == "false"
    # Compaction and clustering write the base files that stay: Parquet's dictionary default holds there.
    assert "hoodie.parquet.dictionary.enabled" not in table.service_options(s)
    assert "hoodie.parquet.dictionary.enabled" not in table.delete_options(s)
    chosen = load_settings(overrides={"table.path": "/t"}, assignments=["hoodie.parquet.dictionary.enabled=true"])
    assert table.ingest_options(chosen)["hoodie.parquet.dictionary.enabled"] == "true"


def test_column_statistics_of_an_own_log_schema_are_time_and_key_never_a_subject() -> None:
    s = load_settings(
        overrides={"table.path": "/t"},
        assignments=[
            "log_schema.key_fields=[app, caller]",
            "log_schema.event_time_field=occurred_us",
            "log_schema.subject_columns=[phone, caller]",
        ],
    )
    # LogBatch's own list (ts, level, service, event) names columns such a table lacks, which fails commits.
    for opts in (table.ingest_options(s), table.delete_options(s), table.service_options(s)):
        assert opts["hoodie.metadata.index.column.stats.column.list"] == "ts,app"
    assert (
        table.ingest_options(load_settings(overrides={"table.path": "/t"}))[
            "hoodie.metadata.index.column.stats.column.list"
        ]
        == "ts,level,service,event"
    )
