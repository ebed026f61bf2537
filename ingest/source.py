"""The Kafka readStream, and a fail-fast check that the brokers answer."""

from __future__ import annotations

import logging
import socket
import time

from pyspark.sql import DataFrame, SparkSession

from loglake.errors import SourceUnavailableError
from loglake.settings import KafkaSettings

log = logging.getLogger(__name__)


def check_reachable(kafka: KafkaSettings) -> int | None:
    """Fail fast, naming the setting, when no broker answers; return the topic's partition count.

    Spark's own Kafka source would retry silently for minutes before failing with a stack trace.
    A TCP connect proves a broker listens whatever the security protocol; the topic is looked up
    only on plaintext listeners, where no credentials are needed.
    """
    deadline = time.monotonic() + kafka.connect_timeout_seconds
    reached = False
    while not reached and time.monotonic() < deadline:
        for server in kafka.bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                    reached = True
                    break
            except OSError:
                continue
        else:
            time.sleep(0.5)
    if not reached:
        raise SourceUnavailableError(
            f"kafka.bootstrap_servers={kafka.bootstrap_servers}: no broker answered within "
            f"{kafka.connect_timeout_seconds:g} s"
        )
    if kafka.options.get("kafka.security.protocol", "PLAINTEXT").upper() != "PLAINTEXT":
        return None
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        meta = AdminClient({"bootstrap.servers": kafka.bootstrap_servers}).list_topics(
            timeout=kafka.connect_timeout_seconds
        )
    except KafkaException as exc:
        raise SourceUnavailableError(f"kafka.bootstrap_servers={kafka.bootstrap_servers}: {exc.args[0]}") from None
    topic = meta.topics.get(kafka.topic)
    if topic is None or topic.error is not None:
        log.warning(
            "kafka.topic=%s does not exist yet on %s; the stream will wait for it", kafka.topic, kafka.bootstrap_servers
        )
        return None
    return len(topic.partitions)


def read_kafka(spark: SparkSession, kafka: KafkaSettings) -> DataFrame:
    """The raw Kafka stream: key, value, topic, partition, offset, timestamp, timestampType."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
        .option("subscribe", kafka.topic)
        .option("startingOffsets", kafka.starting_offsets)
        .option("failOnDataLoss", str(kafka.fail_on_data_loss).lower())
        .option("includeHeaders", "false")
    )
    if kafka.max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(kafka.max_offsets_per_trigger))
    if kafka.min_partitions is not None:
        reader = reader.option("minPartitions", str(kafka.min_partitions))
    for key, value in kafka.options.items():
        reader = reader.option(key, value)
    return reader.load()
