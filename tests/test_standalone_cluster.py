"""The ingest job submitted as on EMR, to a Spark standalone cluster: a master and two workers, each its own JVM.

The cluster is started with PySpark's own ``spark-class`` (no local mode anywhere), and the job with
``spark-submit`` and the EMR entry point (``deploy/emr/loglake_submit.py``), the jars given by
``--jars`` and loglake told not to bring its own. Executors run in the workers' JVMs and fetch the
jars from the driver, so a write path that depended on driver-only state (a static, a local object,
a file only the driver can see) would fail or lose rows here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import encode, expected_rows, make_batches, normalize, read_hudi_rs, send

from loglake import jars

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENTRY = Path(__file__).parents[1] / "deploy" / "emr" / "loglake_submit.py"


def _spark_bin(name: str) -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / name)


def _state(ui: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{ui}/json/", timeout=5) as r:  # noqa: S310 - 127.0.0.1
        state: dict[str, Any] = json.loads(r.read().decode())
    return state


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """spark://host:port of a master with two 1-core workers, and the master's web UI URL."""
    from conftest import free_port

    env = {**os.environ, "SPARK_LOG_DIR": str(tmp_path / "logs"), "SPARK_WORKER_DIR": str(tmp_path / "work")}
    port, ui_port = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    ui = f"http://127.0.0.1:{ui_port}"
    log = (tmp_path / "cluster.log").open("wb")
    procs = [
        subprocess.Popen(
            [
                _spark_bin("spark-class"),
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _state(ui)
                break
            except OSError:
                assert time.monotonic() < deadline, "the Spark master did not start"
                time.sleep(0.5)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        _spark_bin("spark-class"),
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "1",
                        "--memory",
                        "1g",
                        "--webui-port",
                        str(free_port()),
                        master,
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        while len([w for w in _state(ui)["workers"] if w["state"] == "ALIVE"]) < 2:
            assert time.monotonic() < deadline, "the two Spark workers did not register"
            time.sleep(0.5)
        yield master, ui
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        log.close()


def _failure(output: str, work: Path) -> str:
    """What a failed submit said: its exception lines (a JVM stack's frames hide them from a tail),
    its last lines, and the end of each executor's stderr, where a task's own error lands."""
    causes = [
        line for line in output.splitlines() if ("Error" in line or "Exception" in line) and not line.startswith("\t")
    ]
    executors = "".join(
        f"\n--- {log.relative_to(work)}:\n{log.read_text(errors='replace')[-1500:]}"
        for log in sorted(work.glob("app-*/*/stderr"))
    )
    return "\n".join(causes[:20]) + "\n--- last lines:\n" + output[-1500:] + executors


def test_spark_submit_to_a_standalone_cluster_writes_every_record_once(
    kafka_bootstrap: str, topic_factory: Any, standalone: tuple[str, str], tmp_path: Path
) -> None:
    master, ui = standalone
    topic = topic_factory(partitions=2)
    batches = make_batches(60, seed=101, records=(5, 12))
    send(kafka_bootstrap, topic, [encode(b) for b in batches] + [b"not avro"])
    table = tmp_path / "logs"
    config = tmp_path / "loglake.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic, "max_offsets_per_trigger": 25},
                "table": {"path": str(table)},
                "metrics": {"port": 0},
                # As on EMR: spark-submit brings the jars, loglake is told not to.
                "spark": {"jars": "provided", "conf": {"spark.sql.shuffle.partitions": "4"}},
            }
        )
    )
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    spark_jars = jars.resolve(jars.SPARK_JARS)
    # Only --jars, as an EMR step passes them: Hudi 1.0 also needed the bundle on the JVMs' own class
    # path (its delete-block reader failed on executors with a ClassCastException, HUDI-9119), which
    # Hudi 1.1 fixed.
    command = [
        _spark_bin("spark-submit"),
        "--master",
        master,
        "--driver-memory",
        "1g",
        "--executor-memory",
        "768m",
        "--executor-cores",
        "1",
        "--conf",
        "spark.ui.enabled=false",
        "--jars",
        ",".join(str(p) for p in spark_jars),
        str(ENTRY),
        "ingest",
        "--config",
        str(config),
        "--once",
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    # spark-submit merges the Python driver's stderr into its stdout: its error line and log are
    # there, and the report is the last JSON there.
    assert proc.returncode == 0, _failure(proc.stdout + proc.stderr, tmp_path / "work")
    report = json.loads(proc.stdout[proc.stdout.rindex("\n{\n") :])
    expected = expected_rows(batches)
    assert report["records_written"] == len(expected) and report["rows_quarantined"] == 1
    assert report["batches"] >= 3
    got = {r["record_key"]: normalize(r) for r in read_hudi_rs(str(table)).to_pylist()}
    assert got == expected

    # The application ran on the cluster: two executors in the workers' JVMs did the work.
    apps = _state(ui)["completedapps"]
    assert [a["name"] for a in apps] == ["loglake-ingest[logs]"], apps
    executor_dirs = list((tmp_path / "work").glob("app-*/*"))
    assert len(executor_dirs) >= 2, executor_dirs
