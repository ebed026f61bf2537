"""Catalog-sync benchmark: ingest with the sync on against off, in one run, as JSON.

    python -m bench.catalog --messages 60000 [--days 30] [--batches 12] [--rounds 2]

One topic of synthetic LogBatch messages whose records fall on ``--days`` UTC days, oldest first
(a 30-day table: 30 partitions, each micro-batch adding a few), ingested with ``--once`` in
``--batches`` micro-batches into a fresh table, once with the catalog sync after every micro-batch
into a real Hive Metastore (Hive 3.1.3 standalone, Derby) and once without, in one JVM, after an
unmeasured warm-up run, rounds alternating which goes first. Reported: records/s of both and their
ratio, the syncs' mean wall time per micro-batch, and a full repair (``loglake catalog sync``) of the
last 30-day table with the partition count the metastore lists after it.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from app.produce import encode_avro, make_batch
from bench.ingest import _free_port, machine
from devservers import kafka_broker, metastore_server
from ingest.job import run
from ingest.metrics import IngestMetrics
from loglake import catalog
from loglake.settings import load_settings
from loglake.spark import get_spark

DAY_MS = 86_400_000


def _produce(bootstrap: str, topic: str, messages: int, days: int) -> int:
    """``messages`` LogBatch messages over ``days`` days back from now, oldest day first, as a stream
    that ran for those days would have sent them (each micro-batch then adds a few days); the record count."""
    rng = random.Random(7)
    now = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "zstd"})
    records = 0
    for i in range(messages):
        batch = make_batch(rng, now - (days - 1 - i * days // messages) * DAY_MS, rng.randint(7, 25))
        records += len(batch["records"])
        producer.produce(topic, encode_avro(batch))
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(60) != 0:
        raise SystemExit("the broker did not acknowledge every message")
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--days", type=int, default=30, help="UTC days (partitions) the records fall on")
    parser.add_argument("--batches", type=int, default=12, help="micro-batches per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="loglake-bench-catalog-"))
    kafka_data, metastore_data = workdir / "kafka", workdir / "metastore"
    bootstrap = kafka_broker.start(port=_free_port(), data_dir=kafka_data)
    metastore = metastore_server.start(port=_free_port(), data_dir=metastore_data)
    try:
        kafka_broker.create_topic(bootstrap, "logs", partitions=args.partitions)
        records = _produce(bootstrap, "logs", args.messages, args.days)
        per_batch = -(-args.messages // args.batches)

        def settings(sync: bool, run_no: int) -> Any:
            extra = [f"catalog.metastore_uris={metastore}", f"catalog.database=bench_{uuid.uuid4().hex[:8]}"]
            return load_settings(
                overrides={
                    "kafka.bootstrap_servers": bootstrap,
                    "kafka.topic": "logs",
                    "table.path": str(workdir / "tables" / f"{'on' if sync else 'off'}-{run_no}"),
                    "metrics.port": 0,
                },
                assignments=[
                    "spark.master=local[2]",
                    "spark.ui.enabled=false",
                    f"kafka.max_offsets_per_trigger={per_batch}",
                    *(extra if sync else []),
                    *args.set,
                ],
            )

        spark = get_spark(settings(False, 0), app_name="loglake-bench-catalog")
        # The JVM's first run is its slowest (JIT, class loading); measured, it would favour the second.
        run(settings(True, -1), once=True)
        rounds: dict[str, list[dict[str, Any]]] = {"sync_on": [], "sync_off": []}
        syncs: list[float] = []
        last_on: Any = None
        for n in range(args.rounds):
            for sync in (True, False) if n % 2 == 0 else (False, True):
                metrics = IngestMetrics()
                s = settings(sync, n)
                result = run(s, once=True, metrics=metrics)
                if result.rows_quarantined or result.records_written != records:
                    raise SystemExit(f"round {n}: wrote {result.records_written} of {records}")
                entry = {
                    "round": n,
                    "batches": result.batches,
                    "seconds": result.seconds,
                    "records_per_second": round(result.records_written / result.seconds),
                }
                if sync:
                    total = metrics.registry.get_sample_value(
                        "loglake_ingest_catalog_sync_duration_seconds_sum", {"table": "log"}
                    )
                    count = metrics.registry.get_sample_value(
                        "loglake_ingest_catalog_sync_duration_seconds_count", {"table": "log"}
                    )
                    entry["syncs"] = int(count or 0)
                    entry["sync_seconds_total"] = round(total or 0, 3)
                    syncs.append((total or 0) / max(count or 1, 1))
                    last_on = s
                rounds["sync_on" if sync else "sync_off"].append(entry)
        medians = {k: statistics.median(r["records_per_second"] for r in v) for k, v in rounds.items()}
        repair = catalog.sync(spark, last_on, "log", full=True, count=True)
        incremental = catalog.sync(spark, last_on, "log")
        print(
            json.dumps(
                {
                    "benchmark": "catalog",
                    "messages": args.messages,
                    "records": records,
                    "days": args.days,
                    "rounds": rounds,
                    "median_records_per_second": medians,
                    "sync_on_vs_off": round(medians["sync_on"] / medians["sync_off"], 3),
                    "mean_sync_seconds_per_batch": round(statistics.mean(syncs), 3),
                    "full_repair": {"seconds": repair.seconds, "catalog_partitions": repair.partitions},
                    "incremental_sync_with_nothing_new_seconds": incremental.seconds,
                    "settings": args.set,
                    "machine": machine(),
                },
                indent=2,
            )
        )
    finally:
        metastore_server.stop(data_dir=metastore_data)
        kafka_broker.stop(data_dir=kafka_data)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
