"""Compaction benchmark: query a merge-on-read table with many delta commits, compact it, query again.

    python -m bench.compaction [--records 2000000] [--commits 20] [--days 3] [--set hoodie.x=y ...]

The table is written the way the stream writes it: ``--commits`` upserts of new records into the
log table's layout (bucket index, so every commit adds a log file to each touched file group).
Reported: snapshot and read-optimized query times before and after ``loglake compact
--schedule --until-caught-up``, data files and average base file size before and after, base files
under the small-file limit, and compaction throughput, with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.gdpr import synthetic_logs
from bench.ingest import machine
from compaction.job import run_compact
from loglake import storage, table
from loglake.settings import Settings, load_settings
from loglake.spark import get_spark


def _query(spark: SparkSession, path: str, query_type: str) -> tuple[float, int]:
    """A typical log query (errors per service and hour, and distinct users): seconds and rows seen."""
    start = time.monotonic()
    df = spark.read.format("hudi").option("hoodie.datasource.query.type", query_type).load(path)
    rows = df.agg(F.count(F.lit(1)).alias("n"), F.approx_count_distinct("user_id").alias("users")).collect()[0]["n"]
    df.where(F.col("level") == "ERROR").groupBy("service", F.date_trunc("hour", "ts")).count().collect()
    return round(time.monotonic() - start, 2), int(rows)


def _files(spark: SparkSession, path: str) -> dict[str, Any]:
    data = [
        f
        for f in storage.list_files(spark, path)
        if "/.hoodie/" not in f.path and not f.name.endswith(".crc") and not f.name.startswith(".hoodie_partition")
    ]
    base = [f for f in data if f.name.endswith(".parquet")]
    logs = [f for f in data if ".log." in f.name]
    return {"base_files": len(base), "log_files": len(logs), "base_sizes": sorted(f.size for f in base)}


def _latest_base_sizes(spark: SparkSession, path: str) -> list[int]:
    """Sizes of the base files a read-optimized query reads (the latest slice of each file group)."""
    df = spark.read.format("hudi").option("hoodie.datasource.query.type", "read_optimized").load(path)
    names = {r[0] for r in df.select("_hoodie_file_name").distinct().collect()}
    return sorted(f.size for f in storage.list_files(spark, path) if f.name in names)


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="loglake-bench-compaction-"))
    settings: Settings = load_settings(
        overrides={"table.path": str(work / "logs"), "metrics.port": 0},
        assignments=[
            "spark.master=local[2]",
            f"spark.driver.memory={args.driver_memory}",
            "spark.ui.enabled=false",
            "spark.sql.shuffle.partitions=8",
            # The stream would schedule along the way; here the job plans everything in one go.
            "hoodie.compact.schedule.inline=false",
            *args.set,
        ],
    )
    spark = get_spark(settings, app_name="loglake-bench-compaction")
    path = settings.table.require_path()
    try:
        data = synthetic_logs(spark, args.records, subjects=1, days=args.days).withColumn(
            "commit_no", F.pmod(F.xxhash64(table.RECORD_KEY, F.lit(99)), F.lit(args.commits))
        )
        opts = table.ingest_options(settings)
        start = time.monotonic()
        for n in range(args.commits):
            data.where(F.col("commit_no") == n).drop("commit_no").write.format("hudi").options(**opts).mode(
                "append"
            ).save(path)
        build = round(time.monotonic() - start, 2)
        before_files = _files(spark, path)
        snapshot_before, rows_before = _query(spark, path, "snapshot")
        snapshot_before_2, _ = _query(spark, path, "snapshot")  # warm: the first read also warms the JVM
        ro_before, ro_rows_before = _query(spark, path, "read_optimized")

        result = run_compact(settings, schedule=True, until_caught_up=True, spark=spark)
        compact_seconds = sum(
            r.seconds.get("compact", 0) + r.seconds.get("schedule", 0) + r.seconds.get("compact_scheduled", 0)
            for r in result.rounds
        )
        totals = result.totals()

        after_files = _files(spark, path)
        snapshot_after, rows_after = _query(spark, path, "snapshot")
        ro_after, ro_rows_after = _query(spark, path, "read_optimized")
        latest = _latest_base_sizes(spark, path)
        opts_all = table.service_options(settings)
        small_limit = int(opts_all.get("hoodie.parquet.small.file.limit", str(104_857_600)))
        warm_before = min(snapshot_before, snapshot_before_2)
        return {
            "benchmark": "compaction",
            "records": args.records,
            "delta_commits": args.commits,
            "days": args.days,
            "buckets": int(opts_all["hoodie.bucket.index.num.buckets"]),
            "build_seconds": build,
            "before": {
                **{k: v for k, v in before_files.items() if k != "base_sizes"},
                "snapshot_query_seconds": warm_before,
                "snapshot_rows": rows_before,
                "read_optimized_query_seconds": ro_before,
                "read_optimized_rows": ro_rows_before,
                "avg_base_file_bytes": int(sum(before_files["base_sizes"]) / max(1, len(before_files["base_sizes"]))),
            },
            "compaction": {
                "seconds": round(compact_seconds, 2),
                "job_seconds": result.seconds,
                "plans": [i for r in result.rounds for i in r.compacted],
                **totals,
                "records_per_second": round(totals["records_compacted"] / compact_seconds) if compact_seconds else None,
                "caught_up": result.caught_up,
            },
            "after": {
                **{k: v for k, v in after_files.items() if k != "base_sizes"},
                "latest_base_files": len(latest),
                "avg_latest_base_file_bytes": int(sum(latest) / max(1, len(latest))),
                "latest_base_files_under_small_file_limit": sum(1 for s in latest if s < small_limit),
                "small_file_limit_bytes": small_limit,
                "snapshot_query_seconds": snapshot_after,
                "snapshot_rows": rows_after,
                "read_optimized_query_seconds": ro_after,
                "read_optimized_rows": ro_rows_after,
            },
            "snapshot_speedup": round(warm_before / snapshot_after, 1) if snapshot_after else None,
            "settings": args.set,
            "machine": machine(),
        }
    finally:
        spark.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--commits", type=int, default=20, help="delta commits before compaction")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", action="store_true", help="keep the table (printed path) for inspection")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
