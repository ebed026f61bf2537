"""Schema-registry benchmark: the registry path against the fixed-schema path, in one run, as JSON.

    python -m bench.registry --messages 100000 [--rounds 2]

Two topics of the same synthetic load: one of plain binary-Avro LogBatch messages (the fixed-schema
path), one of Confluent-framed messages in three schema versions through a real local registry (a
third each: v1, v2 adding a record field, v3 adding a batch field and dropping one), each decoded
with its writer schema by id into the evolved table. Each is ingested with ``--once`` into a fresh
table, in one JVM, after one unmeasured warm-up run, rounds alternating which goes first.
Reported per path: records/s of every round and the median, and the registry path's ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from app.produce import produce, schema_versions
from bench.ingest import _free_port, machine
from devservers import kafka_broker, registry_server
from ingest.job import run
from loglake.settings import load_settings
from loglake.spark import get_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages per path")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--warmup", action=argparse.BooleanOptionalAction, default=True, help="one unmeasured run first"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="loglake-bench-registry-"))
    kafka_data, registry_data = workdir / "kafka", workdir / "registry"
    bootstrap = kafka_broker.start(port=_free_port(), data_dir=kafka_data)
    url = registry_server.start(port=_free_port(), data_dir=registry_data)
    try:
        produced: dict[str, Any] = {}
        kafka_broker.create_topic(bootstrap, "fixed", partitions=args.partitions)
        kafka_broker.create_topic(bootstrap, "registry", partitions=args.partitions)
        fixed = produce(bootstrap_servers=bootstrap, topic="fixed", messages=args.messages, seed=1)
        produced["fixed"] = {"messages": fixed.messages, "records": fixed.records}
        versions: dict[str, Any] = {}
        for i, (name, schema) in enumerate(schema_versions().items()):
            part = produce(
                bootstrap_servers=bootstrap,
                topic="registry",
                messages=args.messages // 3 + (1 if i < args.messages % 3 else 0),
                seed=1 + i,
                schema_registry=url,
                writer_schema=schema,
            )
            versions[name] = {"schema_id": part.schema_id, "messages": part.messages, "records": part.records}
        produced["registry"] = {
            "messages": sum(v["messages"] for v in versions.values()),
            "records": sum(v["records"] for v in versions.values()),
            "versions": versions,
        }

        def settings(path: str, run_no: int) -> Any:
            extra = [f"ingest.schema_registry.url={url}"] if path == "registry" else []
            return load_settings(
                overrides={
                    "kafka.bootstrap_servers": bootstrap,
                    "kafka.topic": path,
                    "table.path": str(workdir / "tables" / f"{path}-{run_no}"),
                    "metrics.port": 0,
                },
                assignments=["spark.master=local[2]", "spark.ui.enabled=false", *extra, *args.set],
            )

        get_spark(settings("fixed", 0), app_name="loglake-bench-registry")
        if args.warmup:
            # The JVM's first run is its slowest (JIT, class loading); measured, it would favour the second path.
            run(settings("fixed", -1), once=True)
            shutil.rmtree(workdir / "tables", ignore_errors=True)
        rounds: dict[str, list[dict[str, Any]]] = {"fixed": [], "registry": []}
        for n in range(args.rounds):
            order = ("fixed", "registry") if n % 2 == 0 else ("registry", "fixed")
            for path in order:
                result = run(settings(path, n), once=True)
                if result.rows_quarantined or result.records_written != produced[path]["records"]:
                    raise SystemExit(f"{path} round {n}: wrote {result.records_written} of {produced[path]['records']}")
                rounds[path].append(
                    {
                        "round": n,
                        "seconds": result.seconds,
                        "records_per_second": round(result.records_written / result.seconds),
                    }
                )
                shutil.rmtree(workdir / "tables" / f"{path}-{n}", ignore_errors=True)
        medians = {p: statistics.median(r["records_per_second"] for r in runs) for p, runs in rounds.items()}
        print(
            json.dumps(
                {
                    "benchmark": "registry",
                    "produced": produced,
                    "rounds": rounds,
                    "median_records_per_second": medians,
                    "registry_vs_fixed": round(medians["registry"] / medians["fixed"], 3),
                    "settings": args.set,
                    "machine": machine(),
                },
                indent=2,
            )
        )
    finally:
        registry_server.stop(data_dir=registry_data)
        kafka_broker.stop(data_dir=kafka_data)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
