"""Time in queue against the real broker: the age of the first message a stream has not consumed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Producer

from ingest.listener import QueueAge

pytestmark = pytest.mark.integration


def test_age_of_the_message_at_an_offset_comes_from_its_kafka_timestamp(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    topic = topic_factory(partitions=1)
    now = time.time()
    stamps = [int((now - age) * 1000) for age in (3600, 600, 5)]  # produced 1 h, 10 min and 5 s ago
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for ms in stamps:
        producer.produce(topic, value=b"x", partition=0, timestamp=ms)
    assert producer.flush(30) == 0

    ages = QueueAge(kafka_bootstrap)
    try:
        assert ages.age(topic, 0, 0, now=now) == pytest.approx(3600, abs=0.01)
        assert ages.age(topic, 0, 1, now=now) == pytest.approx(600, abs=0.01)
        assert ages.age(topic, 0, 2, now=now) == pytest.approx(5, abs=0.01)
        # Nothing at the end of the log yet: unknown, not zero (the gauge keeps its last value).
        assert ages.age(topic, 0, 3, now=now) is None
    finally:
        ages.close()
    # A late progress event after shutdown must not open a consumer that nobody closes.
    assert ages.age(topic, 0, 0, now=now) is None and ages._consumer is None
