"""The tables by name: the stream's catalog sync into a real Hive Metastore, read by Spark SQL and Trino.

The checking side is independent of loglake's code: partitions are compared with the table's own
folders, Spark SQL runs in a separate process with Hive support, and Trino (the engine behind Athena)
reads through its Hudi connector. The metastore is Hive 3.1.3's standalone server.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from builders import NOW_MS, encode, expected_rows, send
from conftest import TEST_SPARK_CONF, free_port

from app.produce import make_batch
from compaction.job import run_compact
from gdpr.expire import run_expire
from gdpr.job import run_delete
from gdpr.requests import parse_text
from ingest.job import run
from ingest.metrics import IngestMetrics
from loglake import catalog
from loglake.errors import CatalogSyncError, ConfigError
from loglake.settings import Settings

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
DAYS = ("2025-11-22", "2025-11-23", "2025-11-24")


def three_days(per_day: int, seed: int) -> list[dict[str, Any]]:
    """Batches whose records fall on three UTC days (NOW_MS is 16:00, so late batches stay on their day)."""
    rng = random.Random(seed)
    return [make_batch(rng, NOW_MS - back * DAY_MS, rng.randint(7, 25)) for back in (2, 1, 0) for _ in range(per_day)]


def folders(path: str | Path) -> list[str]:
    """The table's partitions as its folders say, read from the file system."""
    return sorted(p.name for p in Path(path).iterdir() if p.is_dir() and not p.name.startswith("."))


def counter(metrics: IngestMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def spark_sql_by_name(metastore: str, queries: list[str]) -> list[Any]:
    """First column of each query's first row, from a separate Spark with Hive support, the way an
    analyst's session would read the catalog (not the test session, which reads by path)."""
    script = (
        "import json, sys\n"
        "from loglake.settings import load_settings\n"
        "from loglake.spark import get_spark\n"
        "conf = json.loads(sys.argv[1])\n"
        "spark = get_spark(load_settings(assignments=conf), app_name='sql-by-name')\n"
        "print(json.dumps([spark.sql(q).collect()[0][0] for q in sys.argv[2:]]))\n"
        "spark.stop()\n"
    )
    conf = [
        *TEST_SPARK_CONF,
        "spark.master=local[1]",
        "spark.driver.memory=1g",
        "spark.sql.catalogImplementation=hive",
        f"spark.hadoop.hive.metastore.uris={metastore}",
    ]
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(conf), *queries],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_sync_properties_name_the_tables_and_take_the_users_sync_settings(settings_factory: Any) -> None:
    settings = settings_factory(
        "t",
        "catalog.metastore_uris=thrift://127.0.0.1:9083",
        "catalog.database=Lake",
        "catalog.table=AppLogs",
        "hoodie.datasource.hive_sync.batch_num=500",
    )
    assert settings.catalog.active
    assert catalog.table_names(settings, "log") == ("applogs_ro", "applogs_rt")
    assert catalog.table_names(settings, "quarantine") == ("applogs_quarantine",)
    props = catalog.sync_properties(settings, "log")
    assert props["hoodie.datasource.hive_sync.database"] == "lake"
    assert props["hoodie.datasource.hive_sync.partition_fields"] == "event_date"
    assert props["hoodie.datasource.hive_sync.metastore.uris"] == "thrift://127.0.0.1:9083"
    assert props["hoodie.datasource.hive_sync.batch_num"] == "500"
    assert props["hoodie.meta.sync.incremental"] == "true"
    assert catalog.sync_properties(settings, "log", full=True)["hoodie.meta.sync.incremental"] == "false"
    quarantine = catalog.sync_properties(settings, "quarantine")
    assert quarantine["hoodie.datasource.hive_sync.partition_fields"] == "quarantine_date"
    assert quarantine["hoodie.datasource.meta.sync.base.path"].endswith("logs_quarantine")
    # Off unless a metastore is given or it is switched on (Glue through hive-site.xml on EMR).
    assert not settings_factory("t").catalog.active
    assert settings_factory("t", "catalog.enabled=true").catalog.active


def test_stream_registers_tables_and_partitions_read_by_name_by_spark_and_trino(
    spark: Any,
    kafka_bootstrap: str,
    topic_factory: Any,
    settings_factory: Any,
    hive_metastore: str,
    trino: Any,
) -> None:
    topic = topic_factory(partitions=2)
    batches = three_days(per_day=12, seed=41)
    send(kafka_bootstrap, topic, [encode(b) for b in batches] + [b"not a log batch"])
    database = f"lake_{uuid.uuid4().hex[:8]}"
    settings: Settings = settings_factory(
        topic,
        "kafka.max_offsets_per_trigger=10",
        f"catalog.metastore_uris={hive_metastore}",
        f"catalog.database={database}",
        # What Athena (Hudi 0.14/0.15) and Trino 476 read: see docs/catalog.md, "Which table version for which reader".
        "table.version=6",
    )
    metrics = IngestMetrics()

    result = run(settings, once=True, metrics=metrics)

    expected = expected_rows(batches)
    assert result.records_written == len(expected) and result.batches >= 4
    path = settings.table.require_path()
    assert folders(path) == [f"event_date={d}" for d in DAYS]
    assert catalog.tables(spark, settings) == ["logs_quarantine", "logs_ro", "logs_rt"]
    assert catalog.partitions(spark, settings, "logs_ro") == folders(path)
    assert catalog.partitions(spark, settings, "logs_rt") == folders(path)
    assert catalog.partitions(spark, settings, "logs_quarantine") == folders(settings.table.effective_quarantine_path)
    assert counter(metrics, "loglake_ingest_catalog_syncs_total", table="log") >= result.batches
    assert counter(metrics, "loglake_ingest_catalog_sync_failures_total", table="log") == 0
    assert counter(metrics, "loglake_ingest_catalog_unsynced_batches", table="log") == 0

    # Trino merges no log files: before compaction its _rt shows only what base files hold.
    (before,) = trino.query(f"SELECT count(*) FROM hudi.{database}.logs_rt")[0]
    assert before < len(expected)

    compacted = run_compact(settings, schedule=True, until_caught_up=True)
    assert compacted.caught_up

    by_day = {d: sum(1 for r in expected.values() if r["event_date"] == d) for d in DAYS}
    rt, ro, bad = spark_sql_by_name(
        hive_metastore,
        [
            f"SELECT count(*) FROM {database}.logs_rt",
            f"SELECT count(*) FROM {database}.logs_ro",
            f"SELECT count(*) FROM {database}.logs_quarantine",
        ],
    )
    assert (rt, ro, bad) == (len(expected), len(expected), 1)
    # Trino reads the read-optimized table: every row once compacted, and one day by partition.
    assert trino.query(f"SELECT count(*) FROM hudi.{database}.logs_ro") == [(len(expected),)]
    # A partition filter is answered by the connector: only that day's files are read.
    plan = trino.query(f"EXPLAIN ANALYZE SELECT count(*) FROM hudi.{database}.logs_ro WHERE event_date = '{DAYS[1]}'")
    assert f"Input: {by_day[DAYS[1]]} rows" in plan[0][0]
    assert trino.query(f"SELECT count(*) FROM hudi.{database}.logs_rt") == [(len(expected),)]

    # Erasure reaches readers by name: after a purge Trino finds none of the subject's rows.
    subject = next(r["user_id"] for r in expected.values() if r["user_id"])
    theirs = sum(1 for r in expected.values() if r["user_id"] == subject)
    erased = run_delete(
        settings, parse_text(json.dumps({"request_id": "r1", "user_id": subject}), "r.jsonl"), do_purge=True
    )
    assert erased.verified is True
    assert trino.query(f"SELECT count(*) FROM hudi.{database}.logs_ro WHERE user_id = '{subject}'") == [(0,)]
    assert trino.query(f"SELECT count(*) FROM hudi.{database}.logs_ro") == [(len(expected) - theirs,)]

    # Retention drops the day from storage and from the catalog, so no reader meets an empty partition.
    expired = run_expire(settings, 2, today=date(2025, 11, 25))
    assert expired.partitions_dropped == [f"event_date={DAYS[0]}"]
    assert expired.catalog_tables == ["logs_ro", "logs_rt"]
    assert catalog.partitions(spark, settings, "logs_ro") == [f"event_date={d}" for d in DAYS[1:]]
    assert catalog.partitions(spark, settings, "logs_rt") == [f"event_date={d}" for d in DAYS[1:]]
    left = sum(1 for r in expected.values() if r["event_date"] != DAYS[0] and r["user_id"] != subject)
    assert trino.query(f"SELECT count(*) FROM hudi.{database}.logs_ro") == [(left,)]

    # Every writer kept the table at 6; a writer pinned to Hudi's own version is refused, never upgrades it
    # out of these readers' reach.
    assert "hoodie.table.version=6" in (Path(path) / ".hoodie" / "hoodie.properties").read_text()
    with pytest.raises(
        ConfigError, match=r"setting table.version=9: the table at .* is version 6; set table.version=6"
    ):
        run(settings_factory(topic, f"catalog.metastore_uris={hive_metastore}", "table.version=9"), once=True)


def test_sync_every_n_batches_registers_after_the_nth_only(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any, hive_metastore: str
) -> None:
    topic = topic_factory(partitions=1)
    batches = three_days(per_day=3, seed=47)
    send(kafka_bootstrap, topic, [encode(b) for b in batches])
    settings = settings_factory(
        topic,
        "kafka.max_offsets_per_trigger=3",
        f"catalog.metastore_uris={hive_metastore}",
        f"catalog.database=lake_{uuid.uuid4().hex[:8]}",
        "catalog.sync_every_batches=100",
    )
    metrics = IngestMetrics()

    result = run(settings, once=True, metrics=metrics)

    # Synced once, after the first batch (a run starts by catching up), then not for 100 batches.
    assert result.batches == 3
    assert counter(metrics, "loglake_ingest_catalog_syncs_total", table="log") == 1
    assert counter(metrics, "loglake_ingest_catalog_unsynced_batches", table="log") == 2
    assert catalog.partitions(spark, settings, "logs_rt") == [f"event_date={DAYS[0]}"]


def test_a_metastore_that_is_down_never_costs_a_commit_and_the_next_sync_catches_up(
    spark: Any,
    cli: Any,
    kafka_bootstrap: str,
    topic_factory: Any,
    settings_factory: Any,
    hive_metastore: str,
) -> None:
    topic = topic_factory(partitions=1)
    batches = three_days(per_day=4, seed=43)
    send(kafka_bootstrap, topic, [encode(b) for b in batches])
    database = f"lake_{uuid.uuid4().hex[:8]}"
    down = f"thrift://127.0.0.1:{free_port()}"
    settings = settings_factory(
        topic, "kafka.max_offsets_per_trigger=6", f"catalog.metastore_uris={down}", f"catalog.database={database}"
    )
    metrics = IngestMetrics()

    result = run(settings, once=True, metrics=metrics)

    # Every batch committed; each tried to sync, failed, and counted it.
    assert result.records_written == len(expected_rows(batches))
    assert counter(metrics, "loglake_ingest_catalog_sync_failures_total", table="log") == result.batches
    assert counter(metrics, "loglake_ingest_catalog_syncs_total", table="log") == 0
    assert counter(metrics, "loglake_ingest_catalog_unsynced_batches", table="log") == result.batches
    with pytest.raises(CatalogSyncError, match=rf"catalog.metastore_uris={down}.*commits stand"):
        catalog.sync(spark, settings, "log")

    # The CLI says so in one line with its own exit code, then repairs against the live metastore.
    path = settings.table.require_path()
    sync = ["catalog", "sync", "--table-path", path, "--set", f"catalog.database={database}"]
    failed = cli(*sync, "--metastore-uris", down)
    assert failed.returncode == 8, failed.stderr[-2000:]
    last = failed.stderr.strip().splitlines()[-1]
    assert f"catalog.metastore_uris={down}" in last and "Traceback" not in failed.stderr
    repaired = cli(*sync, "--metastore-uris", hive_metastore)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    report = json.loads(repaired.stdout)
    assert [(r["kind"], r["tables"], r["partitions"], r["full"]) for r in report] == [
        ("log", ["logs_ro", "logs_rt"], 3, True)
    ]
    live = settings.model_copy(
        update={"catalog": settings.catalog.model_copy(update={"metastore_uris": hive_metastore})}
    )
    assert catalog.partitions(spark, live, "logs_rt") == folders(path)
