"""``loglake demo``: the whole local path in one command.

Starts a real Kafka broker (its own data folder and port), produces synthetic log batches,
ingests them with ``--once`` into a local Hudi table, prints the table read back, and stops the
broker it started, also when a step fails.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loglake import jars, kafka_broker
from loglake.settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced, ingested and read back."""

    bootstrap_servers: str
    topic: str
    messages_produced: int
    records_produced: int
    records_written: int
    rows_quarantined: int
    ingest_seconds: float
    table: dict[str, Any]


def demo_settings(workdir: Path, bootstrap: str, topic: str, assignments: list[str]) -> Settings:
    return load_settings(
        overrides={
            "kafka.bootstrap_servers": bootstrap,
            "kafka.topic": topic,
            "table.path": str(workdir / "tables" / "logs"),
            "metrics.port": 0,
        },
        assignments=["spark.master=local[2]", "spark.driver.memory=2g", "spark.sql.shuffle.partitions=4", *assignments],
    )


def run_demo(messages: int, port: int, workdir: Path | None, assignments: list[str]) -> DemoResult:
    from ingest.job import run
    from ingest.produce import produce
    from ingest.summary import summarize

    workdir = workdir or jars.loglake_home() / "demo"
    data = workdir / "kafka"
    # A fresh broker and table each time, so the summary describes exactly this run.
    kafka_broker.stop(data_dir=data)
    for folder in (data, workdir / "tables"):
        shutil.rmtree(folder, ignore_errors=True)
    topic = "logs"
    bootstrap = kafka_broker.start(port=port, data_dir=data)
    try:
        kafka_broker.create_topic(bootstrap, topic, partitions=4)
        produced = produce(bootstrap_servers=bootstrap, topic=topic, messages=messages, seed=42)
        log.info("produced %d messages, %d records to %s", produced.messages, produced.records, topic)
        settings = demo_settings(workdir, bootstrap, topic, assignments)
        result = run(settings, once=True)
        table = summarize(settings)
    finally:
        kafka_broker.stop(data_dir=data)
    return DemoResult(
        bootstrap_servers=bootstrap,
        topic=topic,
        messages_produced=produced.messages,
        records_produced=produced.records,
        records_written=result.records_written,
        rows_quarantined=result.rows_quarantined,
        ingest_seconds=result.seconds,
        table=table,
    )
