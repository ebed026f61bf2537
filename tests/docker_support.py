"""A Docker engine for the container tests: found, or a clear skip (a failure where CI requires it),
the local images built once per session, and the compose client.

``LOGLAKE_TEST_DOCKER=require`` (which ``.ci/run`` sets after starting ``dockerd``) turns "no engine"
from a skip into a failure, so a broken engine cannot pass CI silently.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_IMAGES = ROOT / "deploy" / "compose" / "local" / "build-images.sh"
# Read at import: the tests' autouse fixture hides LOGLAKE_* variables from the tests themselves.
REQUIRED = os.environ.get("LOGLAKE_TEST_DOCKER", "") == "require"
KAFKA_IMAGE = "loglake-local/kafka:3.9.1"
# Held while images build: the suite's two workers and its warm-up (tests/warmup.py) may all want
# them, and two builds of the same base image would debootstrap into one folder.
BUILD_LOCK = Path(tempfile.gettempdir()) / "loglake-build-images.lock"


def docker_cli() -> str | None:
    return shutil.which("docker")


def engine_problem() -> str | None:
    """Why no engine answers, or None when one does."""
    docker = docker_cli()
    if docker is None:
        return "no docker client on PATH (Debian: apt-get install docker.io)"
    proc = subprocess.run(
        [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"no Docker engine answers ({lines[-1] if lines else 'docker info failed'}); start dockerd"
    return None


def require_engine() -> None:
    """Skip (or, with LOGLAKE_TEST_DOCKER=require, fail) the calling test or fixture without an engine."""
    problem = engine_problem()
    if problem is None:
        return
    if REQUIRED:
        pytest.fail(f"LOGLAKE_TEST_DOCKER=require: {problem}")
    pytest.skip(problem)


def build_images(*names: str, timeout: float = 1800) -> None:
    """deploy/compose/local/build-images.sh for ``names`` (all without), under ``BUILD_LOCK``: quick
    once the layers exist."""
    with BUILD_LOCK.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.run([str(BUILD_IMAGES), *names], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"building the local images failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    print(proc.stdout, end="")


def compose_client() -> list[str] | None:
    """``docker compose`` (the plugin) where it exists, else Debian's ``docker-compose``."""
    docker = docker_cli()
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@contextmanager
def kafka_container(port: int) -> Iterator[str]:
    """The Kafka image (the same broker jars as ``loglake kafka start``) as a container through
    testcontainers, published on 127.0.0.1:``port``; yields its bootstrap address.

    The host port is chosen before the start because the broker must advertise the address clients
    reach it by. Ryuk, testcontainers' reaper, is off: its image is not reachable here, and the
    container is stopped and removed when the block ends.
    """
    require_engine()
    build_images("kafka")
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"  # read when testcontainers is imported
    from testcontainers.core.container import DockerContainer

    from devservers import kafka_broker

    bootstrap = f"127.0.0.1:{port}"
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://{bootstrap}")
        # As the process broker: four partitions by default and for the internal topics.
        .with_env("KAFKA_NUM_PARTITIONS", "4")
        .with_env("KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS", "4")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS", "4")
    )
    # Published on the loopback only (with_bind_ports takes no address; docker-py's ports mapping does).
    container.ports["9092/tcp"] = ("127.0.0.1", port)
    container.start()
    try:
        deadline = time.monotonic() + 90
        while not kafka_broker.answers(bootstrap, timeout=2):
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            if time.monotonic() > deadline or wrapped.status == "exited":
                out, err = container.get_logs()
                pytest.fail(f"the Kafka container did not answer on {bootstrap}:\n{(out + err).decode()[-3000:]}")
            time.sleep(1)
        yield bootstrap
    finally:
        container.stop()
