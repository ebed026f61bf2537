"""GDPR erasure on a real table: real Kafka -> ingest -> Hudi, then delete, purge and verify.

The checking side reads the files itself (pyarrow for Parquet, including the Parquet blocks inside
Hudi log files, and a byte search of everything), never the job's own report.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from builders import encode, expected_rows, make_batches, normalize, raw_hits, read_hudi_rs, send

from gdpr.job import run_delete
from gdpr.requests import parse_text
from ingest.job import run
from loglake.errors import TableError
from loglake.settings import Settings

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def source_table(
    spark: Any, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, dict[str, Any]], list[dict[str, Any]], str]:
    """A log table of three days, written by the ingest job over several commits, with quarantine rows."""
    from conftest import TEST_SPARK_CONF

    from devservers import kafka_broker
    from loglake.settings import load_settings

    topic = f"gdpr-{tmp_path_factory.mktemp('t').name}"
    kafka_broker.create_topic(kafka_bootstrap, topic, partitions=2)
    batches = make_batches(90, seed=41, records=(5, 12))
    for i, b in enumerate(batches):
        shift = DAY_MS if i % 3 == 1 else (2 * DAY_MS if i % 3 == 2 else 0)
        for r in b["records"]:
            r["ts"] -= shift
    payloads = [encode(b) for b in batches]
    # A truncated copy of batch 0: quarantined with its raw bytes, which hold batch 0's identifiers.
    payloads.append(payloads[0][: len(payloads[0]) - 7])
    send(kafka_bootstrap, topic, payloads, partition=0)
    root = tmp_path_factory.mktemp("gdpr-source")
    settings = load_settings(
        overrides={
            "table.path": str(root / "logs"),
            "kafka.bootstrap_servers": kafka_bootstrap,
            "kafka.topic": topic,
            "kafka.max_offsets_per_trigger": 35,
            "metrics.port": 0,
        },
        assignments=TEST_SPARK_CONF,
    )
    result = run(settings, once=True)
    assert result.batches >= 3 and result.rows_quarantined == 1
    return root, expected_rows(batches), batches, topic


@pytest.fixture
def table_copy(source_table: Any, tmp_path: Path, kafka_bootstrap: str) -> tuple[Settings, dict[str, Any]]:
    """A private copy of the source table (and its quarantine) for one test to delete from."""
    from conftest import TEST_SPARK_CONF

    from loglake.settings import load_settings

    root, expected, _, topic = source_table
    for name in ("logs", "logs_quarantine"):
        shutil.copytree(root / name, tmp_path / name)
    settings = load_settings(
        overrides={
            "table.path": str(tmp_path / "logs"),
            "kafka.bootstrap_servers": kafka_bootstrap,
            "kafka.topic": topic,
            "metrics.port": 0,
        },
        assignments=TEST_SPARK_CONF,
    )
    return settings, dict(expected)


def _subjects(expected: dict[str, dict[str, Any]], batches: list[dict[str, Any]]) -> dict[str, str]:
    """One identifier of each kind, of different people, each held by records in the table."""
    first = batches[0]["records"]
    user = first[0]["user_id"]
    email = next(r["email"] for r in first if r["user_id"] != user and r["email"])
    ip_owner = next(r for b in batches[1:] for r in b["records"] if r["user_id"] not in (user,) and r["client_ip"])
    key = next(k for k, v in expected.items() if v["user_id"] not in (user,) and v["email"] != email)
    return {"user_id": user, "email": email, "client_ip": ip_owner["client_ip"], "record_key": key}


def _doomed(expected: dict[str, dict[str, Any]], subjects: dict[str, str]) -> set[str]:
    return {
        k
        for k, v in expected.items()
        if k == subjects["record_key"] or any(v[c] == subjects[c] for c in ("user_id", "email", "client_ip"))
    }


def _requests(subjects: dict[str, str]) -> str:
    import json

    return "\n".join(json.dumps({"request_id": f"req-{kind}", kind: value}) for kind, value in subjects.items())


def test_delete_each_identifier_kind_purge_and_prove_no_raw_copy_is_left(
    spark: Any, source_table: Any, table_copy: Any
) -> None:
    settings, expected = table_copy
    subjects = _subjects(expected, source_table[2])
    doomed = _doomed(expected, subjects)
    path = settings.table.path
    identifiers = [subjects["user_id"], subjects["email"], subjects["client_ip"]]
    assert raw_hits(path, identifiers) > 0  # the check below can fail: before, the values are there
    assert raw_hits(settings.table.effective_quarantine_path, [subjects["user_id"]]) > 0

    result = run_delete(settings, parse_text(_requests(subjects), "requests.jsonl"), do_purge=True)

    assert result.requests == 4 and not result.rejected
    assert result.records_deleted == result.record_keys_found == len(doomed)
    assert 0 < result.file_groups_touched < result.file_groups_total
    # Independent readers: Spark and hudi-rs see every other record, and none of the erased ones.
    remaining = {k: v for k, v in expected.items() if k not in doomed}
    got = {r["record_key"]: normalize(r) for r in read_hudi_rs(path).to_pylist()}
    assert got == remaining
    assert spark.read.format("hudi").load(path).count() == len(remaining)
    # Physically gone: no file under the table or its quarantine holds an identifier, read raw.
    assert raw_hits(path, identifiers) == 0
    assert raw_hits(settings.table.effective_quarantine_path, identifiers) == 0
    assert result.verification is not None
    assert result.verification["clean"] is True, result.verification["hit_list"]
    assert result.quarantine_rows_redacted == 1
    assert result.purge is not None and result.purge["partitions_pending"] == []
    # Raw copies stay in the topic the records came from until its retention ends; the report says when.
    assert result.kafka_copies is not None
    assert [c["topic"] for c in result.kafka_copies] == [settings.kafka.topic]
    assert result.kafka_copies[0]["retention_ms"] > 0
    # The ledger proves the erasure without holding the identifiers.
    ledger = {r["request_id"]: r for r in spark.read.format("hudi").load(settings.ledger_path).collect()}
    assert set(ledger) == {f"req-{k}" for k in subjects}
    assert all(r["status"] == "verified" and r["verified"] for r in ledger.values())
    # The request's life, each step with its time.
    for r in ledger.values():
        assert r["received_at"] <= r["deleted_at"] <= r["purged_at"] <= r["verified_at"] == r["completed_at"]
    assert sorted(result.completed_requests) == sorted(ledger)
    assert ledger["req-record_key"]["records_deleted"] == 1
    assert raw_hits(settings.ledger_path, identifiers) == 0


def test_dry_run_reports_and_deletes_nothing(spark: Any, source_table: Any, table_copy: Any) -> None:
    settings, expected = table_copy
    subjects = _subjects(expected, source_table[2])
    path = Path(settings.table.path)
    before = sorted(p.name for p in (path / ".hoodie" / "timeline").iterdir())

    result = run_delete(settings, parse_text(_requests(subjects), "r.jsonl"), dry_run=True)

    assert result.dry_run and result.records_deleted == 0
    assert result.record_keys_found == len(_doomed(expected, subjects))
    assert sum(p["records"] for p in result.partitions.values()) >= result.record_keys_found
    assert sorted(p.name for p in (path / ".hoodie" / "timeline").iterdir()) == before
    assert len(read_hudi_rs(str(path))) == len(expected)
    assert not Path(settings.ledger_path).exists()


def test_rerun_is_idempotent_and_bad_lines_are_reported(spark: Any, source_table: Any, table_copy: Any) -> None:
    settings, expected = table_copy
    subjects = _subjects(expected, source_table[2])
    text = "request_id,user_id,email\nr1," + subjects["user_id"] + ",\nr2,,\n,u-1,\nr3,a,b@c\n"

    first = run_delete(settings, parse_text(text, "r.csv"))
    second = run_delete(settings, parse_text(text, "r.csv"))

    assert [r["source"] for r in first.rejected] == ["r.csv:3", "r.csv:4", "r.csv:5"]
    assert "no identifier" in first.rejected[0]["reason"]
    n = sum(1 for v in expected.values() if v["user_id"] == subjects["user_id"])
    assert first.records_deleted == n > 0
    assert second.records_deleted == 0 and second.record_keys_found == 0
    ledger = spark.read.format("hudi").load(settings.ledger_path).collect()
    assert [(r["request_id"], r["records_deleted"], r["status"]) for r in ledger] == [("r1", n, "deleted")]
    assert len(read_hudi_rs(settings.table.path)) == len(expected) - n


def test_wrong_table_path_fails_and_deletes_nothing(table_copy: Any, tmp_path: Path) -> None:
    settings, _ = table_copy
    wrong = settings.model_copy(update={"table": settings.table.model_copy(update={"path": str(tmp_path / "nope")})})
    with pytest.raises(TableError, match="nope"):
        run_delete(wrong, parse_text('{"request_id": "r", "user_id": "u"}', "r.jsonl"))
    assert not (tmp_path / "nope_gdpr_ledger").exists()


def test_expire_drops_only_partitions_older_than_the_limit(spark: Any, table_copy: Any) -> None:
    from datetime import date

    from gdpr.expire import run_expire

    settings, expected = table_copy
    path = Path(settings.table.path)
    days = sorted({v["event_date"] for v in expected.values()})
    assert len(days) == 3
    newest = date.fromisoformat(days[-1])

    dry = run_expire(settings, 1, dry_run=True, today=newest)
    assert dry.partitions_dropped == [f"event_date={days[0]}"] and dry.files_cleaned == 0
    assert len(read_hudi_rs(str(path))) == len(expected)

    result = run_expire(settings, 1, today=newest)  # keep yesterday and today

    assert result.partitions_dropped == [f"event_date={days[0]}"]
    assert result.partitions_kept == 2
    kept = {k: v for k, v in expected.items() if v["event_date"] != days[0]}
    got = {r["record_key"]: normalize(r) for r in read_hudi_rs(str(path)).to_pylist()}
    assert got == kept
    assert spark.read.format("hudi").load(str(path)).count() == len(kept)
    # The dropped day's data files are gone from storage, not only from the view.
    leftovers = [p for p in (path / f"event_date={days[0]}").glob("*") if p.suffix == ".parquet" or ".log." in p.name]
    assert leftovers == []


def test_cli_reads_requests_from_kafka_and_exit_code_says_some_were_rejected(
    cli: Any, source_table: Any, table_copy: Any, kafka_bootstrap: str, pushgateway: str, tmp_path: Path
) -> None:
    import json

    from devservers import kafka_broker

    settings, expected = table_copy
    user = _subjects(expected, source_table[2])["user_id"]
    topic = f"erasure-{tmp_path.name[-8:]}"
    kafka_broker.create_topic(kafka_bootstrap, topic, partitions=1)
    send(kafka_bootstrap, topic, [json.dumps({"request_id": "k1", "user_id": user}).encode(), b"{oops"])
    config = tmp_path / "gdpr.yaml"
    config.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap_servers": kafka_bootstrap, "topic": settings.kafka.topic},
                "table": {"path": settings.table.path},
                "spark": {"conf": {"spark.master": "local[1]", "spark.ui.enabled": "false"}},
            }
        )
    )
    command = ["gdpr", "delete", "--config", str(config), "--requests-topic", topic]

    first = cli(*command, "--pushgateway", pushgateway)
    assert first.returncode == 3, first.stderr[-3000:]
    report = json.loads(first.stdout[first.stdout.index("{") :])
    assert report["rejected"] == [{"source": f"{topic}[0]@1", "reason": report["rejected"][0]["reason"]}]
    n = sum(1 for v in expected.values() if v["user_id"] == user)
    assert report["records_deleted"] == n > 0
    assert len(read_hudi_rs(settings.table.path)) == len(expected) - n
    # The transient job pushed its figures to the real Pushgateway, grouped by job and table.
    import urllib.request

    with urllib.request.urlopen(f"http://{pushgateway}/metrics", timeout=10) as r:
        pushed = r.read().decode()
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        (sample.name, sample.labels.get("outcome")): (sample.labels, sample.value)
        for family in text_string_to_metric_families(pushed)
        for sample in family.samples
        if sample.name.startswith("loglake_gdpr_")
    }
    labels, value = samples[("loglake_gdpr_records_deleted", None)]
    assert value == n and labels["job"] == "loglake_gdpr" and labels["table"] == "logs"
    assert samples[("loglake_gdpr_requests", "rejected")][1] == 1
    assert samples[("loglake_gdpr_requests", "accepted")][1] == 1
    assert samples[("loglake_gdpr_last_success_timestamp_seconds", None)][1] > 0
    # Deleted without --purge: the request is done ("deleted"), so nothing is left in the ledger's backlog.
    assert report["ledger_backlog"] == 0 and samples[("loglake_gdpr_ledger_backlog", None)][1] == 0

    # Offsets were committed after the run: a second run finds no new request.
    second = cli(*command)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout[second.stdout.index("{") :])["requests"] == 0


def test_purge_refuses_while_a_savepoint_pins_old_files(spark: Any, source_table: Any, table_copy: Any) -> None:
    settings, expected = table_copy
    path = settings.table.path
    timeline = Path(path) / ".hoodie" / "timeline"
    latest = max(p.name.split("_")[0] for p in timeline.iterdir() if p.name.endswith(".deltacommit") and "_" in p.name)
    spark.sql(f"CALL create_savepoint(path => '{path}', commit_time => '{latest}')").collect()
    user = _subjects(expected, source_table[2])["user_id"]

    result = run_delete(settings, parse_text(f'{{"request_id": "s1", "user_id": "{user}"}}', "r.jsonl"), do_purge=True)

    assert result.records_deleted > 0  # the delete itself is fine; only the physical purge is refused
    assert result.purge is not None and "savepoint" in (result.purge["refused"] or "")
    assert latest in result.purge["refused"]
    assert result.verified is False
    assert raw_hits(path, [user]) > 0  # and indeed the old files still hold the subject
    ledger = spark.read.format("hudi").load(settings.ledger_path).collect()
    assert [(r["request_id"], r["status"], r["verified"]) for r in ledger] == [("s1", "unverified", False)]
