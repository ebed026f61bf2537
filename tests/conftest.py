"""Session-scoped Spark and Kafka, and factories for topics, tables and settings.

One SparkSession (local[2], modest memory) and one real KRaft broker serve the whole session; each
test gets its own topic and table folder, so tests stay independent without paying for new JVMs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from loglake.settings import Settings, load_settings

# Every Spark driver the suite starts (its own session and the CLI processes it runs) compiles with C1
# only: a test JVM lives minutes, too short to repay C2's compile time. Measured on the exactly-once
# test: its four CLI drivers used 142 -> 68 CPU-s and the session's 151 -> 103, the test 215 -> 200 s.
# And it collects with the serial GC: on two cores G1's concurrent work competes with the test's
# other JVMs; test_ingest_job.py's session driver used 103 -> 91 CPU-s (the module 127 -> 121 s).
# SPARK_SUBMIT_OPTS reaches the driver without changing the Spark settings under test.
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")

# Spark settings for tests: small and quick. The ingest job itself uses the same session.
TEST_SPARK_CONF = [
    "spark.master=local[2]",
    "spark.driver.memory=2g",
    "spark.sql.shuffle.partitions=4",
    "spark.default.parallelism=4",
    "spark.ui.enabled=false",
    "spark.sql.streaming.stopTimeout=30s",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    command: list[str], log: Path, ready_url: str, what: str, timeout: float = 60, any_answer: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process until the block ends, once ``ready_url`` answers 200 (or, with
    ``any_answer``, any HTTP status: an S3 gateway refuses anonymous requests when it is up)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:  # noqa: S310 - 127.0.0.1 only
                    if r.status == 200:
                        break
            except urllib.error.HTTPError:
                if any_answer:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# The order ``make test`` hands modules to its two workers (each takes the next when it runs dry):
# the longest first, measured on 2 cores, so that no long module starts last and runs on alone, except
# that the modules needing Trino or the images come a few minutes in, when tests/warmup.py has them.
# Modules not named follow, those with a slow test first.
MODULE_ORDER = (
    "test_gdpr_erasure.py",
    "test_compaction.py",
    "test_ingest_resilience.py",
    "test_gdpr_concurrency.py",
    "test_catalog.py",
    "test_compose_stack.py",
    "test_gdpr_job.py",
    "test_exactly_once.py",
    "test_schema_registry.py",
    "test_standalone_cluster.py",
    "test_ingest_job.py",
    "test_ingest_parse.py",
    "test_custom_log_schema.py",
    "test_dashboards.py",
    "test_trino_server.py",
    "test_custom_shape_commands.py",
    "test_metastore_server.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whole modules in ``MODULE_ORDER``, each keeping its own order of tests."""
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}

    def position(item: pytest.Item) -> tuple[int, bool]:
        name = item.path.name
        return (MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER), item.path not in slow_modules)

    items.sort(key=position)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Start tests/warmup.py for what the collected tests will need (servers' archives, images),
    once per run (``make test``'s workers both collect): it fetches beside the first tests."""
    fixtures = set().union(*(item.fixturenames for item in session.items)) if session.items else set()
    needs = [need for fixture, need in WARMUP if fixture in fixtures]
    if any(item.get_closest_marker("docker") for item in session.items):
        needs.append("images")
    if not needs or session.config.option.collectonly:
        return
    workerinput = getattr(session.config, "workerinput", None)
    run = workerinput["testrunuid"] if workerinput else uuid.uuid4().hex
    log = Path(tempfile.gettempdir()) / f"loglake-warmup-{run}.log"
    try:
        fd = os.open(log, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return  # the other worker started it
    with os.fdopen(fd, "wb") as out:
        # Its own session: it outlives the worker that started it if that one finishes first.
        subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("warmup.py")), *needs],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


# Which fixture needs which download of tests/warmup.py.
WARMUP = (("schema_registry", "registry"), ("hive_metastore", "metastore"), ("trino", "trino"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's own LOGLAKE_* variables out (the jar cache location is kept)."""
    for key in list(os.environ):
        if key.startswith("LOGLAKE_") and key != "LOGLAKE_HOME":
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from loglake.spark import get_spark

    warehouse = tmp_path_factory.mktemp("warehouse")
    settings = load_settings(assignments=[*TEST_SPARK_CONF, f"spark.sql.warehouse.dir={warehouse}"])
    session = get_spark(settings, app_name="loglake-tests")
    yield session
    session.stop()


# The session's broker: the process loglake's own code starts (default), or the same broker jars as a
# container through testcontainers (LOGLAKE_TEST_KAFKA=container; needs a Docker engine). Read at
# import: the autouse fixture below hides LOGLAKE_* variables from the tests.
KAFKA_MODE = os.environ.get("LOGLAKE_TEST_KAFKA", "process")
if KAFKA_MODE not in ("process", "container"):
    raise pytest.UsageError(f"LOGLAKE_TEST_KAFKA={KAFKA_MODE!r}: expected process or container")


@pytest.fixture
def cli(spark: Any) -> Callable[..., Any]:
    """``cli("gdpr", "purge", ...)``: the loglake command in this process on the session's Spark (see
    ``cli_support``); for tests about a report, an exit code or a one-line error."""
    from cli_support import run_cli

    return run_cli


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real single-node KRaft broker on 127.0.0.1: a process started by the project's own code, or
    (LOGLAKE_TEST_KAFKA=container) a container of the local Kafka image."""
    from devservers import kafka_broker

    if KAFKA_MODE == "container":
        from docker_support import kafka_container

        with kafka_container(free_port()) as bootstrap:
            yield bootstrap
        return
    data = tmp_path_factory.mktemp("kafka")
    bootstrap = kafka_broker.start(port=free_port(), data_dir=data)
    yield bootstrap
    kafka_broker.stop(data_dir=data)


@pytest.fixture(scope="session")
def schema_registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of the session's schema registry (pid file, config, log, database)."""
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="session")
def schema_registry(schema_registry_dir: Path) -> Iterator[str]:
    """A real schema registry (Apicurio, Confluent-compatible API) on 127.0.0.1, started by the
    project's own code; yields its base URL, ``http://127.0.0.1:<port>/apis/ccompat/v7``."""
    from devservers import registry_server

    url = registry_server.start(port=free_port(), data_dir=schema_registry_dir)
    yield url
    registry_server.stop(data_dir=schema_registry_dir)


@pytest.fixture(scope="session")
def hive_metastore_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of the session's Hive metastore (pid file, config, logs, Derby database, warehouse)."""
    return tmp_path_factory.mktemp("metastore")


@pytest.fixture(scope="session")
def hive_metastore(hive_metastore_dir: Path) -> Iterator[str]:
    """A real Hive Metastore (standalone 3.1.3, Derby in its data folder), started by the project's
    own code; yields its thrift URI, ``thrift://127.0.0.1:<port>``. It listens on every interface
    (Hive 3.1 cannot be told to bind 127.0.0.1 only)."""
    from devservers import metastore_server

    uri = metastore_server.start(port=free_port(), data_dir=hive_metastore_dir)
    yield uri
    metastore_server.stop(data_dir=hive_metastore_dir)


@pytest.fixture(scope="session")
def trino(hive_metastore: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Trino 476 on 127.0.0.1 with a ``hudi`` catalog over the session's metastore: the tests' stand-in
    for Athena (tests/trino_server.py). Yields a ``TrinoServer``: ``trino.query(sql)`` returns the rows
    as tuples. The first use fetches the server (820 MB); it starts in about 20 s and holds 0.5-0.7 GB."""
    import trino_server

    server = trino_server.start(tmp_path_factory.mktemp("trino"), hive_metastore)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus Pushgateway (Debian's prometheus-pushgateway) on 127.0.0.1; yields host:port."""
    import shutil

    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if binary is None:
        pytest.fail("prometheus-pushgateway is not installed: run `make system` (deploy/local/system-deps.sh)")
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: a gateway started
    # by one test session would then serve the metrics of the previous one, and tests would pass
    # on stale pushes. An empty file name turns persistence off.
    command = [binary, f"--web.listen-address={address}", "--persistence.file="]
    with serving(command, log, f"http://{address}/-/ready", "pushgateway", timeout=30):
        yield address


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Callable[..., str]:
    from devservers import kafka_broker

    def make(partitions: int = 2) -> str:
        name = f"logs-{uuid.uuid4().hex[:10]}"
        kafka_broker.create_topic(kafka_bootstrap, name, partitions=partitions)
        return name

    return make


@pytest.fixture
def settings_factory(tmp_path: Path, kafka_bootstrap: str) -> Callable[..., Settings]:
    """Settings for one test: its own table folder, the session broker, no metrics port."""

    def make(topic: str, *assignments: str, **overrides: Any) -> Settings:
        base = {
            "table.path": str(tmp_path / "logs"),
            "kafka.bootstrap_servers": kafka_bootstrap,
            "kafka.topic": topic,
            "metrics.port": 0,
        }
        base.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_settings(overrides=base, assignments=[*TEST_SPARK_CONF, *assignments])

    return make
