"""docker-compose.yml: every file it mounts exists, its services fit together, and a compose client accepts it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from docker_support import compose_client

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_mounted_file_exists_and_the_stack_is_complete() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"kafka", "s3", "prometheus", "pushgateway", "grafana", "ingest", "compact", "gdpr"} <= set(services)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"service {name} mounts {source}, which is not in the repository"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"service {name} depends on unknown service {dependency}"
    assert (ROOT / "Dockerfile").exists()
    # The loglake services read a settings file that loads (S3 paths, the shared lock folder).
    from loglake.settings import load_settings

    settings = load_settings(ROOT / "deploy" / "compose" / "loglake.yaml")
    assert settings.table.require_path().startswith("s3a://")
    assert settings.hoodie["hoodie.write.lock.filesystem.path"] == "file:///locks"


def test_a_compose_client_accepts_the_file() -> None:
    client = compose_client()
    if client is None:
        pytest.skip("no compose client here (neither `docker compose` nor `docker-compose`); it needs no engine")
    result = subprocess.run([*client, "config", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_local_override_replaces_every_public_image_but_grafana() -> None:
    """deploy/compose/local.yml names a local image for each public one, and Grafana (no Debian
    package) is kept out of a plain ``up`` by a profile."""
    local = yaml.safe_load((ROOT / "deploy" / "compose" / "local.yml").read_text())["services"]
    for name, service in _compose()["services"].items():
        if name == "grafana":
            assert local[name] == {"profiles": ["grafana"]}
        elif service.get("image", "").startswith("loglake:"):
            assert name not in local, f"{name} runs the project's own image, built from the Dockerfile"
        else:
            assert local[name]["image"].startswith("loglake-local/"), name
    client = compose_client()
    if client is None:
        pytest.skip("no compose client here")
    files = ["-f", "docker-compose.yml", "-f", "deploy/compose/local.yml"]
    result = subprocess.run([*client, *files, "config"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)["services"]
    assert merged["kafka"]["image"] == local["kafka"]["image"]


def test_the_images_jar_layer_copies_every_module_it_imports() -> None:
    """The Dockerfile resolves the jars from three files copied before the rest of the code (so a
    code edit keeps that layer): they must not import any other loglake module."""
    import ast

    copied = {"loglake/__init__.py", "loglake/errors.py", "loglake/jars.py"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY " + " ".join(sorted(copied)) + " /tmp/jars/loglake/" in dockerfile
    for name in copied:
        tree = ast.parse((ROOT / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        ours = {m for m in imported if m.split(".")[0] in ("loglake", "ingest", "gdpr", "compaction")}
        assert {m.replace(".", "/") + ".py" for m in ours} <= copied, f"{name} imports {sorted(ours)}"
