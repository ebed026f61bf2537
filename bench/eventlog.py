"""Where a run's time went, from a Spark event log: one line per job, in start order.

    python -m app.cli ingest --once --set spark.eventLog.enabled=true --set spark.eventLog.dir=/tmp/ev
    python -m bench.eventlog /tmp/ev/local-*  [--min-seconds 0.5]

Per job: start (seconds after the first job), wall seconds, tasks, task run time and GC time summed
over its tasks (on 2 cores, run time is up to twice the wall time), and where Spark says it was called
from (Hudi's own jobs name their Java call site). Prints JSON lines, then a total.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def jobs(path: Path) -> list[dict[str, Any]]:
    started: dict[int, dict[str, Any]] = {}
    stages: dict[int, dict[str, float]] = {}
    with path.open() as events:
        for line in events:
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerJobStart":
                infos = event["Stage Infos"]
                started[event["Job ID"]] = {
                    "start_ms": event["Submission Time"],
                    "called_at": infos[0]["Stage Name"] if infos else "",
                    "stages": [s["Stage ID"] for s in infos],
                }
            elif kind == "SparkListenerJobEnd":
                started[event["Job ID"]]["end_ms"] = event["Completion Time"]
            elif kind == "SparkListenerTaskEnd":
                metrics = event.get("Task Metrics") or {}
                stage = stages.setdefault(event["Stage ID"], {"tasks": 0, "run": 0.0, "gc": 0.0})
                stage["tasks"] += 1
                stage["run"] += metrics.get("Executor Run Time", 0) / 1000
                stage["gc"] += metrics.get("JVM GC Time", 0) / 1000
    if not started:
        return []
    t0 = min(j["start_ms"] for j in started.values())
    out = []
    for job_id, job in sorted(started.items()):
        of = [stages.get(s, {"tasks": 0, "run": 0.0, "gc": 0.0}) for s in job["stages"]]
        out.append(
            {
                "job": job_id,
                "start_s": round((job["start_ms"] - t0) / 1000, 1),
                "wall_s": round((job.get("end_ms", job["start_ms"]) - job["start_ms"]) / 1000, 1),
                "tasks": int(sum(s["tasks"] for s in of)),
                "run_s": round(sum(s["run"] for s in of), 1),
                "gc_s": round(sum(s["gc"] for s in of), 1),
                "called_at": job["called_at"][:80],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--min-seconds", type=float, default=0.5, help="leave out jobs shorter than this")
    args = parser.parse_args()
    found = jobs(args.log)
    for job in found:
        if job["wall_s"] >= args.min_seconds:
            print(json.dumps(job))
    print(
        json.dumps(
            {
                "jobs": len(found),
                "wall_s_in_jobs": round(sum(j["wall_s"] for j in found), 1),
                "run_s": round(sum(j["run_s"] for j in found), 1),
                "gc_s": round(sum(j["gc_s"] for j in found), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
