"""Read the log table back and describe it (the demo's last step, and a quick health check)."""

from __future__ import annotations

from typing import Any

from pyspark.sql import functions as F

from loglake import shape as log_shape
from loglake import table
from loglake.errors import TableError
from loglake.settings import Settings
from loglake.shape import EVENT_TIME_COLUMN, LogShape
from loglake.spark import get_spark


def summarize(settings: Settings, shape: LogShape | None = None) -> dict[str, Any]:
    """Row and key counts, distinct values of each subject column, rows per partition, commits, and
    quarantine counts by reason. ``shape``: the log's shape (default: loaded from ``settings``)."""
    path = settings.table.require_path()
    shape = shape or log_shape.load(settings)
    spark = get_spark(settings, app_name=f"loglake-summary[{settings.table.name}]")
    if not table.table_exists(spark, path):
        raise TableError(f"table.path={path} is not a Hudi table (no .hoodie/hoodie.properties there)")
    logs = spark.read.format("hudi").load(path)
    totals = logs.agg(
        F.count("*").alias("rows"),
        F.countDistinct("_hoodie_record_key").alias("distinct_keys"),
        F.countDistinct("_hoodie_commit_time").alias("commits_with_live_rows"),
        *(F.countDistinct(c).alias(f"_subject_{c}") for c in shape.subject_columns),
        F.min(EVENT_TIME_COLUMN).alias("first_ts"),
        F.max(EVENT_TIME_COLUMN).alias("last_ts"),
    ).first()
    assert totals is not None
    counts = totals.asDict()
    # Distinct data subjects per identifier column: how many people an erasure could concern.
    subjects = {c: counts.pop(f"_subject_{c}") for c in shape.subject_columns}
    per_partition = {
        r[table.PARTITION_FIELD]: r["count"]
        for r in logs.groupBy(table.PARTITION_FIELD).count().orderBy(table.PARTITION_FIELD).collect()
    }
    summary: dict[str, Any] = {
        "table_path": path,
        **counts,
        "distinct_subjects": subjects,
        "rows_per_partition": per_partition,
    }
    summary["quarantine"] = {}
    quarantine_path = settings.table.effective_quarantine_path
    # The quarantine table exists only once bad input arrived.
    if table.table_exists(spark, quarantine_path):
        quarantine = spark.read.format("hudi").load(quarantine_path)
        summary["quarantine"] = {
            r["reason_code"]: r["count"] for r in quarantine.groupBy("reason_code").count().collect()
        }
    return summary
