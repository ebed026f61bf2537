"""The compaction job beside a live stream, after a SIGKILL, through its CLI, and clustering where the layout allows it.

Real Kafka, a real ingest process, real Hudi table services. Contents are checked with Spark and
with hudi-rs (an independent reader); "in base files" with Spark's read-optimized query, which reads
base files only.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from builders import encode, expected_rows, make_batches, normalize, read_hudi_rs, read_live_hudi_rs, send
from prometheus_client.parser import text_string_to_metric_families

from compaction.job import CLUSTERING_SKIPPED_BUCKET, run_compact
from ingest.job import run
from loglake import timeline
from loglake.settings import Settings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Columns of the table in a stable order for whole-row comparisons (Hudi's meta columns differ after
# compaction: the file name changes, by design).
DATA_COLUMNS = ["record_key", "user_id", "email", "client_ip", "message", "event_date", "kafka_offset"]


def _config(tmp_path: Path, bootstrap: str, topic: str, **hoodie: str) -> Path:
    config = tmp_path / "loglake.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "max_offsets_per_trigger": 15},
                "table": {"path": str(tmp_path / "logs")},
                "ingest": {"trigger": "1 second"},
                "metrics": {"port": 0},
                "spark": {
                    "conf": {"spark.master": "local[1]", "spark.driver.memory": "1g", "spark.ui.enabled": "false"}
                },
                # The stream plans a compaction every 2 delta commits, so plans pile up within seconds.
                "hoodie": {"hoodie.compact.inline.max.delta.commits": "2", **hoodie},
            }
        )
    )
    return config


def _snapshot(spark: Any, path: str, query: str = "snapshot") -> list[tuple[Any, ...]]:
    df = spark.read.format("hudi").option("hoodie.datasource.query.type", query).load(path)
    return sorted(tuple(r) for r in df.select(*DATA_COLUMNS).collect())


def _timeline_files(path: Path) -> list[str]:
    return [p.name for p in (path / ".hoodie" / "timeline").iterdir()]


def test_compaction_catches_up_beside_a_live_stream_and_changes_no_row(
    spark: Any, cli: Any, kafka_bootstrap: str, topic_factory: Any, tmp_path: Path, pushgateway: str
) -> None:
    from conftest import TEST_SPARK_CONF

    topic = topic_factory(partitions=2)
    before = make_batches(60, seed=61, records=(5, 12))
    during = make_batches(60, seed=62, records=(5, 12))
    config = _config(tmp_path, kafka_bootstrap, topic)
    settings = load_settings(config, assignments=TEST_SPARK_CONF)
    table = settings.table.require_path()
    send(kafka_bootstrap, topic, [encode(b) for b in before])
    # 2 micro-batches: the stream itself scheduled a plan after the second, executed none.
    run(load_settings(config, assignments=[*TEST_SPARK_CONF, "kafka.max_offsets_per_trigger=30"]), once=True)
    scheduled = timeline.health(spark, table).pending_compactions
    assert scheduled
    assert not any(n.endswith(".commit") for n in _timeline_files(Path(table)))

    log = tmp_path / "ingest.log"
    with log.open("ab") as out:
        stream = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ingest", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def trickle() -> None:
            for i in range(0, len(during), 10):
                send(kafka_bootstrap, topic, [encode(b) for b in during[i : i + 10]])
                time.sleep(2)

        producer = threading.Thread(target=trickle)
        producer.start()
        result = run_compact(settings, until_caught_up=True, spark=spark)
        producer.join()
        wanted = expected_rows(before + during)
        deadline = time.monotonic() + 240
        while True:
            if stream.poll() is not None:
                pytest.fail(f"the stream died ({stream.returncode}):\n{log.read_text()[-3000:]}")
            got = {r["record_key"]: normalize(r) for r in read_live_hudi_rs(table).to_pylist()}
            if set(wanted) <= set(got) or time.monotonic() > deadline:
                break
            time.sleep(2)
    finally:
        stream.send_signal(signal.SIGTERM)
        stream.wait(timeout=120)

    # Every plan that was pending when the job started has been executed, beside the stream.
    assert result.caught_up
    executed = {i for r in result.rounds for i in r.compacted}
    assert set(scheduled) <= executed
    assert result.totals()["log_files_compacted"] > 0 and result.totals()["bytes_written"] > 0
    assert all(r.clustering_skipped == CLUSTERING_SKIPPED_BUCKET for r in result.rounds)
    # Nothing lost or duplicated while both wrote.
    assert got == wanted
    assert log.read_text().count("records written") >= 3

    # Quiet table: compact everything through the CLI; the snapshot must not change by one value,
    # and afterwards base files alone (read-optimized) hold every row.
    before_rows = _snapshot(spark, table)
    assert len(before_rows) == len(wanted)
    assert len(_snapshot(spark, table, "read_optimized")) < len(before_rows)
    done = cli("compact", "--config", str(config), "--schedule", "--until-caught-up", "--pushgateway", pushgateway)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["caught_up"] and report["pending_after"] == [] and report["uncompacted_delta_commits_after"] == 0
    files = report["files"]
    assert files["log_files_to_merge"] == 0 and files["latest_base_files"] == files["file_groups"] > 0
    assert _snapshot(spark, table) == before_rows
    assert _snapshot(spark, table, "read_optimized") == before_rows
    assert {r["record_key"]: normalize(r) for r in read_hudi_rs(table).to_pylist()} == wanted

    with urllib.request.urlopen(f"http://{pushgateway}/metrics", timeout=10) as r:
        samples = {
            s.name: s.value
            for family in text_string_to_metric_families(r.read().decode())
            for s in family.samples
            if s.name.startswith("loglake_compaction_") and s.labels.get("table") == settings.table.name
        }
    assert samples["loglake_compaction_pending_plans"] == 0
    assert samples["loglake_compaction_log_files_to_merge"] == 0
    assert samples["loglake_compaction_log_files_compacted"] > 0
    assert samples["loglake_compaction_last_success_timestamp_seconds"] > time.time() - 600

    # The PII-free column statistics survive table services: no identifier column in the metadata table.
    stats = spark.read.format("hudi").load(f"{table}/.hoodie/metadata").where("type = 3")
    indexed = {r[0] for r in stats.select("ColumnStatsMetadata.columnName").distinct().collect()}
    assert indexed and not indexed & {"user_id", "email", "client_ip", "message", "attributes"}, indexed

    # The stream writes its files without dictionary encoding (a file group's first base file, then log
    # blocks); the base files compaction writes keep it: smaller, and readers filter row groups by it.
    # Parquet itself falls back to plain encoding where a dictionary would not pay (a handful of rows),
    # so only compacted files of some size are held to it.
    compactions = {n.split("_")[0] for n in _timeline_files(Path(table)) if n.endswith(".commit")}
    encodings: dict[bool, list[set[str]]] = {True: [], False: []}
    for f in Path(table).rglob("*.parquet"):
        meta = pq.ParquetFile(f).metadata
        if ".hoodie" in f.parts or meta.num_rows < 50:
            continue
        level = next(c for c in map(meta.row_group(0).column, range(meta.num_columns)) if c.path_in_schema == "level")
        encodings[f.stem.rsplit("_", 1)[1] in compactions].append(set(level.encodings))
    dictionary = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
    assert encodings[True] and all(dictionary & e for e in encodings[True]), encodings
    assert not any(dictionary & e for e in encodings[False]), encodings


def _kill_when_inflight(proc: subprocess.Popen[bytes], table: Path, timeout: float = 300) -> str:
    """SIGKILL ``proc`` as soon as a compaction is inflight; the instant that was running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = _timeline_files(table)
        inflight = [n.split(".")[0] for n in names if n.endswith(".compaction.inflight")]
        done = {n.split("_")[0] for n in names if n.endswith(".commit")}
        running = [i for i in inflight if i not in done]
        if running:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return running[0]
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the compaction never went inflight")


def test_a_compaction_killed_half_way_is_finished_by_the_next_run(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    from conftest import TEST_SPARK_CONF

    topic = topic_factory(partitions=2)
    batches = make_batches(80, seed=71, records=(5, 12))
    for i, b in enumerate(batches):  # over four days
        for r in b["records"]:
            r["ts"] += (i % 4) * 86_400_000
    # Many file groups make the compaction last long enough to be caught half way.
    config = _config(tmp_path, kafka_bootstrap, topic, **{"hoodie.bucket.index.num.buckets": "16"})
    settings: Settings = load_settings(config, assignments=TEST_SPARK_CONF)
    table = Path(settings.table.require_path())
    send(kafka_bootstrap, topic, [encode(b) for b in batches])
    # Two delta commits: the second adds log files to the file groups the first created.
    run(load_settings(config, assignments=[*TEST_SPARK_CONF, "kafka.max_offsets_per_trigger=40"]), once=True)
    wanted = expected_rows(batches)
    rows = _snapshot(spark, str(table))

    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "compact", "--config", str(config), "--schedule", "--until-caught-up"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = _kill_when_inflight(proc, table)
    assert killed in timeline.health(spark, str(table)).pending_compactions

    result = run_compact(settings, until_caught_up=True, spark=spark)
    assert result.caught_up and killed in {i for r in result.rounds for i in r.compacted}
    assert _snapshot(spark, str(table)) == rows
    assert len(rows) == len(wanted)
    got = {r["record_key"]: normalize(r) for r in read_hudi_rs(str(table)).to_pylist()}
    assert got == wanted


def test_clustering_merges_small_files_where_the_layout_allows_it(spark: Any, tmp_path: Path) -> None:
    """With a non-bucket index (a user's choice through hoodie.*), clustering rewrites small base files into one."""
    from conftest import TEST_SPARK_CONF
    from pyspark.sql import functions as F

    from bench.gdpr import synthetic_logs
    from loglake import table as contract

    path = tmp_path / "logs"
    settings = load_settings(
        overrides={"table.path": str(path)},
        assignments=[
            *TEST_SPARK_CONF,
            "hoodie.index.type=SIMPLE",
            # Every insert its own new file: the small-file problem clustering exists for.
            "hoodie.parquet.small.file.limit=0",
            "hoodie.clustering.plan.strategy.small.file.limit=52428800",
            "hoodie.clustering.plan.strategy.target.file.max.bytes=104857600",
            "compaction.clean=false",
        ],
    )
    rows = synthetic_logs(spark, 3000, subjects=1, days=2).cache()
    for k in range(4):
        rows.where(F.pmod(F.xxhash64(contract.RECORD_KEY), F.lit(4)) == k).write.format("hudi").options(
            **contract.ingest_options(settings)
        ).mode("append").save(str(path))

    def base_files() -> dict[str, int]:
        df = spark.read.format("hudi").option("hoodie.datasource.query.type", "read_optimized").load(str(path))
        per = df.groupBy("event_date").agg(F.countDistinct("_hoodie_file_name").alias("n")).collect()
        return {r["event_date"]: r["n"] for r in per}

    before = _snapshot(spark, str(path))
    assert all(n >= 4 for n in base_files().values()), base_files()
    result = run_compact(settings, spark=spark)
    assert result.rounds[0].clustered, result
    assert base_files() == {d: 1 for d in base_files()}
    assert result.files["latest_base_files"] == len(base_files())
    assert _snapshot(spark, str(path)) == before


def test_loop_mode_runs_rounds_until_interrupted(spark: Any, tmp_path: Path) -> None:
    from conftest import TEST_SPARK_CONF
    from pyspark.sql import functions as F

    from bench.gdpr import synthetic_logs
    from loglake import table as contract

    path = tmp_path / "logs"
    settings = load_settings(overrides={"table.path": str(path)}, assignments=TEST_SPARK_CONF)
    rows = synthetic_logs(spark, 2000, subjects=1, days=1)
    for k in range(2):
        rows.where(F.pmod(F.xxhash64(contract.RECORD_KEY), F.lit(2)) == k).write.format("hudi").options(
            **contract.ingest_options(settings)
        ).mode("append").save(str(path))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "compact",
            "--table-path",
            str(path),
            "--schedule",
            "--loop",
            "1 second",
            "--set",
            "spark.master=local[1]",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        rounds = [json.loads(proc.stdout.readline()) for _ in range(2)]  # one JSON line per round
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    assert rounds[0]["compacted"] and rounds[0]["compacted"] == rounds[0]["scheduled"]
    assert rounds[1]["compacted"] == []  # nothing new to do: the loop idles
    assert code == 130


def test_loop_started_before_the_stream_waits_for_the_table(spark: Any, tmp_path: Path) -> None:
    """A loop started with the stream (a fresh deployment) waits for the table and its first commit
    instead of exiting; a single round on a missing table still fails at once, naming the path."""
    from conftest import TEST_SPARK_CONF

    from bench.gdpr import synthetic_logs
    from loglake import table as contract
    from loglake.errors import TableError

    path = tmp_path / "logs"
    settings = load_settings(overrides={"table.path": str(path)}, assignments=TEST_SPARK_CONF)
    with pytest.raises(TableError, match=f"table.path={path}"):
        run_compact(settings, spark=spark)

    pauses: list[float] = []

    timeline_dir = path / ".hoodie" / "timeline"
    held = tmp_path / "held"

    def stream_commits_during_the_pauses(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1:  # the stream has created the table; its first commit is not complete yet
            synthetic_logs(spark, 500, subjects=1, days=1).write.format("hudi").options(
                **contract.ingest_options(settings)
            ).mode("append").save(str(path))
            held.mkdir()
            for completed in timeline_dir.glob("*.deltacommit"):
                completed.rename(held / completed.name)
        elif len(pauses) == 2:  # now it is
            for completed in held.iterdir():
                completed.rename(timeline_dir / completed.name)

    class Done(Exception):
        pass

    def stop(result: Any) -> None:
        raise Done

    with pytest.raises(Done):
        run_compact(settings, loop=True, spark=spark, sleep=stream_commits_during_the_pauses, on_round=stop)
    # Checked every 30 s (the default 10-minute interval would leave a new table unserviced that long),
    # until the table exists and then until its first commit has completed.
    assert pauses == [30.0, 30.0] and not list(held.iterdir())


def test_loop_rides_out_a_failed_round_then_stops_after_too_many(spark: Any, tmp_path: Path) -> None:
    """A round that fails (here: a pending compaction plan that does not parse) is logged and retried
    after the pause; compaction.max_failed_rounds failures in a row end the loop with the error."""
    from conftest import TEST_SPARK_CONF
    from pyspark.sql import functions as F

    from bench.gdpr import synthetic_logs
    from loglake import table as contract

    path = tmp_path / "logs"
    settings = load_settings(
        overrides={"table.path": str(path)}, assignments=[*TEST_SPARK_CONF, "compaction.max_failed_rounds=2"]
    )
    rows = synthetic_logs(spark, 2000, subjects=1, days=1)
    for k in range(2):
        rows.where(F.pmod(F.xxhash64(contract.RECORD_KEY), F.lit(2)) == k).write.format("hudi").options(
            **contract.ingest_options(settings)
        ).mode("append").save(str(path))

    def plant_bad_plan() -> Path:
        plan = path / ".hoodie" / "timeline" / f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}000.compaction.requested"
        plan.write_bytes(b"not an Avro compaction plan")
        return plan

    class Done(Exception):
        pass

    def stop_after_success(result: Any) -> None:
        raise Done

    bad = plant_bad_plan()
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        bad.unlink(missing_ok=True)  # the cause goes away before the next round

    with pytest.raises(Done):
        run_compact(settings, loop=True, spark=spark, sleep=pause, on_round=stop_after_success)
    assert len(pauses) == 1  # one failed round, then one that succeeded

    time.sleep(1.1)  # a new instant time for the next bad plan
    bad = plant_bad_plan()
    pauses.clear()
    with pytest.raises(Exception) as failed:
        run_compact(settings, loop=True, spark=spark, sleep=pauses.append, on_round=stop_after_success)
    assert not isinstance(failed.value, Done) and len(pauses) == 1  # two failed rounds in a row: stop
    bad.unlink()
