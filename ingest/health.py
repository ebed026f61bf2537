"""What the stream's Kafka side looks like between batches: is the source reachable, was data lost.

During a broker outage no micro-batch completes, so the lag gauges (set after each batch) would
keep their last value: often 0, which reads as perfect health while nothing moves. A probe thread
asks the brokers every few seconds and, while they do not answer, sets ``kafka_up`` to 0 and every
lag gauge to NaN (unknown). With ``kafka.fail_on_data_loss: false`` Spark skips offsets that were
deleted before the stream read them; :func:`skipped_offsets` counts what each batch skipped.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from typing import Any

from ingest.metrics import IngestMetrics
from loglake.settings import KafkaSettings

log = logging.getLogger(__name__)

PROBE_SECONDS = 5.0


class KafkaProbe:
    """A daemon thread that keeps ``loglake_ingest_kafka_up`` and the lag gauges honest."""

    def __init__(self, kafka: KafkaSettings, metrics: IngestMetrics, interval: float = PROBE_SECONDS) -> None:
        self.kafka = kafka
        self.metrics = metrics
        self.interval = interval
        self.partitions: set[tuple[str, str]] = set()  # (topic, partition) pairs the lag gauges carry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loglake-kafka-probe", daemon=True)
        self._admin: Any = None
        self.up: bool | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval * 2)

    def probe(self) -> bool:
        """Whether a broker answers a metadata request for the topic within the interval.

        On a secured listener (SASL, SSL) the Python client has no credentials (they are the Spark
        Kafka source's, in Java's format), so there a TCP connect to a broker is the probe, as at start.
        """
        if self.kafka.options.get("kafka.security.protocol", "PLAINTEXT").upper() != "PLAINTEXT":
            return self._connects()
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            # librdkafka logs every failed connection attempt; the gauge and one log line say it instead.
            self._admin = AdminClient({"bootstrap.servers": self.kafka.bootstrap_servers, "log_level": 0})
        try:
            self._admin.list_topics(self.kafka.topic, timeout=self.interval)
        except Exception:
            return False
        return True

    def _connects(self) -> bool:
        for server in self.kafka.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=min(self.interval, 2.0)):
                    return True
            except OSError:
                continue
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            up = self.probe()
            self.metrics.kafka_up.set(1 if up else 0)
            if not up:
                for topic, partition in list(self.partitions):
                    self.metrics.offsets_behind.labels(topic=topic, partition=partition).set(math.nan)
                    self.metrics.queue_age.labels(topic=topic, partition=partition).set(math.nan)
            if up != self.up:
                if up is False:
                    log.warning(
                        "kafka.bootstrap_servers=%s does not answer: the stream waits, lag is unknown",
                        self.kafka.bootstrap_servers,
                    )
                elif self.up is False:
                    log.info("kafka.bootstrap_servers=%s answers again", self.kafka.bootstrap_servers)
                self.up = up
            self._stop.wait(self.interval)


def skipped_offsets(
    start: dict[str, dict[str, int]],
    end: dict[str, dict[str, int]],
    first_read: dict[tuple[str, int], int],
    earliest: dict[tuple[str, int], int],
) -> dict[tuple[str, int], tuple[int, int]]:
    """Per (topic, partition), the offsets ``[from, to)`` a batch was meant to read but Kafka no longer had.

    ``start``/``end`` are the batch's planned offsets (the Kafka source's offset JSON as dicts),
    ``first_read`` the first offset the batch actually got per partition, ``earliest`` the partition's
    earliest available offset now. Offsets before both the first one read and the earliest available
    are the deleted ones (a gap the topic still holds, like a transaction marker, is not counted).
    """
    skipped = {}
    for topic, partitions in start.items():
        for partition, begin in partitions.items():
            key = (topic, int(partition))
            stop = int(end.get(topic, {}).get(partition, begin))
            if stop <= begin:
                continue
            gone_until = min(first_read.get(key, stop), earliest.get(key, int(begin)), stop)
            if gone_until > int(begin):
                skipped[key] = (int(begin), gone_until)
    return skipped
