"""Fat-message benchmark: what the largest messages the limits allow cost, at Spark's default driver size.

    python -m bench.fat_message [--copies 20]

Cases: a typical 25-record message (the baseline: JVM start and one commit); the widest message the
default limits allow (10,000 records filling 1 MiB) alone and ``--copies`` of them in one batch; one
800 KB message of 100,000 minimal records with the record limit raised to let it in, and at the
default limit (quarantined whole).

Each case goes to its own topic of a local broker and is ingested by ``loglake ingest --once`` in a
fresh process (a new JVM, Spark's default 1 GiB driver, ``local[2]``), as a stream restarting onto
such a message would. Reported per case: messages, bytes per message, records written, wall seconds
of the whole CLI run (JVM start included), and the driver JVM's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from app.produce import PRODUCER_CONFIG, encode_avro, make_batch
from bench.ingest import _free_port, machine
from bench.peers import tree_peak_mib
from devservers import kafka_broker

NOW_MS = 1_795_000_000_000


def minimal_batch(n: int) -> dict[str, Any]:
    """n of the smallest valid records (8 bytes each: ts 1 ms after the epoch): the most rows per byte."""
    batch = make_batch(random.Random(1), NOW_MS, 0)
    record = {
        "ts": 1,
        "level": "",
        "user_id": None,
        "email": None,
        "client_ip": None,
        "event": "",
        "message": "",
        "attributes": {},
    }
    batch["records"] = [dict(record) for _ in range(n)]
    return batch


def filled_batch(n: int, size: int, seed: int = 2) -> dict[str, Any]:
    """n records whose messages fill the batch to just under ``size`` bytes: the most bytes per row."""
    batch = make_batch(random.Random(seed), NOW_MS, n)
    for record in batch["records"]:
        record["message"], record["attributes"] = "", {}
    room = (size - len(encode_avro(batch))) // n
    for i, record in enumerate(batch["records"]):
        record["message"] = f"{i:06d}".ljust(room - 2, "x")
    return batch


def _case(work: Path, bootstrap: str, name: str, payloads: list[bytes], **ingest: Any) -> dict[str, Any]:
    from confluent_kafka import Producer

    kafka_broker.create_topic(bootstrap, name, partitions=1)
    producer = Producer({**PRODUCER_CONFIG, "bootstrap.servers": bootstrap, "message.max.bytes": 1_048_588})
    for payload in payloads:
        producer.produce(name, payload)
        producer.poll(0)
    producer.flush(60)
    config = work / f"{name}.json"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": bootstrap, "topic": name},
                "table": {"path": str(work / name)},
                "ingest": ingest,
                "metrics": {"port": 0},
                "spark": {"conf": {"spark.master": "local[2]", "spark.ui.enabled": "false"}},
            }
        )
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "ingest", "--once", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=(work / f"{name}.log").open("wb"),
    )
    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=tree_peak_mib, args=(proc.pid, stop, peak, 0.2), daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    stop.set()
    sampler.join()
    seconds = time.monotonic() - started
    try:
        report = json.loads(out) if proc.returncode == 0 else {}
    except json.JSONDecodeError:
        report = {"stdout": out.decode(errors="replace")[-500:]}
    return {
        "case": name,
        "messages": len(payloads),
        "bytes_per_message": max(len(p) for p in payloads),
        "exit_code": proc.returncode,
        "records_written": report.get("records_written"),
        "rows_quarantined": report.get("rows_quarantined"),
        "seconds": round(seconds, 1),
        "driver_peak_rss_mib": round(peak[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="messages in the many-fat-messages case")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="loglake-fat-"))
    bootstrap = kafka_broker.start(port=_free_port(), data_dir=work / "kafka")
    try:
        typical = encode_avro(make_batch(random.Random(3), NOW_MS, 25))
        # Distinct batch ids: identical copies would land on the same record keys and count once.
        widest = [encode_avro(filled_batch(10_000, 1_040_000, seed)) for seed in range(args.copies)]
        most = encode_avro(minimal_batch(100_000))
        results = [
            _case(work, bootstrap, "typical_25_records", [typical]),
            _case(work, bootstrap, "limit_10k_records_1mib", widest[:1]),
            _case(work, bootstrap, "limit_10k_records_1mib_many", widest),
            _case(work, bootstrap, "minimal_100k_records_limit_raised", [most], max_records_per_message=100_000),
            _case(work, bootstrap, "minimal_100k_records_default_limit", [most]),
        ]
    finally:
        kafka_broker.stop(data_dir=work / "kafka")
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"benchmark": "fat_message", "results": results, "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
