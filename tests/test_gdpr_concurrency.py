"""Deletes while the stream keeps writing: two real writer processes on one table, then a compaction.

The ingest job runs as its own process (trigger 1 s) while batches keep arriving; this process runs
the GDPR job three times against the same table. Afterwards no ingested record is missing, no
erased record is present, and a compaction (which rewrites base files from the logs) brings none back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from builders import encode, expected_rows, make_batches, normalize, read_hudi_rs, read_live_hudi_rs, send

from gdpr.job import run_delete
from gdpr.requests import parse_text
from ingest.job import run
from loglake.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_deletes_run_beside_a_live_stream_and_compaction_brings_nothing_back(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    from conftest import TEST_SPARK_CONF

    topic = topic_factory(partitions=2)
    before = make_batches(60, seed=51, records=(5, 12))
    during = make_batches(90, seed=52, records=(5, 12))
    # Three subjects, one per delete run, taken from the data already in the table.
    subjects = []
    for b in before:
        user = b["records"][0]["user_id"]
        if user not in subjects:
            subjects.append(user)
        if len(subjects) == 3:
            break
    # Records arriving during the deletes belong to other people, so what must be gone is exact.
    for b in during:
        for r in b["records"]:
            if r["user_id"] in subjects:
                r["user_id"] = "u-other"
    table = tmp_path / "logs"
    config = tmp_path / "ingest.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic, "max_offsets_per_trigger": 15},
                "table": {"path": str(table)},
                "ingest": {"trigger": "1 second"},
                "metrics": {"port": 0},
                "spark": {
                    "conf": {"spark.master": "local[1]", "spark.driver.memory": "1g", "spark.ui.enabled": "false"}
                },
            }
        )
    )
    # The table before the deletes is written in this process in one batch (the stream process keeps
    # its fifteen messages a batch, so that it commits many times while the deletes run).
    settings = load_settings(config, assignments=[*TEST_SPARK_CONF, "kafka.max_offsets_per_trigger=10000"])
    send(kafka_bootstrap, topic, [encode(b) for b in before])
    run(settings, once=True)

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
        results = []
        for n, user in enumerate(subjects):
            request = json.dumps({"request_id": f"c{n}", "user_id": user})
            results.append(run_delete(settings, parse_text(request, "r.jsonl")))
        producer.join()

        everything = expected_rows(before + during)
        doomed = {k for k, v in everything.items() if v["user_id"] in subjects}
        wanted = {k: v for k, v in everything.items() if k not in doomed}
        deadline = time.monotonic() + 240
        while True:
            if stream.poll() is not None:
                pytest.fail(f"the stream died ({stream.returncode}):\n{log.read_text()[-3000:]}")
            got = {r["record_key"]: normalize(r) for r in read_live_hudi_rs(str(table)).to_pylist()}
            if set(wanted) <= set(got) or time.monotonic() > deadline:
                break
            time.sleep(2)
    finally:
        stream.send_signal(signal.SIGTERM)
        stream.wait(timeout=120)

    assert sum(r.records_deleted for r in results) == len(doomed) > 0
    assert got == wanted, f"missing {len(set(wanted) - set(got))}, resurrected {len(set(got) & doomed)}"
    # The stream's log shows it kept committing while the deletes ran.
    assert log.read_text().count("records written") >= 3

    # Compaction rewrites base files from base + logs: an erased record must not come back.
    spark.sql(
        f"CALL run_compaction(op => 'scheduleandexecute', path => '{table}', "
        "options => 'hoodie.compact.inline.max.delta.commits=1')"
    ).collect()
    assert any(p.name.endswith(".commit") for p in (table / ".hoodie" / "timeline").iterdir())
    after = {r["record_key"]: normalize(r) for r in read_hudi_rs(str(table)).to_pylist()}
    assert after == wanted
    assert spark.read.format("hudi").load(str(table)).count() == len(wanted)


def test_a_real_write_conflict_is_retried_not_fatal(spark: Any, tmp_path: Path) -> None:
    """Force the overlap: a delete that stalls inside its write while an upsert commits to the same file groups."""
    from conftest import TEST_SPARK_CONF
    from pyspark.sql import functions as F

    from bench.gdpr import subject_id, synthetic_logs
    from loglake import retry, table

    settings = load_settings(overrides={"table.path": str(tmp_path / "logs")}, assignments=TEST_SPARK_CONF)
    path = str(tmp_path / "logs")
    rows = synthetic_logs(spark, 400, subjects=2, days=1).cache()
    rows.write.format("hudi").options(**table.ingest_options(settings)).mode("append").save(path)
    timeline = tmp_path / "logs" / ".hoodie" / "timeline"

    def completed() -> int:
        return sum(1 for p in timeline.iterdir() if p.name.endswith(".deltacommit") and "_" in p.name)

    waits: list[float] = []
    # True for every row, after a 6 s sleep in the JVM (whatever reflect returns for a void method).
    stall = F.length(F.coalesce(F.expr("reflect('java.lang.Thread', 'sleep', cast(6000 as bigint))"), F.lit(""))) >= 0
    doomed = (
        spark.read.format("hudi")
        .load(path)
        .where(F.col("user_id") == subject_id(0))
        .select(table.RECORD_KEY, table.PARTITION_FIELD)
    )
    first_try = doomed.where(stall)  # only the first attempt stalls: the retry re-reads without it
    attempts = iter([first_try, doomed, doomed])
    outcome: dict[str, Any] = {}

    def delete() -> None:
        def write() -> None:
            next(attempts).write.format("hudi").options(**table.delete_options(settings)).mode("append").save(path)

        try:
            retry.on_conflict(write, what="test delete", attempts=3, base_delay=0.5, sleep=waits.append)
        except Exception as exc:
            outcome["error"] = exc

    before = completed()
    worker = threading.Thread(target=delete)
    worker.start()
    time.sleep(3)  # the delete has started its instant and is stalled in its first stage
    rows.where(F.col("user_id") == subject_id(0)).write.format("hudi").options(**table.ingest_options(settings)).mode(
        "append"
    ).save(path)
    worker.join(timeout=120)

    assert "error" not in outcome, outcome.get("error")
    assert len(waits) == 1, "the first delete attempt must have lost a real conflict and been retried"
    assert completed() == before + 2  # the upsert, then the retried delete
    assert spark.read.format("hudi").load(path).where(F.col("user_id") == subject_id(0)).count() == 0
