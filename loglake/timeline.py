"""What the table's Hudi timeline says about its health: pending compactions and how far behind they are.

Read through Hudi's own timeline classes in the JVM (not by parsing ``.hoodie`` file names, whose
layout changed between table versions 6 and 8), so the ingest stream, the compaction job and tests
all agree on what "pending" and "uncompacted" mean.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class TableHealth:
    """Compaction backlog of a merge-on-read table at one moment."""

    pending_compactions: list[str]  # instant times of compaction plans not yet executed, oldest first
    oldest_pending_compaction_seconds: float | None
    pending_clustering: list[str]
    last_compaction: str | None  # instant time of the newest completed compaction
    # Completed delta commits newer than the last completed compaction: their log files are what a
    # snapshot query must still merge.
    uncompacted_delta_commits: int
    oldest_uncompacted_delta_commit_seconds: float | None


def meta_client(spark: SparkSession, path: str) -> Any:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = jvm.org.apache.hudi.storage.hadoop.HadoopStorageConfiguration(spark.sparkContext._jsc.hadoopConfiguration())
    return jvm.org.apache.hudi.common.table.HoodieTableMetaClient.builder().setConf(conf).setBasePath(path).build()


def _instants(timeline: Any) -> list[str]:
    # By index: iterating a Java list from Python ends in an exception that PySpark's error handler
    # classifies with a dozen JVM class lookups: 91 -> 21 ms for the health read after every batch.
    instants = timeline.getInstants()
    return sorted(str(instants.get(i).requestedTime()) for i in range(instants.size()))


def instant_epoch_seconds(spark: SparkSession, instant: str) -> float:
    """Epoch seconds of a Hudi instant time, in the time zone Hudi generated it in."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    generator = jvm.org.apache.hudi.common.table.timeline.HoodieInstantTimeGenerator
    return float(generator.parseDateFromInstantTime(instant).getTime()) / 1000


def has_commits(spark: SparkSession, path: str) -> bool:
    """Whether any write has completed on the table (a stream's first commit may still be under way
    after it created the table's folder and properties)."""
    return not meta_client(spark, path).getActiveTimeline().getCommitsTimeline().filterCompletedInstants().empty()


def health(spark: SparkSession, path: str, now: float | None = None) -> TableHealth:
    """The table's compaction backlog, from a fresh read of its timeline."""
    timeline = meta_client(spark, path).getActiveTimeline()
    now = time.time() if now is None else now
    pending = _instants(timeline.filterPendingCompactionTimeline())
    clustering = _instants(timeline.filterPendingClusteringTimeline())
    # On a merge-on-read table the "commit" action is written by compaction only (and clustering
    # and partition drops write "replacecommit"), so the newest completed commit is the last compaction.
    compactions = _instants(timeline.getCommitTimeline().filterCompletedInstants())
    last = compactions[-1] if compactions else None
    deltas = _instants(timeline.getDeltaCommitTimeline().filterCompletedInstants())
    uncompacted = [d for d in deltas if last is None or d > last]

    def age(instants: list[str]) -> float | None:
        return round(max(0.0, now - instant_epoch_seconds(spark, instants[0])), 3) if instants else None

    return TableHealth(
        pending_compactions=pending,
        oldest_pending_compaction_seconds=age(pending),
        pending_clustering=clustering,
        last_compaction=last,
        uncompacted_delta_commits=len(uncompacted),
        oldest_uncompacted_delta_commit_seconds=age(uncompacted),
    )
