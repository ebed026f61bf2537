"""Exactly once across crashes: the ingest process is really killed with SIGKILL, twice.

First kill: while a Hudi delta commit is inflight (a half-written batch that Hudi must roll back).
Second kill: right after a delta commit completes, before Spark can record the batch in its
checkpoint, so the restarted stream replays a batch that is already in the table.
Afterwards every produced record is in the table exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import encode, expected_rows, make_batches, normalize, read_hudi_rs, send

from ingest.job import run
from loglake.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _instants(table: Path) -> tuple[set[str], set[str]]:
    """(completed, inflight) delta-commit instants of a Hudi 1.x timeline."""
    folder = table / ".hoodie" / "timeline"
    if not folder.exists():
        return set(), set()
    names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    completed = {n.split("_")[0] for n in names if n.endswith(".deltacommit") and "_" in n}
    inflight = {n.split(".")[0] for n in names if n.endswith(".deltacommit.inflight")} - completed
    return completed, inflight


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ingest", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"ingest exited early ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the kill point never came:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_batch_and_after_commit_loses_and_duplicates_nothing(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=2)
    batches = make_batches(240, seed=31)
    send(kafka_bootstrap, topic, [encode(b) for b in batches])
    table = tmp_path / "logs"
    config = tmp_path / "ingest.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic, "max_offsets_per_trigger": 30},
                "table": {"path": str(table)},
                "ingest": {"trigger": "1 second"},
                "metrics": {"port": 0},
                "spark": {
                    "conf": {
                        "spark.master": "local[2]",
                        "spark.driver.memory": "1g",
                        "spark.ui.enabled": "false",
                        "spark.sql.shuffle.partitions": "4",
                    }
                },
            }
        )
    )
    log = tmp_path / "ingest.log"

    # Kill 1: a delta commit is inflight after at least one batch completed.
    proc = _start(config, log)
    _kill_when(proc, lambda: (lambda c, i: len(c) >= 1 and bool(i))(*_instants(table)), log)
    completed_before, inflight = _instants(table)
    assert inflight, "the kill must leave a half-written commit behind"

    # Kill 2: the moment the restarted stream completes a new delta commit.
    proc = _start(config, log)
    _kill_when(proc, lambda: len(_instants(table)[0]) > len(completed_before), log)

    # Restart once more and let it catch up (in this process, on the shared session). The batch the
    # second kill cut short is replayed as planned (its offsets are in the checkpoint); the rest comes
    # in one batch instead of thirty messages at a time.
    settings = load_settings(config, assignments=["kafka.max_offsets_per_trigger=10000"])
    run(settings, once=True)

    expected = expected_rows(batches)
    rows = read_hudi_rs(str(table)).to_pylist()
    keys = [r["record_key"] for r in rows]
    assert len(keys) == len(set(keys)), "a record is in the table twice"
    assert {r["record_key"]: normalize(r) for r in rows} == expected
    assert spark.read.format("hudi").load(str(table)).count() == len(expected)
