"""The local Hive Metastore: real java, the real standalone metastore 3.1.3, Spark's Hive client against it.

The tests share the session's server (conftest ``hive_metastore``): a first start takes 10-15 s. Spark
talks to it once, in a subprocess (the suite's own SparkSession has no Hive catalogue, and a process
has one session). The restart test stops and starts that same server on its port, so it comes last.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from devservers import metastore_server
from loglake.errors import MetastoreError, SetupError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# A Spark application with the Hive catalogue at the given metastore: a database, a partitioned table
# with rows (which registers partitions), a pruned query (a partition filter sent to the metastore),
# and what Spark reads back, as JSON on the last line.
SPARK_CLIENT = """
import json, sys
from pyspark.sql import SparkSession

uri, warehouse, database = sys.argv[1:4]
spark = (
    SparkSession.builder.master("local[1]")
    .appName("metastore-client")
    .config("spark.sql.catalogImplementation", "hive")
    .config("spark.hadoop.hive.metastore.uris", uri)
    .config("spark.sql.warehouse.dir", warehouse)
    .config("spark.ui.enabled", "false")
    .getOrCreate()
)
spark.sql(f"CREATE DATABASE {database}")
spark.sql(f"CREATE TABLE {database}.events (id BIGINT, level STRING) USING parquet PARTITIONED BY (level)")
spark.sql(f"INSERT INTO {database}.events VALUES (1, 'info'), (2, 'warn'), (3, 'info')")
result = {
    "databases": sorted(r[0] for r in spark.sql("SHOW DATABASES").collect()),
    "tables": sorted(r.tableName for r in spark.sql(f"SHOW TABLES IN {database}").collect()),
    "partitions": sorted(r[0] for r in spark.sql(f"SHOW PARTITIONS {database}.events").collect()),
    "info_rows": spark.sql(f"SELECT count(*) FROM {database}.events WHERE level = 'info'").collect()[0][0],
    "default_location": {
        r.info_name: r.info_value for r in spark.sql("DESCRIBE DATABASE default").collect()
    }["Location"],
}
spark.stop()
print(json.dumps(result))
"""


def pid_of(data: Path) -> int:
    return int((data / metastore_server.PID_FILE).read_text())


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def port_of(uri: str) -> int:
    return int(uri.rsplit(":", 1)[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def spark_client(hive_metastore: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run :data:`SPARK_CLIENT` once against the session's metastore; its result and database name."""
    work = tmp_path_factory.mktemp("spark-client")
    database = f"probe_{uuid.uuid4().hex[:8]}"
    # Other modules of this worker may have registered databases in the session's metastore already.
    before = metastore_server.list_databases(hive_metastore)
    proc = subprocess.run(
        [sys.executable, "-c", SPARK_CLIENT, hive_metastore, str(work / "warehouse"), database],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=work,  # Spark's own leftovers (derby.log, spark-warehouse) stay out of the repo
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"database": database, "before": before, **json.loads(proc.stdout.strip().splitlines()[-1])}


def test_start_is_idempotent(hive_metastore: str, hive_metastore_dir: Path) -> None:
    assert hive_metastore == f"thrift://127.0.0.1:{port_of(hive_metastore)}"
    pid = pid_of(hive_metastore_dir)
    assert metastore_server.start(port=port_of(hive_metastore), data_dir=hive_metastore_dir) == hive_metastore
    assert pid_of(hive_metastore_dir) == pid
    # Another port asked for, same folder: the running server is adopted, not a second one started.
    assert metastore_server.start(port=1, data_dir=hive_metastore_dir) == hive_metastore
    assert pid_of(hive_metastore_dir) == pid
    assert (hive_metastore_dir / metastore_server.SCHEMA_MARKER).is_file()


def test_spark_creates_a_database_and_a_partitioned_table_through_it(
    spark_client: dict[str, Any], hive_metastore: str, hive_metastore_dir: Path
) -> None:
    database = spark_client["database"]
    assert "default" in spark_client["before"]
    assert spark_client["databases"] == sorted([*spark_client["before"], database])
    assert spark_client["tables"] == ["events"]
    assert spark_client["partitions"] == ["level=info", "level=warn"]
    assert spark_client["info_rows"] == 2
    # The default database lives in the data folder's warehouse.
    assert urlparse(spark_client["default_location"]).path == str(hive_metastore_dir / metastore_server.WAREHOUSE_DIR)
    # The same catalogue, read by loglake's own thrift calls.
    assert database in metastore_server.list_databases(hive_metastore)
    assert metastore_server.list_tables(hive_metastore, database) == ["events"]
    assert metastore_server.list_tables(hive_metastore, "no_such_database") == []


def test_list_databases_names_a_metastore_that_does_not_answer() -> None:
    uri = f"thrift://127.0.0.1:{free_port()}"
    with pytest.raises(MetastoreError, match=re.escape(f"no Hive metastore answers at {uri}")):
        metastore_server.list_databases(uri, timeout=2)
    with pytest.raises(MetastoreError, match=re.escape("'http://127.0.0.1:9083' is not a metastore URI")):
        metastore_server.list_databases("http://127.0.0.1:9083")


@pytest.mark.parametrize("squatter_host", ["127.0.0.1", "::1"])
def test_start_fails_clearly_when_the_port_is_taken(tmp_path: Path, squatter_host: str) -> None:
    family = socket.AF_INET6 if ":" in squatter_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as squatter:
        try:
            squatter.bind((squatter_host, 0))
        except OSError:
            pytest.skip(f"no {squatter_host} on this machine")
        squatter.listen()
        port = squatter.getsockname()[1]
        # The server would bind every interface: a listener on any one address takes the port.
        with pytest.raises(MetastoreError, match=f"port {port} is already in use .* listens on every interface"):
            metastore_server.start(port=port, data_dir=tmp_path / "metastore")
    assert not (tmp_path / "metastore" / metastore_server.PID_FILE).exists()


def test_stop_without_a_server_returns_false(tmp_path: Path) -> None:
    assert metastore_server.stop(data_dir=tmp_path / "never-started") is False
    data = tmp_path / "stale"
    data.mkdir()
    (data / metastore_server.PID_FILE).write_text(f"{2**22 + 1}\n")  # above Linux's pid_max: no such process
    assert metastore_server.stop(data_dir=data) is False
    assert not (data / metastore_server.PID_FILE).exists()


def test_an_interrupted_schema_creation_is_redone(tmp_path: Path) -> None:
    data = tmp_path / "metastore"
    (data / metastore_server.DB_DIR).mkdir(parents=True)
    (data / metastore_server.DB_DIR / "service.properties").write_text("half a Derby database\n")
    try:
        uri = metastore_server.start(port=free_port(), data_dir=data)
        assert metastore_server.list_databases(uri) == ["default"]
        assert (data / metastore_server.SCHEMA_MARKER).is_file()
    finally:
        metastore_server.stop(data_dir=data)


def test_java_newer_than_22_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"25.0.2\" 2026-01-20 LTS' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(SetupError, match=r"JAVA_HOME=.* is Java 25; the Hive metastore runs on Java 8 to 22"):
        metastore_server.find_java()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nothing"))
    with pytest.raises(SetupError, match=r"JAVA_HOME=.*nothing does not run"):
        metastore_server.find_java()


def test_cli_stop_and_start_again_keeps_the_catalogue(
    spark_client: dict[str, Any], hive_metastore: str, hive_metastore_dir: Path
) -> None:
    database = spark_client["database"]
    pid = pid_of(hive_metastore_dir)
    cli = [sys.executable, "-m", "app.cli", "metastore"]
    env = {**os.environ, "PYTHONWARNINGS": "error"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, timeout=180, cwd=REPO, env=env)

    stopped = run("stop", "--data", str(hive_metastore_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "stopped"
    assert not process_exists(pid)
    assert not (hive_metastore_dir / metastore_server.PID_FILE).exists()
    assert run("stop", "--data", str(hive_metastore_dir)).stdout.strip() == (
        "no Hive metastore running for that data folder"
    )

    started = run("start", "--port", str(port_of(hive_metastore)), "--data", str(hive_metastore_dir))
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == hive_metastore
    # The server outlives the command that started it.
    assert process_exists(pid_of(hive_metastore_dir))
    assert pid_of(hive_metastore_dir) != pid
    # The catalogue is in the data folder's Derby database, which a restart neither loses nor recreates.
    assert database in metastore_server.list_databases(hive_metastore)
    assert metastore_server.list_tables(hive_metastore, database) == ["events"]
