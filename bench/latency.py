"""Latency benchmark: from a message's Kafka timestamp to the commit that makes its records queryable.

    python -m bench.latency [--rate 200] [--trigger '30 seconds'] [--triggers 8]

A local broker; a producer sending ``--rate`` messages a second for ``--triggers`` trigger intervals;
``loglake ingest`` in its own process (as in production) with its default settings apart from the
trigger. When every sent message is in the table, the table is read back with hudi-rs (not Spark):
each message's records carry the instant of the commit that wrote them, and the timeline gives that
commit's completion time. Latency = completion time - the message's Kafka timestamp (CreateTime, set
when it was produced). Prints JSON: p50/p90/p99/max over all messages and over those produced after
the first commit (the first batch also pays the JVM's start and warm-up).

Expected shape: up to one trigger of waiting plus the batch's own duration, so p50 ~ trigger/2 + batch
and p99 ~ trigger + batch. The production default (5 minutes) scales the waiting part accordingly.
"""

from __future__ import annotations

import argparse
import calendar
import json
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from app.produce import PRODUCER_CONFIG, encode_avro, make_batch
from bench.ingest import _free_port, machine
from devservers import kafka_broker


def _instant_seconds(instant: str, local: bool) -> float:
    """Epoch seconds of a Hudi instant (yyyyMMddHHmmssSSS, in the table's timeline zone)."""
    parts = time.strptime(instant[:14], "%Y%m%d%H%M%S")
    whole = time.mktime(parts) if local else calendar.timegm(parts)
    return whole + int(instant[14:17] or 0) / 1000


def completion_times(table: Path) -> dict[str, float]:
    """Requested instant -> completion epoch seconds of every completed commit on the timeline."""
    props = (table / ".hoodie" / "hoodie.properties").read_text()
    local = "hoodie.table.timeline.timezone=UTC" not in props
    done: dict[str, float] = {}
    for f in (table / ".hoodie" / "timeline").glob("*_*.*commit"):
        requested, completed = f.name.split(".")[0].split("_")
        done[requested] = _instant_seconds(completed, local)
    return done


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"messages": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "messages": len(ordered),
        "p50_seconds": at(0.50),
        "p90_seconds": at(0.90),
        "p99_seconds": at(0.99),
        "max_seconds": round(ordered[-1], 2),
        "mean_seconds": round(statistics.fmean(ordered), 2),
    }


def _read_back(table: Path) -> dict[str, str]:
    """batch_id -> the commit instant that wrote its records, read with hudi-rs."""
    import pyarrow as pa
    from hudi import HudiTableBuilder

    batches = HudiTableBuilder.from_base_uri(str(table)).build().read()
    rows = pa.Table.from_batches(batches).select(["batch_id", "_hoodie_commit_time"]).to_pylist()
    return {r["batch_id"]: r["_hoodie_commit_time"] for r in rows}


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="loglake-latency-"))
    bootstrap = kafka_broker.start(port=_free_port(), data_dir=work / "kafka")
    table = work / "logs"
    config = work / "loglake.json"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": bootstrap, "topic": "latency"},
                "table": {"path": str(table)},
                "ingest": {"trigger": args.trigger},
                "metrics": {"port": 0},
            }
        )
    )
    kafka_broker.create_topic(bootstrap, "latency", partitions=args.partitions)
    trigger_seconds = float(args.trigger.split()[0])
    sent: dict[str, float] = {}  # batch_id -> Kafka timestamp (s)
    lock = threading.Lock()
    stop = threading.Event()

    def produce() -> None:
        from confluent_kafka import Producer

        # Every delivery reports back here: its Kafka timestamp is where the latency starts.
        producer = Producer({**PRODUCER_CONFIG, "delivery.report.only.error": False, "bootstrap.servers": bootstrap})
        rng = random.Random(11)

        def delivered(err: Any, msg: Any, batch_id: str) -> None:
            if err is None:
                with lock:
                    sent[batch_id] = msg.timestamp()[1] / 1000

        end = time.monotonic() + args.triggers * trigger_seconds
        while not stop.is_set() and time.monotonic() < end:
            started = time.monotonic()
            for _ in range(args.rate):
                batch = make_batch(rng, int(time.time() * 1000), rng.randint(7, 25))
                producer.produce(
                    "latency",
                    encode_avro(batch),
                    on_delivery=lambda err, msg, b=batch["batch_id"]: delivered(err, msg, b),
                )
            producer.poll(0)
            stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))
        producer.flush(60)

    log = (work / "ingest.log").open("wb")
    stream = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "ingest", "--config", str(config)], stdout=log, stderr=log
    )
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    written: dict[str, str] = {}
    try:
        producer.join()
        if not sent:
            raise RuntimeError("no message was delivered to Kafka")
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if stream.poll() is not None:
                raise RuntimeError(f"the stream stopped: {(work / 'ingest.log').read_text()[-2000:]}")
            time.sleep(trigger_seconds / 2)
            if (table / ".hoodie" / "timeline").exists():
                written = _read_back(table)
                if set(sent) <= set(written):
                    break
        else:
            raise RuntimeError(f"{len(set(sent) - set(written))} of {len(sent)} messages not in the table in time")
    finally:
        stop.set()
        if stream.poll() is None:
            stream.send_signal(signal.SIGTERM)
            try:
                stream.wait(timeout=180)
            except subprocess.TimeoutExpired:
                stream.kill()
        kafka_broker.stop(data_dir=work / "kafka")
        log.close()
    done = completion_times(table)
    latencies = {b: done[written[b]] - t for b, t in sent.items()}
    first_commit = min(done.values())
    steady = [v for b, v in latencies.items() if sent[b] > first_commit]
    shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "latency",
        "trigger": args.trigger,
        "messages_per_second": args.rate,
        "kafka_partitions": args.partitions,
        "commits": len(set(written.values())),
        "all": _percentiles(list(latencies.values())),
        "after_first_commit": _percentiles(steady),
        "settings": "loglake defaults, ingest.trigger as above",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200, help="messages per second")
    parser.add_argument("--trigger", default="30 seconds", help="ingest.trigger")
    parser.add_argument("--triggers", type=int, default=8, help="how many trigger intervals to produce for")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the stream to catch up")
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
