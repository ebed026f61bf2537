"""The session's broker is the one LOGLAKE_TEST_KAFKA selects (so a run meant for the container broker
cannot pass on the process broker by mistake, nor the other way round), and the Kafka image serves
the ingest job as the broker process does."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from builders import encode, expected_rows, make_batches, normalize, read_hudi_rs, send
from conftest import KAFKA_MODE, TEST_SPARK_CONF, free_port
from docker_support import KAFKA_IMAGE, docker_cli, engine_problem, kafka_container

from devservers import kafka_broker
from ingest.job import run
from loglake.settings import load_settings

pytestmark = pytest.mark.integration


def _containers_publishing(port: int) -> list[str]:
    docker = docker_cli()
    if docker is None or engine_problem() is not None:
        return []
    out = subprocess.run(
        [docker, "ps", "--filter", f"publish={port}", "--format", "{{.Image}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return out.split()


def test_the_session_broker_is_the_selected_kind(kafka_bootstrap: str) -> None:
    port = int(kafka_bootstrap.rsplit(":", 1)[1])
    assert kafka_broker.answers(kafka_bootstrap, timeout=10)
    if KAFKA_MODE == "container":
        assert _containers_publishing(port) == [KAFKA_IMAGE]
    else:
        assert _containers_publishing(port) == []


@pytest.mark.docker
def test_the_kafka_image_serves_the_ingest_job(spark: Any, tmp_path: Path) -> None:
    """The image's broker (the jars `loglake kafka start` runs), published on 127.0.0.1: topics are
    created, messages produced and the stream reads every record of them once."""
    with kafka_container(free_port()) as bootstrap:
        assert _containers_publishing(int(bootstrap.rsplit(":", 1)[1])) == [KAFKA_IMAGE]
        kafka_broker.create_topic(bootstrap, "logs", partitions=2)
        batches = make_batches(20, seed=41)
        send(bootstrap, "logs", [encode(b) for b in batches])
        settings = load_settings(
            overrides={
                "table.path": str(tmp_path / "logs"),
                "kafka.bootstrap_servers": bootstrap,
                "kafka.topic": "logs",
                "metrics.port": 0,
            },
            assignments=TEST_SPARK_CONF,
        )
        result = run(settings, once=True)
    expected = expected_rows(batches)
    assert result.records_written == len(expected)
    assert {r["record_key"]: normalize(r) for r in read_hudi_rs(str(tmp_path / "logs")).to_pylist()} == expected
