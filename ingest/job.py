"""Wiring of the ingest stream: Kafka source -> parse -> foreachBatch Hudi writer, plus metrics.

``run(settings, once=True)`` processes what Kafka holds now (Trigger.AvailableNow) and returns;
otherwise the stream runs on its processing-time trigger until SIGTERM/SIGINT, which stop it
between batches.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from py4j.protocol import Py4JError
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession

from ingest import checkpoint_lock, failures, source
from ingest.health import KafkaProbe
from ingest.listener import IngestListener, QueueAge
from ingest.metrics import IngestMetrics
from ingest.sink import BatchWriter
from loglake import __version__, table
from loglake import metrics as prom
from loglake.jvm_errors import jvm_gone
from loglake.paths import check_writable
from loglake.settings import Settings
from loglake.shape import LogShape
from loglake.shape import load as load_shape
from loglake.spark import get_spark

log = logging.getLogger(__name__)


STOP_GRACE_SECONDS = 120


@dataclass(frozen=True)
class IngestResult:
    """What one run of the ingest job did."""

    table_path: str
    quarantine_path: str
    batches: int
    messages: int
    records_written: int
    rows_quarantined: int
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def run(settings: Settings, *, once: bool = False, metrics: IngestMetrics | None = None) -> IngestResult:
    """Run the ingest stream until it has caught up (``once``) or is told to stop.

    Raises:
        ConfigError: a setting is missing or bad, or a folder cannot be written (named in the message).
        CheckpointInUseError: another stream holds the checkpoint (named in the message).
        SourceUnavailableError: no Kafka broker answered at ``kafka.bootstrap_servers``.
        StreamFailedError: the stream stopped; the message names the cause and the setting to change
            (:class:`KafkaDataLossError`, :class:`StorageFullError` for their own exit codes).
    """
    table_path = settings.table.require_path()
    log.info("ingest settings: %s", settings.masked())
    check_writable(
        [
            ("table.path", table_path),
            ("table.quarantine_path", settings.table.effective_quarantine_path),
            ("ingest.checkpoint_dir", settings.checkpoint_dir),
        ]
    )
    # The messages' shape is checked against their schema before anything starts.
    shape = load_shape(settings)
    with checkpoint_lock.hold(settings.checkpoint_dir):
        source.check_reachable(settings.kafka)
        return _run(settings, shape, once=once, metrics=metrics)


def _run(settings: Settings, shape: LogShape, *, once: bool, metrics: IngestMetrics | None) -> IngestResult:
    table_path = settings.table.require_path()

    metrics = metrics or IngestMetrics()
    metrics.info.info({"table": settings.table.name, "topic": settings.kafka.topic, "version": __version__})
    metrics.trigger_interval.set(settings.ingest.trigger_seconds)
    prom.serve(metrics.registry, settings.metrics.port, settings.metrics.host)

    spark = get_spark(settings, app_name=f"loglake-ingest[{settings.table.name}]")
    settings = table.resolve_version(spark, settings, table_path, settings.table.effective_quarantine_path)
    queue_age = QueueAge(settings.kafka.bootstrap_servers)
    writer = BatchWriter(settings, metrics, shape)
    probe = KafkaProbe(settings.kafka, metrics)
    listener = IngestListener(
        metrics,
        settings.ingest.query_name,
        queue_age,
        first_offsets=writer.stats.first_offsets,
        count_skipped=not settings.kafka.fail_on_data_loss,
        partitions=probe.partitions,
    )
    spark.streams.addListener(listener)
    probe.start()
    started = time.monotonic()
    try:
        # The writer stages each batch itself: the quarantine needs the raw rows beside the staged ones.
        stream = (
            source.read_kafka(spark, settings.kafka)
            .writeStream.queryName(settings.ingest.query_name)
            .foreachBatch(writer)
            .option("checkpointLocation", settings.checkpoint_dir)
        )
        stream = stream.trigger(availableNow=True) if once else stream.trigger(processingTime=settings.ingest.trigger)
        query = stream.start()
        log.info("ingesting %s -> %s (checkpoint %s)", settings.kafka.topic, table_path, settings.checkpoint_dir)
        _await(query)
    except (StreamingQueryException, Py4JError) as exc:
        jvm = None if jvm_gone(exc) else spark.sparkContext._jvm
        raise failures.explain(exc, settings, jvm, earliest=queue_age.earliest) from exc
    finally:
        probe.stop()
        # The JVM may be gone (killed, out of memory): tidying up must not hide the failure.
        with contextlib.suppress(Exception):
            _drain_listener_bus(spark)
            spark.streams.removeListener(listener)
        # Last: a progress event handled while the bus drains would otherwise open a new consumer.
        queue_age.close()
    stats = writer.stats
    return IngestResult(
        table_path=table_path,
        quarantine_path=settings.table.effective_quarantine_path,
        batches=stats.batches,
        messages=stats.messages,
        records_written=stats.records_written,
        rows_quarantined=stats.quarantined_total,
        quarantined_by_reason=dict(stats.quarantined),
        seconds=round(time.monotonic() - started, 3),
    )


def _drain_listener_bus(spark: SparkSession, timeout_ms: int = 10_000) -> None:
    """Let Spark deliver the last progress events before the listener goes away.

    Progress reaches the listener asynchronously; without this the final batch of an ``--once`` run
    was missing from the metrics.
    """
    try:
        spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(timeout_ms)
    except Exception as exc:  # metrics only; never fail the run for them
        log.warning("progress events may be incomplete: %s", exc)


def _await(query) -> None:  # type: ignore[no-untyped-def]
    """Wait for the query, turning SIGTERM/SIGINT into a stop between batches."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping the stream after the current batch", signum)
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, request_stop)
    try:
        while query.isActive and not stop.is_set():
            query.awaitTermination(1)
        if stop.is_set():
            # query.stop() interrupts a running batch; that is safe (it is replayed) but wasteful,
            # so give the current batch a bounded chance to finish first.
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
                time.sleep(0.5)
            query.stop()
        query.awaitTermination()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
