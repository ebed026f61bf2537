"""A Docker engine for the container tests: found, or a clear skip (a failure where CI requires it),
the local images built once per session, and the compose client.

``LOGLAKE_TEST_DOCKER=require`` (which ``.ci/run`` sets after starting ``dockerd``) turns "no engine"
from a skip into a failure, so a broken engine cannot pass CI silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_IMAGES = ROOT / "deploy" / "compose" / "local" / "build-images.sh"
# Read at import: the tests' autouse fixture hides LOGLAKE_* variables from the tests themselves.
REQUIRED = os.environ.get("LOGLAKE_TEST_DOCKER", "") == "require"
KAFKA_IMAGE = "loglake-local/kafka:3.9.1"


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
    """deploy/compose/local/build-images.sh for ``names`` (all without): quick once the layers exist."""
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
