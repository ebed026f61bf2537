"""docker-compose.yml for real: the stack up with the local images, logs produced, ingested into the
table on the stack's S3 store, compacted by the loop, scraped and pushed, one subject erased, then
down with its volumes.

The images are the ones ``deploy/compose/local/build-images.sh`` builds (no registry is reachable
here), mapped onto the public names by ``deploy/compose/local.yml``: the same commands docs/operations.md ("Containers")
gives. Every job reaches the store through s3a:// (SeaweedFS's S3 gateway). The tables are read back
from the host through the stack's published S3 port with hudi-rs (no Spark), and after the erasure
every object of the bucket is copied out and searched raw.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from builders import raw_hits, read_hudi_rs, s3_options
from docker_support import ROOT, build_images, compose_client, docker_cli, require_engine
from pyarrow import fs

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# What deploy/compose/loglake.yaml and deploy/compose/s3.json configure, and the published ports.
S3 = s3_options("http://127.0.0.1:8333", "loglake", "loglake-secret")
TABLE = "s3://lake/tables/logs"
PROMETHEUS = "http://127.0.0.1:9090"
PUSHGATEWAY = "http://127.0.0.1:9091"
PUBLISHED_PORTS = (8333, 9090, 9091, 9464)
MESSAGES = 400
T = TypeVar("T")


def _wait(what: str, probe: Callable[[], T | None], timeout: float, logs: Callable[[], str]) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except Exception:  # a service that is still starting answers with anything
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:g} s; the stack's last log lines:\n{logs()}")
        time.sleep(5)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - 127.0.0.1 only
        return str(r.read().decode())


def _prometheus(query: str) -> list[dict[str, Any]]:
    body = json.loads(_get(f"{PROMETHEUS}/api/v1/query?{urllib.parse.urlencode({'query': query})}"))
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _copy_bucket(bucket: str, target: Path) -> int:
    """Every object of ``bucket`` copied under ``target``, through the published S3 port; how many."""
    s3 = fs.S3FileSystem(
        access_key=S3["aws_access_key_id"],
        secret_key=S3["aws_secret_access_key"],
        endpoint_override=S3["aws_endpoint"].removeprefix("http://"),
        scheme="http",
        region="us-east-1",
    )
    files = [i for i in s3.get_file_info(fs.FileSelector(bucket, recursive=True)) if i.type == fs.FileType.File]
    for info in files:
        local = target / info.path
        local.parent.mkdir(parents=True, exist_ok=True)
        with s3.open_input_stream(info.path) as stream:
            local.write_bytes(stream.read())
    return len(files)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """The stack up (``up -d``, as docs/operations.md says), yielding a runner of compose commands."""
    require_engine()
    client = compose_client()
    if client is None:
        pytest.fail("no compose client (docker-compose or docker compose): run make setup")
    taken = [p for p in PUBLISHED_PORTS if _listening(p)]
    if taken:
        pytest.fail(f"ports {taken} on 127.0.0.1 are taken; the stack publishes {PUBLISHED_PORTS}")
    build_images()
    # As docs/operations.md runs it: both files through COMPOSE_FILE; a project name of its own; and
    # tests/compose-test.yml, which only gives the stack's JVMs the suite's quick-start flags.
    env = {
        **os.environ,
        "COMPOSE_FILE": "docker-compose.yml:deploy/compose/local.yml:tests/compose-test.yml",
        "COMPOSE_PROJECT_NAME": f"loglaketest{uuid.uuid4().hex[:6]}",
    }

    def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*client, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    def compose(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = run(*args, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"compose {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n{logs()}")
        return proc

    # Every service's whole log is kept here when the stack goes down, for a look after a failure.
    saved = Path(tempfile.gettempdir()) / f"{env['COMPOSE_PROJECT_NAME']}.log"

    def logs() -> str:
        return run("logs", "--no-color", "--tail", "15", timeout=120).stdout[-6000:] + f"\n(all of it: {saved})"

    compose.logs = logs  # type: ignore[attr-defined]
    try:
        compose("up", "-d")
        yield compose
    finally:
        saved.write_text(run("logs", "--no-color", "--timestamps", timeout=300).stdout)
        run("down", "-v", "--remove-orphans", timeout=300)
        project = env["COMPOSE_PROJECT_NAME"]
        left = subprocess.run(
            [str(docker_cli()), "volume", "ls", "-q", "--filter", f"name={project}_"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.split()
        assert not left, f"down -v left volumes {left}"


def test_the_stack_ingests_compacts_reports_and_erases(stack: Any, tmp_path: Path) -> None:
    logs = stack.logs
    send = (
        "import sys; from confluent_kafka import Producer; p = Producer({'bootstrap.servers': 'kafka:9092'}); "
        "p.produce(sys.argv[1], sys.argv[2].encode()); sys.exit(p.flush(30))"
    )
    # A message that is no log batch: quarantined on S3, the stream goes on.
    stack("run", "--rm", "--entrypoint", "python", "produce", "-c", send, "logs", "not a log batch")
    produced = stack(
        "run",
        "--rm",
        "produce",
        "produce",
        "--bootstrap-servers",
        "kafka:9092",
        "--topic",
        "logs",
        "--messages",
        str(MESSAGES),
    )
    report = json.loads(produced.stdout[produced.stdout.index("{") :])
    records = report["records"]

    # The ingest service writes every record into the table on the stack's S3 store.
    def all_rows() -> list[dict[str, Any]] | None:
        rows = read_hudi_rs(TABLE, S3).to_pylist()
        return rows if len(rows) == records else None

    rows = _wait(f"the table on S3 did not hold the {records} records produced", all_rows, 420, logs)
    assert len({r["record_key"] for r in rows}) == records
    quarantined = read_hudi_rs(f"{TABLE}_quarantine", S3).to_pylist()
    assert [r["raw_value"] for r in quarantined] == [b"not a log batch"]

    # Prometheus scrapes the ingest service by its compose name.
    def scraped() -> float | None:
        result = _prometheus('loglake_ingest_records_written_total{job="loglake-ingest"}')
        value = sum(float(r["value"][1]) for r in result)
        return value if value >= records else None

    assert _wait("Prometheus did not scrape the records written", scraped, 180, logs) == records

    # The compaction loop, started with the stack before the table existed, serviced it and pushed.
    def pushed() -> str | None:
        text = _get(f"{PUSHGATEWAY}/metrics")
        return text if "loglake_compaction_file_groups{" in text else None

    _wait("the Pushgateway had no compaction metrics", pushed, 300, logs)

    # An erasure request on the topic, then the gdpr profile's job: deleted, purged, verified.
    user = rows[0]["user_id"]
    theirs = sum(1 for r in rows if r["user_id"] == user)
    request = json.dumps({"request_id": "compose-1", "user_id": user})
    stack("run", "--rm", "--entrypoint", "python", "produce", "-c", send, "erasure-requests", request)
    erased = stack("--profile", "gdpr", "run", "--rm", "gdpr", timeout=900)
    result = json.loads(erased.stdout[erased.stdout.index("{") :])
    assert result["records_deleted"] == theirs > 0
    assert result["verification"]["clean"] is True
    assert result["completed_requests"] == ["compose-1"]
    left = read_hudi_rs(TABLE, S3).to_pylist()
    assert not [r for r in left if r["user_id"] == user]
    assert len(left) == records - theirs
    # The test's own raw search of every object in the bucket: tables, quarantine, ledger, checkpoints.
    assert _copy_bucket("lake", tmp_path / "lake") > 0
    assert raw_hits(str(tmp_path / "lake"), [user]) == 0
