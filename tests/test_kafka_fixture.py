"""The session's broker is the one LOGLAKE_TEST_KAFKA selects: so a run meant for the container broker
cannot pass on the process broker by mistake, nor the other way round."""

from __future__ import annotations

import subprocess

import pytest
from conftest import KAFKA_MODE
from docker_support import KAFKA_IMAGE, docker_cli, engine_problem

from devservers import kafka_broker

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
