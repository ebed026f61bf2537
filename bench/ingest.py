"""Ingest benchmark: produce N synthetic messages to a local broker, ingest them, print JSON.

    python -m bench.ingest --messages 100000 [--max-per-trigger 50000] [--set hoodie.x=y ...]

Reported: messages, records, ingest seconds (from stream start to caught up, JVM start excluded),
records/s, per-batch seconds, peak RSS of the driver JVM (local mode: driver and executors in one
JVM) and of the Python driver process, and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from app.produce import produce
from devservers import kafka_broker
from ingest.job import run
from ingest.metrics import IngestMetrics
from loglake.settings import load_settings
from loglake.spark import get_spark


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def machine() -> dict[str, Any]:
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-per-trigger", type=int, default=None, help="kafka.max_offsets_per_trigger")
    parser.add_argument("--encoding", choices=["avro", "json"], default="avro")
    parser.add_argument("--driver-memory", default=None, help="spark.driver.memory (loglake's default if unset)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="loglake-bench-"))
    data = workdir / "kafka"
    bootstrap = kafka_broker.start(port=_free_port(), data_dir=data)
    try:
        topic = "bench"
        kafka_broker.create_topic(bootstrap, topic, partitions=args.partitions)
        produced = produce(
            bootstrap_servers=bootstrap, topic=topic, messages=args.messages, seed=1, encoding=args.encoding
        )
        assignments = [
            "spark.master=local[2]",
            *([f"spark.driver.memory={args.driver_memory}"] if args.driver_memory else []),
            "spark.ui.enabled=false",
            f"ingest.encoding={args.encoding}",
            *args.set,
        ]
        if args.max_per_trigger:
            assignments.append(f"kafka.max_offsets_per_trigger={args.max_per_trigger}")
        settings = load_settings(
            overrides={
                "kafka.bootstrap_servers": bootstrap,
                "kafka.topic": topic,
                "table.path": str(workdir / "tables" / "logs"),
                "metrics.port": 0,
            },
            assignments=assignments,
        )
        t0 = time.monotonic()
        spark = get_spark(settings, app_name="loglake-bench-ingest")
        jvm_start = time.monotonic() - t0
        jvm_pid = int(spark.sparkContext._jvm.ProcessHandle.current().pid())  # type: ignore[union-attr]
        metrics = IngestMetrics()
        result = run(settings, once=True, metrics=metrics)
        batch_hist = metrics.registry.get_sample_value("loglake_ingest_batch_duration_seconds_sum") or 0.0
        out = {
            "benchmark": "ingest",
            "messages": produced.messages,
            "records": produced.records,
            "records_written": result.records_written,
            "encoding": args.encoding,
            "kafka_partitions": args.partitions,
            "batches": result.batches,
            "produce_seconds": round(produced.seconds, 2),
            "session_start_seconds": round(jvm_start, 2),
            "ingest_seconds": result.seconds,
            "batch_seconds_total": round(batch_hist, 2),
            "records_per_second": round(result.records_written / result.seconds),
            "peak_rss_driver_jvm_mib": round(_vm_hwm_kib(jvm_pid) / 1024),
            "peak_rss_python_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "settings": args.set,
            "machine": machine(),
        }
        print(json.dumps(out, indent=2))
    finally:
        kafka_broker.stop(data_dir=data)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
