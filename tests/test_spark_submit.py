"""The EMR entry point runs the same job under a real spark-submit (its own JVM, jars from flags)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyspark
import pytest
from builders import encode, expected_rows, make_batches, read_hudi_rs, send

from loglake import jars

pytestmark = pytest.mark.integration

ENTRY = Path(__file__).parents[1] / "deploy" / "emr" / "loglake_submit.py"


def test_spark_submit_entry_ingests(kafka_bootstrap: str, topic_factory: Any, tmp_path: Path) -> None:
    topic = topic_factory(partitions=2)
    batches = make_batches(40, seed=31)
    send(kafka_bootstrap, topic, [encode(b) for b in batches])
    table_path = tmp_path / "logs"
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    cmd = [
        str(spark_submit),
        "--master",
        "local[2]",
        "--driver-memory",
        "1g",
        "--conf",
        "spark.ui.enabled=false",
        # As on EMR: spark-submit brings the jars, loglake is told not to.
        "--jars",
        ",".join(str(p) for p in jars.resolve(jars.SPARK_JARS)),
        str(ENTRY),
        "ingest",
        "--once",
        "--table-path",
        str(table_path),
        "--bootstrap-servers",
        kafka_bootstrap,
        "--topic",
        topic,
        "--set",
        "spark.jars=provided",
        "--set",
        "metrics.port=0",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_hudi_rs(str(table_path)).to_pylist()
    assert {r["record_key"] for r in rows} == set(expected_rows(batches))
    assert len(rows) == len(expected_rows(batches))
