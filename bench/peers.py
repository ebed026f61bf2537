"""Peers benchmark: loglake against the plain Spark + Hudi job and the no-table-format floor, one topic.

    python -m bench.peers [--messages 100000] [--rounds 4] [--only loglake,plain_layout]

One topic of ``--messages`` synthetic LogBatch messages (7-25 records each) on a local broker is read
by each contender in a fresh process, whole-process wall time (JVM start included), defaults as a
user gets them:

- ``loglake``: ``loglake ingest --once`` with its default settings;
- ``plain_hudi``: the plain job from Hudi's docs (``bench.plain_job``) with Hudi's defaults;
- ``plain_layout``: the same plain job with loglake's table layout (``LOG_TABLE_LAYOUT``);
- ``floor``: Kafka -> fastavro -> zstd Parquet, no table format (``bench.floor_job``).

Rounds are interleaved (the order rotates each round) so that a slow hour on a shared machine hits
every contender alike. Every table is read back (hudi-rs for Hudi tables, pyarrow for the floor) and
must hold every produced record exactly once. Prints JSON: per contender the runs, the median wall
seconds, records/s, the largest peak RSS of any one process of its tree (the JVM for the Spark jobs),
and the time ratio against loglake.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.produce import produce
from bench.ingest import _free_port, _vm_hwm_kib, machine
from bench.soak import _children
from devservers import kafka_broker

CONTENDERS = ("loglake", "plain_hudi", "plain_layout", "floor")


def tree_peak_mib(root: int, stop: threading.Event, peak: list[float], interval: float = 0.5) -> None:
    """Largest VmHWM over the process and its descendants (the JVM is a child of the Python driver)."""
    while not stop.is_set():
        seen, todo = set(), [root]
        while todo:
            pid = todo.pop()
            seen.add(pid)
            todo.extend(c for c in _children(pid) if c not in seen)
        for pid in seen:
            with contextlib.suppress(OSError):  # the process ended while we looked
                peak[0] = max(peak[0], _vm_hwm_kib(pid) / 1024)
        stop.wait(interval)


def _command(name: str, bootstrap: str, topic: str, out: Path) -> list[str]:
    py = [sys.executable, "-m"]
    if name == "loglake":
        config = out.with_suffix(".json")
        config.write_text(
            json.dumps(
                {
                    "kafka": {"bootstrap_servers": bootstrap, "topic": topic},
                    "table": {"path": str(out)},
                    "metrics": {"port": 0},  # several runs on one machine; the endpoint is not what is measured
                }
            )
        )
        return [*py, "app.cli", "ingest", "--once", "--config", str(config)]
    if name.startswith("plain_"):
        layout = "hudi" if name == "plain_hudi" else "loglake"
        return [
            *py,
            "bench.plain_job",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--table",
            str(out),
            "--layout",
            layout,
        ]
    return [*py, "bench.floor_job", "--bootstrap", bootstrap, "--topic", topic, "--out", str(out)]


def _read_back(name: str, out: Path) -> tuple[int, int]:
    """(rows, distinct record keys) of what a contender wrote."""
    import pyarrow.compute as pc

    if name == "floor":
        import pyarrow.dataset as ds

        keys = ds.dataset(str(out), format="parquet").to_table(columns=["record_key"]).column("record_key")
    else:
        import pyarrow as pa
        from hudi import HudiTableBuilder

        batches = HudiTableBuilder.from_base_uri(str(out)).build().read()
        keys = pa.Table.from_batches(batches).column("_hoodie_record_key")
    return len(keys), len(pc.unique(keys))


def _run(name: str, bootstrap: str, topic: str, work: Path, round_no: int) -> dict[str, Any]:
    out = work / f"{name}-{round_no}"
    log = (work / f"{name}-{round_no}.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(_command(name, bootstrap, topic, out), stdout=log, stderr=log)
    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=tree_peak_mib, args=(proc.pid, stop, peak), daemon=True)
    sampler.start()
    proc.wait()
    seconds = time.monotonic() - started
    stop.set()
    sampler.join()
    log.close()
    if proc.returncode:
        tail = (work / f"{name}-{round_no}.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{name} exited {proc.returncode}: {tail}")
    rows, keys = _read_back(name, out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(f"{out}_checkpoint", ignore_errors=True)
    shutil.rmtree(f"{out}_checkpoints", ignore_errors=True)
    shutil.rmtree(f"{out}_quarantine", ignore_errors=True)
    return {"round": round_no, "seconds": round(seconds, 1), "rows": rows, "keys": keys, "peak_rss_mib": round(peak[0])}


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="loglake-peers-"))
    bootstrap = kafka_broker.start(port=_free_port(), data_dir=work / "kafka")
    contenders = [c for c in CONTENDERS if c in args.only.split(",")] if args.only else list(CONTENDERS)
    try:
        kafka_broker.create_topic(bootstrap, "peers", partitions=args.partitions)
        produced = produce(bootstrap_servers=bootstrap, topic="peers", messages=args.messages, seed=1)
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
        for r in range(args.rounds):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            for name in order:
                result = _run(name, bootstrap, "peers", work, r)
                if result["rows"] != produced.records or result["keys"] != produced.records:
                    raise RuntimeError(
                        f"{name} wrote {result['rows']} rows, {result['keys']} keys of {produced.records}"
                    )
                runs[name].append(result)
                log(json.dumps({"contender": name, **result}))
    finally:
        kafka_broker.stop(data_dir=work / "kafka")
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {}
    for name, results in runs.items():
        median = statistics.median(r["seconds"] for r in results)
        summary[name] = {
            "median_seconds": median,
            "records_per_second": round(produced.records / median),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in results),
            "runs": [r["seconds"] for r in results],
        }
    if "loglake" in summary:
        base = summary["loglake"]["median_seconds"]
        for values in summary.values():
            values["time_vs_loglake"] = round(values["median_seconds"] / base, 2)
    if "plain_layout" in summary and "loglake" in summary:
        # The goal: loglake at least as fast as the plain job with the same layout (>= 1.0).
        summary["loglake_speedup_over_plain_layout"] = round(
            summary["plain_layout"]["median_seconds"] / summary["loglake"]["median_seconds"], 2
        )
    return {
        "benchmark": "peers",
        "messages": produced.messages,
        "records": produced.records,
        "kafka_partitions": args.partitions,
        "rounds": args.rounds,
        "contenders": summary,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--only", default="", help="comma-separated subset of " + ",".join(CONTENDERS))
    args = parser.parse_args()
    print(json.dumps(run(args, lambda line: print(line, file=sys.stderr, flush=True)), indent=2))


if __name__ == "__main__":
    main()
