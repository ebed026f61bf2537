"""A StreamingQueryListener that turns Spark's progress events into Prometheus metrics."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pyspark.sql.streaming.listener import StreamingQueryListener

from ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)


def offsets_behind(latest: str | None, end: str | None) -> dict[tuple[str, str], int]:
    """Per (topic, partition): latest available offset minus the offset the batch read up to.

    Both arguments are the Kafka source's offset JSON, ``{"topic": {"0": 42, ...}}``.
    """
    if not latest or not end:
        return {}
    latest_map: dict[str, dict[str, int]] = json.loads(latest)
    end_map: dict[str, dict[str, int]] = json.loads(end)
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

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class IngestListener(StreamingQueryListener):
    """Updates :class:`IngestMetrics` after every micro-batch of the named query.

    Message counts come from the batch writer, not from ``numInputRows``: Spark counts the source
    rows of every action on the foreachBatch DataFrame, so that over-reports (2x in our tests).
    """

    def __init__(self, metrics: IngestMetrics, query_name: str, queue_age: QueueAge | None = None) -> None:
        self.metrics = metrics
        self.query_name = query_name
        self.queue_age = queue_age

    def onQueryStarted(self, event: Any) -> None:
        log.info("stream %s started (id %s, run %s)", event.name, event.id, event.runId)

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        if progress.name != self.query_name:
            return
        m = self.metrics
        seconds = progress.durationMs.get("triggerExecution", 0) / 1000.0
        m.batch_duration.observe(seconds)
        m.last_batch_duration.set(seconds)
        for source in progress.sources:
            end = json.loads(source.endOffset) if source.endOffset else {}
            for (topic, partition), lag in offsets_behind(source.latestOffset, source.endOffset).items():
                m.offsets_behind.labels(topic=topic, partition=partition).set(lag)
                self._queue_age(topic, partition, lag, end)

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
