"""The local KRaft broker and the load generator against it: real java, real Kafka.

These tests start their own brokers (each with a data folder under tmp_path and a free port)
because start and stop are what they test; other tests share the session broker of conftest. Two
brokers in all: the module's, started by two callers at once, and the one the CLI starts, stops and
that comes back on another port with its topics.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from app.produce import decode_avro, generate_batches, produce
from devservers import kafka_broker
from loglake.errors import BrokerError

pytestmark = pytest.mark.integration

NOW_MS = 1_764_000_000_000
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_of(data: Path) -> int:
    return int((data / kafka_broker.PID_FILE).read_text())


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=1):
                assert msg.error() is None, msg.error()
                messages.append(msg)
        # Anything beyond the expected count would be a duplicate.
        messages.extend(m for m in consumer.consume(num_messages=1000, timeout=1) if m.error() is None)
    finally:
        consumer.close()
    return messages


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The module's broker, started by two callers at once: they must share one broker."""
    data = tmp_path_factory.mktemp("broker")
    port = free_port()
    with ThreadPoolExecutor(max_workers=2) as pool:
        addresses = list(pool.map(lambda _: kafka_broker.start(port=port, data_dir=data), range(2)))
    assert addresses == [f"127.0.0.1:{port}"] * 2
    yield addresses[0], data
    pid = pid_of(data)
    assert kafka_broker.stop(data_dir=data) is True
    assert not process_exists(pid)


def test_start_writes_the_data_folder(broker: tuple[str, Path]) -> None:
    bootstrap, data = broker
    assert bootstrap.startswith("127.0.0.1:")
    props = (data / "server.properties").read_text()
    assert f"listeners=PLAINTEXT://{bootstrap}," in props
    assert "process.roles=broker,controller" in props
    assert "offsets.topic.replication.factor=1" in props
    assert (data / "logs" / "meta.properties").exists()
    assert process_exists(pid_of(data))
    assert "Kafka Server started" in (data / "broker.log").read_text()


def test_start_is_idempotent(broker: tuple[str, Path]) -> None:
    bootstrap, data = broker
    pid = pid_of(data)
    port = int(bootstrap.rsplit(":", 1)[1])
    assert kafka_broker.start(port=port, data_dir=data) == bootstrap
    assert pid_of(data) == pid


def test_produce_and_consume_back_avro(broker: tuple[str, Path]) -> None:
    bootstrap, _ = broker
    topic = f"logs-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(bootstrap, topic, partitions=3)
    kafka_broker.create_topic(bootstrap, topic, partitions=3)  # existing topic: no error

    result = produce(bootstrap, topic, messages=400, seed=5, records_per_message=(2, 6), now_ms=NOW_MS)
    expected = list(generate_batches(random.Random(5), NOW_MS, 400, (2, 6)))
    assert (result.topic, result.messages, result.encoding) == (topic, 400, "avro")
    assert result.records == sum(len(b["records"]) for b in expected)
    assert result.seconds > 0

    consumed = consume_all(bootstrap, topic, expected=400)
    assert len(consumed) == 400
    assert result.bytes == sum(len(m.value()) for m in consumed)
    assert {m.partition() for m in consumed} == {0, 1, 2}
    decoded = {}
    for m in consumed:
        batch = decode_avro(m.value())
        assert m.key() == batch["batch_id"].encode()
        decoded[batch["batch_id"]] = batch
    assert decoded == {b["batch_id"]: b for b in expected}


def test_produce_wire_format_and_json(broker: tuple[str, Path]) -> None:
    bootstrap, _ = broker
    wire_topic, json_topic = f"wire-{uuid.uuid4().hex[:8]}", f"json-{uuid.uuid4().hex[:8]}"
    # No create_topic: the broker creates topics on first use, with num.partitions=4.
    produce(bootstrap, wire_topic, messages=20, seed=6, confluent_wire_format=True, now_ms=NOW_MS)
    produce(bootstrap, json_topic, messages=20, seed=6, encoding="json", now_ms=NOW_MS)
    wire = consume_all(bootstrap, wire_topic, expected=20)
    assert len(wire) == 20
    assert all(m.value()[:5] == b"\x00\x00\x00\x00\x01" for m in wire)
    assert {decode_avro(m.value(), confluent_wire_format=True)["batch_id"] for m in wire} == {
        m.key().decode() for m in wire
    }
    assert len(consume_all(bootstrap, json_topic, expected=20)) == 20


def test_create_topic_rejects_bad_partitions(broker: tuple[str, Path]) -> None:
    with pytest.raises(BrokerError, match="partitions 0"):
        kafka_broker.create_topic(broker[0], "never", partitions=0)


def test_start_fails_clearly_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} .* already in use"):
            kafka_broker.start(port=port, data_dir=tmp_path / "kafka")
    assert not (tmp_path / "kafka" / "broker.pid").exists()


def test_stop_handles_a_stale_pid_file(tmp_path: Path) -> None:
    data = tmp_path / "kafka"
    data.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (data / "broker.pid").write_text(finished.stdout)
    assert kafka_broker.stop(data_dir=data) is False
    assert not (data / "broker.pid").exists()
    # A live process that is not this folder's broker (pid reuse) is left alone.
    (data / "broker.pid").write_text(f"{os.getpid()}\n")
    assert kafka_broker.stop(data_dir=data) is False


def test_cli_start_and_stop_then_a_restart_keeps_topics(tmp_path: Path) -> None:
    data = tmp_path / "cli-kafka"
    port = free_port()
    cli = [sys.executable, "-m", "app.cli", "kafka"]
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    try:
        started = subprocess.run(
            [*cli, "start", "--port", str(port), "--data", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=env,
        )
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"127.0.0.1:{port}"
        pid = pid_of(data)
        # The broker outlives the command that started it.
        assert process_exists(pid)
        kafka_broker.create_topic(started.stdout.strip(), "kept", partitions=2)
        produce(started.stdout.strip(), "kept", messages=5, seed=1)

        stopped = subprocess.run(
            [*cli, "stop", "--data", str(data)], capture_output=True, text=True, timeout=60, cwd=REPO, env=env
        )
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == "stopped"
        assert not process_exists(pid)
        assert not (data / "broker.pid").exists()

        again = subprocess.run(
            [*cli, "stop", "--data", str(data)], capture_output=True, text=True, timeout=60, cwd=REPO, env=env
        )
        assert again.stdout.strip() == "no broker running for that data folder"

        # Another port, same folder: formatted storage and the topic's data are reused.
        bootstrap = kafka_broker.start(port=free_port(), data_dir=data)
        assert len(consume_all(bootstrap, "kept", expected=5)) == 5
    finally:
        kafka_broker.stop(data_dir=data)  # a failed assertion must not leave the broker behind
