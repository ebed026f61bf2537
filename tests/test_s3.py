"""Ingest and erasure against a real S3-compatible store (SeaweedFS on 127.0.0.1) through s3a://.

Both jobs run as their own processes, as on a cluster: the s3a jars (hadoop-aws of PySpark's Hadoop,
and the AWS SDK bundle) are added to their Spark session because the configured paths are s3a://.
The table is read back from S3 with hudi-rs (no Spark), and the erasure is checked by copying every
object of both tables to disk and searching them raw.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from builders import encode, expected_rows, make_batches, normalize, raw_hits, read_hudi_rs, s3_options, send
from pyarrow import fs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _hudi_rs(store: dict[str, str], uri: str) -> list[dict[str, Any]]:
    options = s3_options(store["endpoint"], store["access_key"], store["secret_key"])
    rows: list[dict[str, Any]] = read_hudi_rs(uri, options).to_pylist()
    return rows


def _download(store: dict[str, str], prefix: str, target: Path) -> int:
    s3 = fs.S3FileSystem(
        access_key=store["access_key"],
        secret_key=store["secret_key"],
        endpoint_override=store["endpoint"].removeprefix("http://"),
        scheme="http",
        region="us-east-1",
    )
    infos = s3.get_file_info(fs.FileSelector(f"{store['bucket']}/{prefix}", recursive=True))
    files = [i for i in infos if i.type == fs.FileType.File]
    for info in files:
        local = target / info.path
        local.parent.mkdir(parents=True, exist_ok=True)
        with s3.open_input_stream(info.path) as stream:
            local.write_bytes(stream.read())
    return len(files)


def test_ingest_and_erasure_on_an_s3_compatible_store(
    kafka_bootstrap: str, topic_factory: Any, s3_store: dict[str, str], tmp_path: Path
) -> None:
    topic = topic_factory(partitions=2)
    batches = make_batches(40, seed=91, records=(5, 10))
    send(kafka_bootstrap, topic, [encode(b) for b in batches] + [b"\x00 not a log batch"])
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    table = f"s3a://{s3_store['bucket']}/{prefix}/logs"
    config = tmp_path / "loglake.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic},
                "table": {"path": table},
                "metrics": {"port": 0},
                "spark": {
                    "conf": {
                        "spark.master": "local[2]",
                        "spark.driver.memory": "1g",
                        "spark.ui.enabled": "false",
                        "spark.hadoop.fs.s3a.endpoint": s3_store["endpoint"],
                        "spark.hadoop.fs.s3a.path.style.access": "true",
                        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
                        "spark.hadoop.fs.s3a.access.key": s3_store["access_key"],
                        "spark.hadoop.fs.s3a.secret.key": s3_store["secret_key"],
                    }
                },
                # Writers lock through a local folder: S3 has no atomic create-if-absent for a lock file.
                "hoodie": {"hoodie.write.lock.filesystem.path": f"file://{tmp_path / 'locks'}"},
            }
        )
    )

    def cli(*args: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        report: dict[str, Any] = json.loads(proc.stdout[proc.stdout.index("{") :])
        return report

    ingested = cli("ingest", "--once")
    expected = expected_rows(batches)
    assert ingested["records_written"] == len(expected) and ingested["rows_quarantined"] == 1
    s3_uri = table.replace("s3a://", "s3://")
    got = {r["record_key"]: normalize(r) for r in _hudi_rs(s3_store, s3_uri)}
    assert got == expected
    assert len(_hudi_rs(s3_store, f"{s3_uri}_quarantine")) == 1

    user = batches[0]["records"][0]["user_id"]
    doomed = {k for k, v in expected.items() if v["user_id"] == user}
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"request_id": "s3-1", "user_id": user}) + "\n")
    report = cli("gdpr", "purge", "--requests", str(requests))
    assert report["records_deleted"] == len(doomed) > 0
    assert report["verification"]["clean"] and report["verification"]["files_scanned"] > 0

    after = {r["record_key"]: normalize(r) for r in _hudi_rs(s3_store, s3_uri)}
    assert after == {k: v for k, v in expected.items() if k not in doomed}
    # The test's own raw check of every object under the prefix (tables, quarantine, ledger).
    copied = tmp_path / "copy"
    assert _download(s3_store, prefix, copied) > 0
    assert raw_hits(str(copied), [user]) == 0
