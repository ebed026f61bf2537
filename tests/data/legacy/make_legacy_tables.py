"""Build ``legacy-tables.tar.xz``: loglake tables as the Hudi 1.0.2 release of loglake left them.

    git worktree add /tmp/loglake-1.0.2 8f1befd      # the last commit on Hudi 1.0.2
    cd /tmp/loglake-1.0.2 && make setup
    PYTHONPATH=/tmp/loglake-1.0.2:/tmp/loglake-1.0.2/tests .venv/bin/python \\
        /path/to/loglake/tests/data/legacy/make_legacy_tables.py /path/to/loglake/tests/data/legacy/legacy-tables.tar.xz

Run with that checkout's code and jars (the imports below resolve there), never with the current one:
the point is tables written by the old writer. For table versions 8 (Hudi 1.0's default) and 6 (what
Athena reads), each a production table's state between two runs of the other jobs: 60 messages over
two days ingested in micro-batches of 10 by the stream (base files, then log files; after the fifth
delta commit the stream scheduled a compaction plan that nobody executed yet), one message
quarantined, and a GDPR delete of one subject that was not purged (delete blocks, and the ledger
holding the request as deleted). ``manifest.json`` lists what each table must hold.
"""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from builders import encode, expected_rows, make_batches, send
from conftest import TEST_SPARK_CONF, free_port

from devservers import kafka_broker
from gdpr.job import run_delete
from gdpr.requests import parse_text
from ingest.job import run
from loglake import jars
from loglake.settings import load_settings

DAY_MS = 86_400_000
SALT = "legacy-tables-salt"


def build(root: Path, bootstrap: str, version: int) -> dict[str, object]:
    topic = f"legacy-v{version}"
    kafka_broker.create_topic(bootstrap, topic, partitions=2)
    batches = make_batches(60, seed=80 + version, records=(5, 12))
    for i, b in enumerate(batches):
        for r in b["records"]:
            r["ts"] -= DAY_MS * (i % 2)
    payloads = [encode(b) for b in batches]
    payloads.append(payloads[0][:-7])  # truncated: quarantined with batch 0's raw bytes
    send(bootstrap, topic, payloads)
    settings = load_settings(
        overrides={
            "table.path": str(root / f"v{version}" / "logs"),
            "table.version": version,
            "kafka.bootstrap_servers": bootstrap,
            "kafka.topic": topic,
            "kafka.max_offsets_per_trigger": 10,
            "metrics.port": 0,
            "gdpr.ledger_salt": SALT,
        },
        assignments=TEST_SPARK_CONF,
    )
    result = run(settings, once=True)
    assert result.rows_quarantined == 1, result
    subject = next(r["user_id"] for r in batches[0]["records"] if r.get("user_id"))
    request = json.dumps({"request_id": f"legacy-v{version}", "user_id": subject})
    deleted = run_delete(settings, parse_text(request, "requests.jsonl"))
    expected = expected_rows(batches)
    doomed = {k for k, v in expected.items() if v["user_id"] == subject}
    assert deleted.records_deleted == len(doomed), deleted
    timeline = root / f"v{version}" / "logs" / ".hoodie"
    plans = [p.name for p in timeline.rglob("*.compaction.requested") if "metadata" not in p.parts]
    assert plans, "the stream scheduled no compaction plan"
    shutil.rmtree(root / f"v{version}" / "logs_checkpoints")
    return {
        "version": version,
        "topic": topic,
        "subject_user_id": subject,
        "request_id": f"legacy-v{version}",
        "pending_compaction_plans": sorted(plans),
        "rows": {k: v for k, v in expected.items() if k not in doomed},
        "deleted_keys": sorted(doomed),
    }


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    assert jars.HUDI_VERSION == "1.0.2", f"run from a checkout on Hudi 1.0.2, not {jars.HUDI_VERSION}"
    work = Path(tempfile.mkdtemp(prefix="legacy-tables-"))
    root = work / "legacy"
    bootstrap = kafka_broker.start(port=free_port(), data_dir=work / "kafka")
    try:
        manifest = {
            "hudi_version": jars.HUDI_VERSION,
            "salt": SALT,
            "tables": [build(root, bootstrap, v) for v in (8, 6)],
        }
    finally:
        kafka_broker.stop(data_dir=work / "kafka")
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
    with tarfile.open(out, "w:xz") as tar:
        tar.add(root, arcname="legacy")
    shutil.rmtree(work, ignore_errors=True)
    print(out, out.stat().st_size)


if __name__ == "__main__":
    main()
