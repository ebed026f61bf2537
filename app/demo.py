"""``loglake demo``: the whole local path in one command.

Starts a real Kafka broker (its own data folder and port), produces synthetic log batches,
ingests them with ``--once`` into a local Hudi table, prints the table read back, and stops the
broker it started, also when a step fails. With a schema registry, it starts one too and produces
three versions of the schema (a third of the messages each), whose added fields become columns.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devservers import kafka_broker, registry_server
from loglake import jars
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
    schema_registry: str | None = None
    schema_ids: dict[str, int] | None = None


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


def run_demo(
    messages: int, port: int, workdir: Path | None, assignments: list[str], registry_port: int | None = None
) -> DemoResult:
    from app.produce import produce, schema_versions
    from ingest.job import run
    from ingest.summary import summarize

    workdir = workdir or jars.loglake_home() / "demo"
    data = workdir / "kafka"
    # A fresh broker and table each time, so the summary describes exactly this run.
    registry_data = workdir / "registry"
    kafka_broker.stop(data_dir=data)
    registry_server.stop(data_dir=registry_data)
    for folder in (data, registry_data, workdir / "tables"):
        shutil.rmtree(folder, ignore_errors=True)
    topic = "logs"
    bootstrap = kafka_broker.start(port=port, data_dir=data)
    url: str | None = None
    ids: dict[str, int] = {}
    try:
        kafka_broker.create_topic(bootstrap, topic, partitions=4)
        if registry_port is None:
            produced = produce(bootstrap_servers=bootstrap, topic=topic, messages=messages, seed=42)
            n_messages, n_records = produced.messages, produced.records
        else:
            url = registry_server.start(port=registry_port, data_dir=registry_data)
            n_messages = n_records = 0
            for i, (version, schema) in enumerate(schema_versions().items()):
                part = produce(
                    bootstrap_servers=bootstrap,
                    topic=topic,
                    messages=messages // 3 + (1 if i < messages % 3 else 0),
                    seed=42 + i,
                    schema_registry=url,
                    writer_schema=schema,
                )
                ids[version] = part.schema_id or 0
                n_messages, n_records = n_messages + part.messages, n_records + part.records
            assignments = [f"ingest.schema_registry.url={url}", *assignments]
        log.info("produced %d messages, %d records to %s", n_messages, n_records, topic)
        settings = demo_settings(workdir, bootstrap, topic, assignments)
        result = run(settings, once=True)
        table = summarize(settings)
    finally:
        kafka_broker.stop(data_dir=data)
        if registry_port is not None:
            registry_server.stop(data_dir=registry_data)
    return DemoResult(
        bootstrap_servers=bootstrap,
        topic=topic,
        messages_produced=n_messages,
        records_produced=n_records,
        records_written=result.records_written,
        rows_quarantined=result.rows_quarantined,
        ingest_seconds=result.seconds,
        table=table,
        schema_registry=url,
        schema_ids=ids or None,
    )
