"""A StreamingQueryListener that turns Spark's progress events into Prometheus metrics."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pyspark.sql.streaming.listener import StreamingQueryListener

from ingest.health import skipped_offsets
from ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)


def offsets_of(text: str | None) -> dict[str, dict[str, int]]:
    """The Kafka source's offset JSON as a dict; empty when a progress event carries none (or not JSON)."""
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def offsets_behind(latest: str | None, end: str | None) -> dict[tuple[str, str], int]:
    """Per (topic, partition): latest available offset minus the offset the batch read up to.

    Both arguments are the Kafka source's offset JSON, ``{"topic": {"0": 42, ...}}``.
    """
    latest_map, end_map = offsets_of(latest), offsets_of(end)
    if not latest_map or not end_map:
        return {}
    behind = {}
    for topic, partitions in latest_map.items():
        for partition, offset in partitions.items():
            done = end_map.get(topic, {}).get(partition, offset)
            behind[(topic, partition)] = max(0, int(offset) - int(done))
    return behind


class QueueAge:
    """Time in queue: how long the oldest message the stream has not consumed yet has waited in Kafka.

    Offset lag alone misleads when traffic is uneven (10,000 messages behind is seconds at peak and
    hours at night); the age of the first unconsumed message is what a freshness alert needs. One
    message is fetched per lagging partition after each batch, with a consumer that joins no group
    and commits nothing (the checkpoint owns the offsets).
    """

    def __init__(self, bootstrap_servers: str, timeout: float = 5.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout = timeout
        self._consumer: Any = None
        # A progress event can still arrive while the job shuts down; after close() none reopens a consumer.
        self._closed = False

    def _client(self) -> Any:
        if self._consumer is None:
            from confluent_kafka import Consumer

            self._consumer = Consumer(
                {
                    "bootstrap.servers": self.bootstrap_servers,
                    "group.id": "loglake-queue-age",  # required by librdkafka; nothing is ever committed
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                    "fetch.max.bytes": 1_048_576,
                }
            )
        return self._consumer

    def age(self, topic: str, partition: int, offset: int, now: float | None = None) -> float | None:
        """Seconds since the message at ``offset`` was produced (its Kafka timestamp); None if not fetched."""
        from confluent_kafka import TopicPartition

        if self._closed:
            return None
        consumer = self._client()
        consumer.assign([TopicPartition(topic, partition, offset)])
        try:
            message = consumer.poll(self.timeout)
        finally:
            consumer.unassign()
        if message is None or message.error() is not None:
            return None
        _, millis = message.timestamp()
        if millis is None or millis < 0:
            return None
        return max(0.0, (time.time() if now is None else now) - millis / 1000)

    def earliest(self, topic: str, partition: int) -> int:
        """The partition's earliest offset Kafka still holds (its low watermark)."""
        from confluent_kafka import TopicPartition

        low, _ = self._client().get_watermark_offsets(TopicPartition(topic, partition), timeout=self.timeout)
        return int(low)

    def close(self) -> None:
        self._closed = True
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class IngestListener(StreamingQueryListener):
    """Updates :class:`IngestMetrics` after every micro-batch of the named query.

    Message counts come from the batch writer, not from ``numInputRows``: Spark counts the source
    rows of every action on the foreachBatch DataFrame, so that over-reports (2x in our tests).
    """

    def __init__(
        self,
        metrics: IngestMetrics,
        query_name: str,
        queue_age: QueueAge | None = None,
        *,
        first_offsets: dict[int, dict[tuple[str, int], int]] | None = None,
        count_skipped: bool = False,
        partitions: set[tuple[str, str]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.query_name = query_name
        self.queue_age = queue_age
        # With kafka.fail_on_data_loss false: the batch writer's first offsets read, per batch id.
        self.first_offsets = first_offsets if first_offsets is not None else {}
        self.count_skipped = count_skipped
        # (topic, partition) pairs the lag gauges carry, shared with the Kafka probe.
        self.partitions = partitions if partitions is not None else set()

    def onQueryStarted(self, event: Any) -> None:
        log.info("stream %s started (id %s, run %s)", event.name, event.id, event.runId)

    def onQueryProgress(self, event: Any) -> None:
        try:
            self._progress(event.progress)
        except Exception as exc:  # metrics are never worth an error in Spark's listener bus
            log.warning("could not update metrics from a progress event: %s", exc)

    def _progress(self, progress: Any) -> None:
        if progress.name != self.query_name:
            return
        m = self.metrics
        seconds = progress.durationMs.get("triggerExecution", 0) / 1000.0
        m.batch_duration.observe(seconds)
        m.last_batch_duration.set(seconds)
        for source in progress.sources:
            end = offsets_of(source.endOffset)
            for (topic, partition), lag in offsets_behind(source.latestOffset, source.endOffset).items():
                self.partitions.add((topic, partition))
                m.offsets_behind.labels(topic=topic, partition=partition).set(lag)
                self._queue_age(topic, partition, lag, end)
            if self.count_skipped and (start := offsets_of(source.startOffset)):
                self._skipped(start, end, progress.batchId)

    def _skipped(self, start: dict[str, dict[str, int]], end: dict[str, dict[str, int]], batch_id: int) -> None:
        """Count and log the offsets this batch could not read because Kafka had deleted them."""
        if self.queue_age is None:
            return
        first = self.first_offsets.get(batch_id, {})
        earliest: dict[tuple[str, int], int] = {}
        for topic, partitions in start.items():
            for partition, begin in partitions.items():
                key = (topic, int(partition))
                if key in first and first[key] <= int(begin):
                    continue  # read from its planned start: nothing skipped
                try:
                    earliest[key] = self.queue_age.earliest(topic, int(partition))
                except Exception as exc:  # a gauge is never worth a failed stream
                    log.warning("could not read the earliest offset of %s[%s]: %s", topic, partition, exc)
        for (lost_topic, lost_partition), (begin, until) in skipped_offsets(start, end, first, earliest).items():
            self.metrics.skipped_offsets.labels(topic=lost_topic, partition=str(lost_partition)).inc(until - begin)
            log.warning(
                "kafka data loss: %s[%d] offsets %d..%d were deleted before the stream read them; skipped "
                "(kafka.fail_on_data_loss is false)",
                lost_topic,
                lost_partition,
                begin,
                until - 1,
            )

    def _queue_age(self, topic: str, partition: str, lag: int, end: dict[str, dict[str, int]]) -> None:
        if self.queue_age is None:
            return
        age: float | None = 0.0
        if lag > 0:
            try:
                age = self.queue_age.age(topic, int(partition), int(end[topic][partition]))
            except Exception as exc:  # a freshness gauge is never worth a failed stream
                log.warning("could not read the oldest unconsumed message of %s[%s]: %s", topic, partition, exc)
                age = None
        gauge = self.metrics.queue_age.labels(topic=topic, partition=partition)
        if age is not None:
            gauge.set(age)

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        if event.exception:
            log.error("stream %s failed: %s", event.id, event.exception.splitlines()[0])
