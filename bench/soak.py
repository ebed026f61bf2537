"""Soak benchmark: the stream for 100+ micro-batches beside the compaction loop and GDPR deletes.

    python -m bench.soak [--batches 120] [--trigger '10 seconds'] [--rate 50] [--deletes 3]

A local broker; a producer thread sending ``--rate`` messages a second for the whole run; the ingest
stream (its own process, as in production) at a short trigger; ``loglake compact --loop`` beside it;
``--deletes`` erasures spread over the run. After every micro-batch one JSON line: batch number,
duration, records, driver JVM RSS, timeline instants, data files in the table. At the end a
summary: growth from the first to the last tenth of the run and least-squares slopes, for batch
duration and RSS (the aim is flat: under 10% growth).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from app.produce import PRODUCER_CONFIG, encode_avro, make_batch
from bench.ingest import _free_port, machine
from devservers import kafka_broker


def _scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def _children(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            out.append(int(status.parent.name))
    return out


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _table_state(path: Path) -> tuple[int, int]:
    """(timeline instants, data files) of the table as they lie on disk."""
    timeline = path / ".hoodie" / "timeline"
    instants = sum(1 for p in timeline.iterdir() if p.is_file()) if timeline.is_dir() else 0
    files = (
        sum(
            1
            for d in path.iterdir()
            if d.is_dir() and not d.name.startswith(".")
            for f in d.iterdir()
            if f.name.endswith(".parquet") or (".log." in f.name and not f.name.endswith(".crc"))
        )
        if path.is_dir()
        else 0
    )
    return instants, files


def _growth(values: list[float]) -> dict[str, float | None]:
    """First tenth vs last tenth (mean), and the least-squares slope per batch."""
    if len(values) < 10:
        return {"first_tenth": None, "last_tenth": None, "growth_pct": None, "slope_per_batch": None}
    tenth = max(1, len(values) // 10)
    first, last = sum(values[:tenth]) / tenth, sum(values[-tenth:]) / tenth
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    slope = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / sum((i - mean_x) ** 2 for i in range(n))
    return {
        "first_tenth": round(first, 3),
        "last_tenth": round(last, 3),
        "growth_pct": round(100 * (last - first) / first, 1) if first else None,
        "slope_per_batch": round(slope, 5),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="loglake-soak-"))
    bootstrap = kafka_broker.start(port=_free_port(), data_dir=work / "kafka")
    table = work / "logs"
    metrics_port = _free_port()
    config = work / "loglake.json"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": bootstrap, "topic": "soak"},
                # Each micro-batch appends to every file group of the day, so a delete conflicts with
                # any batch that commits during its write; at a short trigger it needs more attempts.
                "table": {"path": str(table), "conflict_retries": args.conflict_retries},
                "ingest": {"trigger": args.trigger},
                "metrics": {"port": metrics_port, "host": "127.0.0.1"},
                "compaction": {"loop_interval": args.compaction_interval},
                "spark": {"conf": {"spark.master": "local[2]", "spark.ui.enabled": "false"}},
            }
        )
    )
    kafka_broker.create_topic(bootstrap, "soak", partitions=2)
    stop = threading.Event()
    users: list[str] = []
    sent = [0]

    def produce() -> None:
        from confluent_kafka import Producer

        producer = Producer({**PRODUCER_CONFIG, "bootstrap.servers": bootstrap})
        rng = random.Random(7)
        while not stop.is_set():
            started = time.monotonic()
            for _ in range(args.rate):
                batch = make_batch(rng, int(time.time() * 1000), rng.randint(7, 25))
                users.extend(r["user_id"] for r in batch["records"][:1] if r["user_id"])
                producer.produce("soak", encode_avro(batch))
                sent[0] += 1
            producer.poll(0)
            stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))
        producer.flush(60)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    cli = [sys.executable, "-m", "app.cli"]
    logs = {name: (work / f"{name}.log").open("wb") for name in ("ingest", "compact", "gdpr")}
    stream = subprocess.Popen([*cli, "ingest", "--config", str(config)], stdout=logs["ingest"], stderr=logs["ingest"])
    compact: subprocess.Popen[bytes] | None = None
    rows: list[dict[str, Any]] = []
    deletes = []
    delete_at = {int(args.batches * (i + 1) / (args.deletes + 1)) for i in range(args.deletes)}
    seen = 0
    try:
        deadline = time.monotonic() + args.timeout
        while len(rows) < args.batches and time.monotonic() < deadline:
            if stream.poll() is not None:
                raise RuntimeError(f"the stream stopped: {(work / 'ingest.log').read_text()[-2000:]}")
            try:
                sample = _scrape(metrics_port)
            except OSError:
                time.sleep(0.5)
                continue
            # The duration histogram moves last (the listener, after the batch has committed), so when
            # its count moves every gauge already describes that same batch.
            batches = int(sample.get("loglake_ingest_batch_duration_seconds_count", 0))
            if batches > seen:
                seen = batches
                jvms = _children(stream.pid)
                instants, files = _table_state(table)
                row = {
                    "batch": batches,
                    "seconds": sample.get("loglake_ingest_last_batch_duration_seconds"),
                    "records": int(sample.get("loglake_ingest_batch_records", 0)),
                    "driver_rss_mib": max((_rss_mib(p) for p in jvms), default=0.0),
                    "timeline_instants": instants,
                    "data_files": files,
                    "messages_sent": sent[0],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                if compact is None and batches >= 5:
                    compact = subprocess.Popen(
                        [*cli, "compact", "--config", str(config), "--loop", args.compaction_interval],
                        stdout=logs["compact"],
                        stderr=logs["compact"],
                    )
                if batches in delete_at and users:
                    user = random.Random(batches).choice(users)
                    requests = work / f"requests-{batches}.jsonl"
                    requests.write_text(json.dumps({"request_id": f"soak-{batches}", "user_id": user}))
                    deletes.append(
                        subprocess.Popen(
                            [*cli, "gdpr", "delete", "--config", str(config), "--requests", str(requests)],
                            stdout=logs["gdpr"],
                            stderr=logs["gdpr"],
                        )
                    )
            time.sleep(0.2)
    finally:
        stop.set()
        compaction_alive = compact is not None and compact.poll() is None
        for proc in [stream, compact, *deletes]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [stream, compact, *deletes]:
            if proc is not None:
                try:
                    proc.wait(timeout=180)
                except subprocess.TimeoutExpired:
                    proc.kill()
        kafka_broker.stop(data_dir=work / "kafka")
        for f in logs.values():
            f.close()
    summary = {
        "benchmark": "soak",
        "batches": len(rows),
        "trigger": args.trigger,
        "messages_per_second": args.rate,
        "messages_sent": sent[0],
        "delete_exit_codes": [p.returncode for p in deletes],
        "compaction_loop_alive_at_end": compaction_alive,
        "compaction_rounds": sum(1 for line in (work / "compact.log").read_text().splitlines() if line.startswith("{")),
        "batch_seconds": _growth([float(r["seconds"] or 0) for r in rows]),
        "driver_rss_mib": _growth([float(r["driver_rss_mib"]) for r in rows]),
        "timeline_instants": _growth([float(r["timeline_instants"]) for r in rows]),
        "data_files": _growth([float(r["data_files"]) for r in rows]),
        "work_dir": str(work),
        "machine": machine(),
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=120)
    # A rate this machine sustains beside compaction and deletes (2 cores): a stream that cannot keep
    # up grows its batches by construction, which would hide the growth this run looks for.
    parser.add_argument("--trigger", default="10 seconds")
    parser.add_argument("--rate", type=int, default=50, help="messages per second")
    parser.add_argument("--deletes", type=int, default=3)
    parser.add_argument("--conflict-retries", type=int, default=10, help="table.conflict_retries of every job")
    parser.add_argument("--compaction-interval", default="30 seconds")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--keep", action="store_true")
    # A SIGTERM ends the run through its finally: the stream, compaction, deletes and broker stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
