"""Erasure requests from a Kafka topic: read what is there, hand it over, commit only after success."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from gdpr.requests import ParsedRequests, parse_messages
from loglake.errors import SourceUnavailableError
from loglake.settings import Settings

log = logging.getLogger(__name__)


def _committed(consumer: Consumer, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
    """The group's committed offsets, waiting out a coordinator that is still being elected or loaded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return list(consumer.committed(partitions, timeout=timeout))
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = getattr(error, "retriable", lambda: False)() or getattr(error, "code", lambda: None)() in (
                KafkaError.NOT_COORDINATOR,
                KafkaError.COORDINATOR_NOT_AVAILABLE,
                KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            )
            if not retriable or time.monotonic() > deadline:
                raise SourceUnavailableError(f"offsets of the erasure requests' consumer group: {exc}") from None
            time.sleep(0.5)


@contextmanager
def requests_from_topic(
    settings: Settings, topic: str, subject_columns: Iterable[str], timeout: float = 15.0
) -> Iterator[ParsedRequests]:
    """Every request in ``topic`` past the consumer group's committed offsets, up to the current end;
    a request may name one of ``subject_columns`` (the log shape's) or a record key.

    Offsets are committed when the ``with`` block ends without an error, so a failed run sees the
    same requests again (re-running a request is idempotent).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": settings.gdpr.requests_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Connection failures surface as one SourceUnavailableError, not a page of librdkafka lines.
            "log_level": 0,
        }
    )
    try:
        try:
            meta = consumer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise SourceUnavailableError(
                f"gdpr.requests_topic={topic} at kafka.bootstrap_servers={settings.kafka.bootstrap_servers}: {exc}"
            ) from None
        if topic not in meta.topics or meta.topics[topic].error is not None:
            raise SourceUnavailableError(f"gdpr.requests_topic={topic}: no such topic")
        partitions = [TopicPartition(topic, p) for p in meta.topics[topic].partitions]
        committed = {tp.partition: tp.offset for tp in _committed(consumer, partitions, timeout)}
        ends: dict[int, int] = {}
        assigned = []
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            start = committed[tp.partition] if committed[tp.partition] >= 0 else low
            if start < high:
                ends[tp.partition] = high
                assigned.append(TopicPartition(topic, tp.partition, start))
        messages: list[tuple[str, bytes | None]] = []
        if assigned:
            consumer.assign(assigned)
            pending = set(ends)
            while pending:
                msg = consumer.poll(timeout)
                if msg is None:
                    raise SourceUnavailableError(f"gdpr.requests_topic={topic}: no message within {timeout:g} s")
                if msg.error():
                    raise SourceUnavailableError(f"gdpr.requests_topic={topic}: {msg.error()}")
                p, off = msg.partition(), msg.offset()
                if p in pending and off is not None:
                    messages.append((f"{topic}[{p}]@{off}", msg.value()))
                    if off + 1 >= ends[p]:
                        pending.discard(p)
        log.info("read %d erasure requests from %s", len(messages), topic)
        yield parse_messages(messages, subject_columns=subject_columns)
        if ends:
            consumer.commit(offsets=[TopicPartition(topic, p, end) for p, end in ends.items()], asynchronous=False)
    finally:
        consumer.close()
