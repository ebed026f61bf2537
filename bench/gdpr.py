"""GDPR benchmark: erase ~1,000 records of ~100 subjects from a 10-million-record table, and the naive way.

    python -m bench.gdpr [--records 10000000] [--subjects 100] [--days 30] [--set hoodie.x=y ...]

The table is built in the JVM (Spark SQL from ``range``) with bulk_insert into the log table's
layout, then made merge-on-read-realistic with one upsert round of log files. Reported: build time,
resolve time (column-pruned lookup, as the job does, and a full-row lookup for comparison), delete
time, purge time (compaction of the affected partitions + clean + raw verification), file groups
touched vs total for 1, 10 and all subjects, and the naive erasure (read everything, filter,
overwrite) on the same table, with the machine it ran on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.ingest import machine
from gdpr import resolve
from gdpr.job import _file_groups, run_delete
from gdpr.requests import parse_text
from loglake import table
from loglake.settings import Settings, load_settings
from loglake.spark import get_spark

RECORDS_PER_SUBJECT = 10
START_DAY = "2026-10-01"


def synthetic_logs(spark: SparkSession, records: int, subjects: int, days: int) -> DataFrame:
    """``records`` log rows over ``days`` days; subject number N (:func:`subject_id`) has 10 records, on one day.

    Every user id, a subject's or not, is 16 hex digits of a hash: subjects sort among everyone
    else, so Parquet statistics cannot single them out (an earlier ``gdpr-subject-NNN`` prefix let
    min/max pruning skip most files, which real ids would not), and ids are long enough not to occur
    by chance inside other strings, which the verifier's substring search needs.
    """
    i = F.col("id")
    n_subject_rows = subjects * RECORDS_PER_SUBJECT
    subject_no = (i / RECORDS_PER_SUBJECT).cast("long")
    is_subject = i < n_subject_rows
    day = F.when(is_subject, subject_no % days).otherwise(F.pmod(F.xxhash64(i, F.lit(1)), F.lit(days)))
    user = F.when(is_subject, _hex_id(F.lit("subject-"), subject_no)).otherwise(
        _hex_id(F.lit("user-"), F.pmod(F.xxhash64(i, F.lit(2)), F.lit(500_000)))
    )
    millis = (
        F.unix_millis(F.to_timestamp(F.lit(START_DAY)))
        + day * 86_400_000
        + F.pmod(F.xxhash64(i, F.lit(3)), F.lit(86_400_000))
    )
    ts = F.timestamp_millis(millis)
    service = F.concat(F.lit("svc-"), (i % 7).cast("string"))
    batch = F.concat(F.lit("b-"), (i / 16).cast("long").cast("string"))
    octet = lambda salt: F.pmod(F.xxhash64(i, F.lit(salt)), F.lit(250)).cast("string")  # noqa: E731
    return spark.range(records).select(
        table.record_key(service, batch, (i % 16).cast("int")).alias(table.RECORD_KEY),
        ts.alias("ts"),
        F.element_at(
            F.array(*[F.lit(x) for x in ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")]), (i % 6 + 1).cast("int")
        ).alias("level"),
        user.alias("user_id"),
        F.concat(user, F.lit("@mail.example")).alias("email"),
        F.concat_ws(".", octet(4), octet(5), octet(6), octet(7)).alias("client_ip"),
        F.concat(F.lit("event."), (i % 23).cast("string")).alias("event"),
        F.concat(
            F.lit("request handled in "), (i % 997).cast("string"), F.lit(" ms by worker "), (i % 31).cast("string")
        ).alias("message"),
        F.create_map(F.lit("trace_id"), F.hex(F.xxhash64(i, F.lit(8)))).alias("attributes"),
        batch.alias("batch_id"),
        service.alias("service"),
        F.concat(F.lit("host-"), (i % 50).cast("string")).alias("host"),
        F.lit("eu-west-1").alias("region"),
        ts.alias("sent_at"),
        (i % 16).cast("int").alias("record_index"),
        F.lit("logs").alias("kafka_topic"),
        (i % 8).cast("int").alias("kafka_partition"),
        (i / 16).cast("long").alias("kafka_offset"),
        F.current_timestamp().alias("ingested_at"),
        table.utc_date(millis).alias(table.PARTITION_FIELD),
    )


# Look-alikes of every subject's user id, each on its own bystander's records: extended, cut, case,
# padded and wildcard forms. A verifier that matches substrings or patterns reports them after a
# correct erasure; the bench counts what it reports (all of it false).
LOOKALIKES = {
    "suffix": lambda u: F.concat(u, F.lit("0")),
    "prefix": lambda u: F.concat(F.lit("x"), u),
    "cut": lambda u: F.substring(u, 1, 15),
    "upper": lambda u: F.upper(u),
    "padded": lambda u: F.concat(F.lit(" "), u, F.lit(" ")),
    "wildcard": lambda u: F.concat(u, F.lit("%")),
    "dotted": lambda u: F.concat(u, F.lit(".x")),
}


def lookalike_logs(spark: SparkSession, subjects: int, rows_each: int, days: int) -> DataFrame:
    """Bystanders whose user id, email and messages hold look-alikes of the subjects' ids (:data:`LOOKALIKES`)."""
    n = F.col("kafka_offset") * 16 + F.col("record_index")  # the row number synthetic_logs drew from
    per_subject = len(LOOKALIKES) * rows_each
    subject = _hex_id(F.lit("subject-"), (n / per_subject).cast("long"))
    variant = ((n / rows_each).cast("long") % len(LOOKALIKES)).cast("int")
    forms = F.array(*[make(subject) for make in LOOKALIKES.values()])
    alike = F.element_at(forms, variant + 1)
    return synthetic_logs(spark, subjects * per_subject, 0, days).withColumns(
        {
            "user_id": alike,
            "email": F.concat(alike, F.lit("@mail.example")),
            # Padded forms are the one kind text cannot tell apart (docs/performance.md, "GDPR erasure"):
            # they go in the id columns only.
            "message": F.when(
                F.lit(list(LOOKALIKES).index("padded")) == variant, F.lit("account settings changed")
            ).otherwise(F.concat(F.lit("account ["), alike, F.lit("] signed in"))),
            table.RECORD_KEY: F.concat(F.lit("alike:"), n.cast("string")),
        }
    )


def _hex_id(prefix: F.Column, n: F.Column) -> F.Column:
    return F.substring(F.sha2(F.concat(prefix, n.cast("string")), 256), 1, 16)


def subject_id(n: int) -> str:
    """The user id of subject ``n``, as :func:`synthetic_logs` writes it."""
    return hashlib.sha256(f"subject-{n}".encode()).hexdigest()[:16]


def _requests(subjects: range) -> str:
    return "\n".join(json.dumps({"request_id": f"r{n}", "user_id": subject_id(n)}) for n in subjects)


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.monotonic()
    out = fn()
    return out, round(time.monotonic() - start, 2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="loglake-bench-gdpr-"))
    settings: Settings = load_settings(
        overrides={"table.path": str(work / "logs"), "metrics.port": 0, "kafka.bootstrap_servers": "127.0.0.1:1"},
        assignments=[
            "spark.master=local[2]",
            f"spark.driver.memory={args.driver_memory}",
            "spark.ui.enabled=false",
            "spark.sql.shuffle.partitions=8",
            *args.set,
        ],
    )
    spark = get_spark(settings, app_name="loglake-bench-gdpr")
    path = settings.table.require_path()
    try:
        data = synthetic_logs(spark, args.records, args.subjects, args.days)
        if args.lookalikes:
            data = data.unionByName(lookalike_logs(spark, args.subjects, args.lookalikes, args.days))
        opts = table.log_table_options(settings)
        opts["hoodie.datasource.write.operation"] = "bulk_insert"
        opts.update(settings.hoodie)
        _, build = _timed(lambda: data.write.format("hudi").options(**opts).mode("overwrite").save(path))
        # A round of upserts gives the most recent days' file groups log files, as a live table has:
        # the stream appends to today's partition, and the compaction job turns older logs into base
        # files. --log-days 0 gives every partition logs (the worst case for resolution).
        upsert = table.ingest_options(settings)
        recent = F.col(table.PARTITION_FIELD) >= F.date_format(
            F.date_add(F.lit(START_DAY).cast("date"), args.days - args.log_days), "yyyy-MM-dd"
        )
        _, logs = _timed(
            lambda: (
                data.where(F.pmod(F.xxhash64(table.RECORD_KEY), F.lit(50)) == 7)
                .where(recent if args.log_days else F.lit(True))
                .write.format("hudi")
                .options(**upsert)
                .mode("append")
                .save(path)
            )
        )
        total_groups = len(_file_groups(spark, path))

        # Resolution: the job's column-pruned lookup vs reading whole rows.
        wanted = [subject_id(n) for n in range(args.subjects)]
        columns = settings.log_schema.subject_columns
        all_requests = parse_text(_requests(range(args.subjects)), "bench", subject_columns=columns).requests
        subjects = resolve.subjects_frame(spark, all_requests)
        snapshot = spark.read.format("hudi").load(path)
        pruned, resolve_pruned = _timed(
            lambda: resolve.match_records(snapshot, all_requests, subject_columns=columns).count()
        )
        full_rows = snapshot.join(
            F.broadcast(subjects.where("kind = 'user_id'")), snapshot["user_id"] == subjects["value"]
        )
        full, resolve_full = _timed(lambda: full_rows.select("*").collect().__len__())

        # Proportionality: file groups a dry run would touch for 1 and 10 subjects.
        scaling = {}
        for n in (1, 10):
            requests = parse_text(_requests(range(n)), "bench", subject_columns=columns)
            dry = run_delete(settings, requests, dry_run=True, spark=spark)
            scaling[str(n)] = {"records": dry.record_keys_found, "file_groups_touched": dry.file_groups_touched}

        requests = parse_text(_requests(range(args.subjects)), "bench", subject_columns=columns)
        result = run_delete(settings, requests, do_purge=True, spark=spark)
        scaling[str(args.subjects)] = {
            "records": result.records_deleted,
            "file_groups_touched": result.file_groups_touched,
        }
        after = spark.read.format("hudi").load(path)
        remaining = after.where(F.col("user_id").isin(wanted)).count()
        alikes_left = after.where(F.col(table.RECORD_KEY).startswith("alike:")).count()

        # The naive way, on a copy of the table as it was: read all, filter, overwrite all.
        naive_path = str(work / "naive")
        data.write.format("hudi").options(**{**opts, "hoodie.table.name": "naive"}).mode("overwrite").save(naive_path)

        def naive() -> None:
            kept = spark.read.format("hudi").load(naive_path).where(~F.col("user_id").isin(wanted))
            kept = kept.drop(*[c for c in kept.columns if c.startswith("_hoodie_")]).localCheckpoint()
            kept.write.format("hudi").options(**{**opts, "hoodie.table.name": "naive"}).mode("overwrite").save(
                naive_path
            )

        _, naive_seconds = _timed(naive)
        delete_seconds = result.seconds["resolve"] + result.seconds["delete"]
        return {
            "benchmark": "gdpr",
            "records": args.records,
            "subjects": args.subjects,
            "records_to_delete": args.subjects * RECORDS_PER_SUBJECT,
            "days": args.days,
            "log_days": args.log_days,
            "build_seconds": build,
            "upsert_round_seconds": logs,
            "file_groups_total": total_groups,
            "resolve_seconds": result.seconds["resolve"],
            "resolve_pruned_columns_seconds": resolve_pruned,
            "resolve_full_rows_seconds": resolve_full,
            "resolved_records": [pruned, full],
            "delete_seconds": result.seconds["delete"],
            "job_stage_seconds": result.seconds,
            "resolve_plus_delete_seconds": round(delete_seconds, 2),
            "purge_seconds": result.seconds.get("purge"),
            "verify_seconds": result.seconds.get("verify"),
            "records_deleted": result.records_deleted,
            "file_groups_touched": result.file_groups_touched,
            "touched_by_subjects": scaling,
            # After a correct erasure every hit is a false one: look-alike bystanders mistaken for subjects.
            "verification_hits": result.verification["hits"] if result.verification else None,
            "hits_listed": result.verification["hit_list"][:5] if result.verification else None,
            "verification_scan": {
                k: result.verification[k]
                for k in ("files_scanned", "bytes_scanned", "parquet_decoded", "raw_bytes_scanned")
            }
            if result.verification
            else None,
            "lookalike_rows": args.subjects * len(LOOKALIKES) * args.lookalikes,
            "lookalike_rows_left": alikes_left,
            "subject_records_left": remaining,
            "naive_seconds": naive_seconds,
            "speedup_vs_naive": round(naive_seconds / delete_seconds, 1) if delete_seconds else None,
            "settings": args.set,
            "work_dir": str(work),
            "machine": machine(),
        }
    finally:
        spark.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--subjects", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--log-days", type=int, default=2, help="recent days whose file groups get log files")
    parser.add_argument(
        "--lookalikes", type=int, default=2, help="bystander rows per look-alike form of each subject id (0: none)"
    )
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", action="store_true", help="keep the tables (printed path) for inspection")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
