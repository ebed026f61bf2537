"""Erasure a data-protection officer can trust, on real tables written by the ingest job from Kafka.

- Exact identity: subjects whose ids hold spaces, wildcards, quotes, regex and SQL fragments, NUL,
  newlines, bidi controls, other Unicode forms or 2,000 characters are erased; every look-alike
  bystander keeps all of its rows (counted with Spark and with hudi-rs) and the verifier calls the
  table clean.
- Honest verification: a leftover planted where it arises (a base file, a log data block, a delete
  never purged, the metadata table, a quarantined message, a free-text message) is found.
- Purge of earlier deletes: a purge without requests finishes what deletes left, ours or anyone's.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from builders import NOW_MS, encode, raw_hits, read_hudi_rs, send
from cli_support import CliRun, run_cli

from app.produce import make_batch
from gdpr.job import matcher_for, message_decoders, run_delete
from gdpr.requests import ParsedRequests, parse_text
from gdpr.verify import verify
from ingest.job import run
from loglake import storage
from loglake.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KINDS = ("user_id", "email", "client_ip")
SUBJECTS = [
    ("user_id", "u1"),
    ("user_id", " spaced "),
    ("user_id", "u_1%"),
    ("user_id", "a.b*"),
    ("user_id", "o'brien"),
    ("user_id", "x' OR '1'='1"),
    ("user_id", "back\\slash"),
    ("user_id", "José"),
    ("user_id", "nul\x00id"),
    ("user_id", "line\nbreak"),
    ("user_id", "\u202eevil"),
    ("user_id", "L" * 2000),
    ("email", "a@b.com"),
    ("client_ip", "10.0.0.1"),
]


def look_alikes(value: str) -> set[str]:
    """Ids that a careless match would confuse with ``value``: parts, extensions, case, Unicode forms,
    whitespace, wildcard and escape characters, and what the value would match as a pattern."""
    out = {
        value[:-1],
        value[1:],
        value[1:-1],
        value + "0",
        "x" + value,
        "x" + value + "x",
        value.upper(),
        value.lower(),
        value.swapcase(),
        " " + value,
        value + " ",
        " " + value + " ",
        value.strip(),
        unicodedata.normalize("NFC", value),
        unicodedata.normalize("NFD", value),
        value + "\x00",
        value + "\n",
        value + "\u202e",
        "\u202d" + value,
        value + "%",
        value + "_",
        value + "*",
        value + ".",
        "'" + value + "'",
        value + "\\",
        value.replace(value[:1], "_", 1),
        value.replace(value[-1:], "%"),
    }
    pattern_matches = {
        "u_1%": ["uX1", "u11abc", "u_1"],  # what LIKE 'u_1%' would take
        "a.b*": ["axb", "ab", "a.bbb"],  # what a regex or glob would take
        "x' OR '1'='1": ["x", "1"],
        "a@b.com": ["xa@b.com", "a@b.com.au", "a@b.co"],
        "10.0.0.1": ["10.0.0.10", "110.0.0.1", "10x0x0x1"],
        "o'brien": ["o''brien", "obrien", "o'brien2"],
        "back\\slash": ["back\\\\slash", "backslash"],
    }
    out.update(pattern_matches.get(value, []))
    return {v for v in out if v and v.strip() and v != value}


def ambiguous(alike: str, subject: str) -> bool:
    """Whether ``alike`` mentioned in free text reads as ``subject`` to anyone: the subject with nothing
    around it but whitespace, control characters, sentence punctuation or delimiters (quotes,
    brackets, ...) that are not part of it. ``u1`` in quotes is ``u1``, whoever wrote the quotes. The
    verifier documents that text cannot tell these apart; identifier columns still do."""
    delimiters = set("\"'`()[]{}<>,;:=/\\|&") - set(subject)
    noise = set(" \t\n\r\f\v.!?") | {chr(c) for c in range(32)} | delimiters
    # As JSON writes it too: a message that embeds a JSON snippet holds the subject escaped.
    for form in {subject, json.dumps(subject)[1:-1], json.dumps(subject, ensure_ascii=False)[1:-1]}:
        start = alike.find(form)
        while start != -1:
            if set(alike[:start]) <= noise and set(alike[start + len(form) :]) <= noise:
                return True
            start = alike.find(form, start + 1)
    return False


def _people() -> list[tuple[str, str, bool]]:
    """(kind, id, is a subject): every subject and every look-alike of any subject."""
    subjects = set(SUBJECTS)
    people = [(k, v, True) for k, v in SUBJECTS]
    seen = {v for _, v in SUBJECTS}
    for kind, value in SUBJECTS:
        for alike in sorted(look_alikes(value)):
            if alike not in seen and (kind, alike) not in subjects:
                seen.add(alike)
                people.append((kind, alike, False))
    return people


def _record(rng: random.Random, kind: str, value: str, n: int, mention: bool) -> dict[str, Any]:
    record = make_batch(rng, NOW_MS, 1)["records"][0]
    record.update({"user_id": f"other-{n}", "email": f"other{n}@example.org", "client_ip": f"192.0.2.{n % 250}"})
    record[kind] = value
    if mention:
        record["message"] = f"account [{value}] signed in"
        record["attributes"] = {"alias": value}
    return record


def _batches(people: list[tuple[str, str, bool]], rows: int, seed: int) -> list[dict[str, Any]]:
    """Messages of 10 records; each person has ``rows`` records, mentioned in text unless ambiguous."""
    rng = random.Random(seed)
    subjects = [v for _, v, s in people if s]
    records = []
    n = 0
    for kind, value, is_subject in people:
        mention = is_subject or not any(ambiguous(value, s) for s in subjects)
        for _ in range(rows):
            n += 1
            records.append(_record(rng, kind, value, n, mention))
    rng.shuffle(records)
    batches = []
    for i in range(0, len(records), 10):
        batch = make_batch(rng, NOW_MS, 0)
        batch["records"] = records[i : i + 10]
        batches.append(batch)
    return batches


def _ingest(kafka: str, topic: str, settings: Settings, rng: random.Random, records: list[dict[str, Any]]) -> None:
    """One message holding ``records``, sent and ingested."""
    batch = make_batch(rng, NOW_MS, 0)
    batch["records"] = records
    send(kafka, topic, [encode(batch)])
    run(settings, once=True)


def _counts(rows: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    return {k: Counter(r[k] for r in rows if r[k] is not None) for k in KINDS}


def _table_counts(spark: Any, path: str) -> tuple[dict[str, Counter[str]], dict[str, Counter[str]]]:
    """Identifier counts read by Spark and by hudi-rs, independently."""
    df = spark.read.format("hudi").load(path).select(*KINDS)
    by_spark = _counts([r.asDict() for r in df.collect()])
    by_rs = _counts(read_hudi_rs(path).select(list(KINDS)).to_pylist())
    return by_spark, by_rs


def _config(tmp_path: Path, kafka: str, topic: str, table: Path, **extra: Any) -> Path:
    config = tmp_path / "loglake.yaml"
    body: dict[str, Any] = {
        "kafka": {"bootstrap_servers": kafka, "topic": topic},
        "table": {"path": str(table)},
        "metrics": {"port": 0},
        "spark": {"conf": {"spark.master": "local[2]", "spark.ui.enabled": "false", "spark.driver.memory": "1g"}},
        **extra,
    }
    config.write_text(json.dumps(body))
    return config


def _cli(*args: str) -> CliRun:
    # In this process on the session's Spark (the tests using it hold the spark fixture).
    return run_cli(*args)


def _report(done: CliRun) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(done.stdout[done.stdout.index("{") :])
    return report


def test_look_alikes_keep_every_row_and_verification_is_clean(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=2)
    people = _people()
    assert len(people) > 200
    batches = _batches(people, rows=2, seed=61)
    rng = random.Random(62)
    subject_ids = [v for _, v in SUBJECTS]
    clear = [v for _, v, s in people if not s and not any(ambiguous(v, x) for x in subject_ids)]
    # Quarantined messages: a torn one of the subject u1 (redacted by the erasure), a torn one of
    # look-alikes, and a whole one whose bad-ts record holds a whitespace look-alike (both kept).
    torn_subject = make_batch(rng, NOW_MS, 0)
    torn_subject["records"] = [_record(rng, "user_id", "u1", 9000, True)] * 3
    torn_alikes = make_batch(rng, NOW_MS, 0)
    torn_alikes["records"] = [_record(rng, "user_id", v, 9001 + i, True) for i, v in enumerate(clear[:20])]
    bad_ts = make_batch(rng, NOW_MS, 0)
    bad_ts["records"] = [_record(rng, "user_id", " u1", 9100, False)]
    bad_ts["records"][0]["ts"] = -5
    quarantined = [encode(torn_subject)[:-4], encode(torn_alikes)[:-4], encode(bad_ts)]
    send(kafka_bootstrap, topic, [encode(b) for b in batches] + quarantined)
    settings: Settings = settings_factory(topic)
    path = settings.table.require_path()
    config = _config(tmp_path, kafka_bootstrap, topic, Path(path))
    ingest = _cli("ingest", "--config", str(config), "--once")
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    assert _report(ingest)["rows_quarantined"] == 3

    expected = _counts([r for b in batches for r in b["records"]])
    by_spark, by_rs = _table_counts(spark, path)
    assert by_spark == by_rs == expected
    for kind, value in SUBJECTS:
        assert expected[kind][value] == 2

    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        "\n".join(json.dumps({"request_id": f"s{i}", kind: value}) for i, (kind, value) in enumerate(SUBJECTS))
    )
    done = _cli("gdpr", "purge", "--config", str(config), "--requests", str(requests))

    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(done)
    assert report["requests"] == len(SUBJECTS) and report["rejected"] == []
    # No identifier in what the jobs print or log, nor in the ledger's files (short ones like u1 could
    # occur by chance in log text; these cannot).
    distinctive = ["x' OR '1'='1", "o'brien", "back\\slash", "José", "a@b.com", "\u202eevil", "L" * 2000]
    for output in (ingest.stdout, ingest.stderr, done.stdout, done.stderr):
        assert not [v for v in distinctive if v in output]
    assert raw_hits(settings.ledger_path, distinctive) == 0
    assert report["requests_without_records"] == []
    assert report["records_deleted"] == 2 * len(SUBJECTS)
    assert report["verification"]["clean"] is True, report["verification"]["hit_list"]
    assert report["verification"]["hits"] == 0
    # A whitespace-padded identifier is erased as given, and pointed out.
    assert [n["source"] for n in report["notes"]] == ["requests.jsonl:2"]

    records = [r for b in batches for r in b["records"]]
    expected = _counts([r for r in records if not any(r[kind] == value for kind, value in SUBJECTS)])
    assert all(expected[kind][value] == 0 for kind, value in SUBJECTS)
    by_spark, by_rs = _table_counts(spark, path)
    assert by_spark == by_rs == expected  # every look-alike keeps every row
    quarantine = {
        r["quarantine_key"]: r
        for r in spark.read.format("hudi").load(settings.table.effective_quarantine_path).collect()
    }
    kept = {k for k, r in quarantine.items() if r["raw_value"] is not None}
    assert len(quarantine) == 3 and len(kept) == 2  # only the subject's torn message lost its bytes


def test_verification_finds_a_leftover_wherever_it_hides(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any
) -> None:
    topic = topic_factory(partitions=1)
    rng = random.Random(71)
    # Avro log blocks (a user's choice) and column statistics on user_id (a user's mistake that puts
    # ids into the metadata table): two more places a value can hide.
    settings: Settings = settings_factory(
        topic,
        "hoodie.logfile.data.block.format=avro",
        "hoodie.write.record.merge.custom.implementation.classes=org.apache.hudi.common.model.OverwriteWithLatestMerger",
        "hoodie.metadata.index.column.stats.column.list=ts,level,client_ip",
    )
    path = settings.table.require_path()
    others = [_record(rng, "user_id", f"bystander-{i}", i, True) for i in range(40)]
    first = make_batch(rng, NOW_MS, 0)
    first["records"] = [
        *(_record(rng, "user_id", "in-base", 100 + i, False) for i in range(3)),
        *(_record(rng, "user_id", "deleted-not-purged", 200 + i, False) for i in range(3)),
        # "!" sorts before every other address: the minimum of client_ip in every file it is in.
        *(_record(rng, "client_ip", "!10.9.9.9", 300 + i, False) for i in range(3)),
        _record(rng, "user_id", "writer", 400, False),
        *others[:20],
    ]
    first["records"][-1]["message"] = "password reset mailed to text-only@example.com"
    torn = make_batch(rng, NOW_MS, 0)
    torn["records"] = [_record(rng, "user_id", "in-quarantine", 500, False)] * 2
    send(kafka_bootstrap, topic, [encode(first), encode(torn)[:-4]])
    run(settings, once=True)  # a new table: base files
    later = make_batch(rng, NOW_MS, 0)
    later["records"] = [*(_record(rng, "user_id", "in-log", 600 + i, False) for i in range(3)), *others[20:]]
    send(kafka_bootstrap, topic, [encode(later)])
    run(settings, once=True)
    delete = run_delete(settings, parse_text('{"request_id": "d", "user_id": "deleted-not-purged"}', "r.jsonl"))
    assert delete.records_deleted == 3

    files = storage.list_files(spark, path) + storage.list_files(spark, settings.table.effective_quarantine_path)
    files = [f for f in files if not f.name.endswith(".crc")]

    # Every probe in one scan, as a purge checks its requests: each hit names its request.
    probes = [
        ("user_id", "in-base"),
        ("user_id", "in-log"),
        ("user_id", "deleted-not-purged"),
        ("client_ip", "!10.9.9.9"),
        ("user_id", "in-quarantine"),
        ("email", "text-only@example.com"),
        ("user_id", "in-bas"),
        ("user_id", "bystander-1"),
    ]
    lines = "\n".join(json.dumps({"request_id": f"p{i}", kind: value}) for i, (kind, value) in enumerate(probes))
    checked = verify(spark, files, matcher_for(parse_text(lines, "r.jsonl").requests), message_decoders())
    assert checked.hits == len(checked.hit_list)  # none left off the list

    def hits_of(kind: str, value: str) -> list[dict[str, str]]:
        request_id = f"p{probes.index((kind, value))}"
        return [h for h in checked.hit_list if h["request_id"] == request_id]

    def where(hits: list[dict[str, str]]) -> set[tuple[str, str, str]]:
        def place(file: str) -> str:
            if "/.hoodie/metadata/" in file:
                return "metadata"
            if "_quarantine/" in file:
                return "quarantine"
            return "log" if ".log." in file else "base"

        return {(place(h["file"]), h["column"], h["match"]) for h in hits}

    assert where(hits_of("user_id", "in-base")) == {("base", "user_id", "equal")}
    assert where(hits_of("user_id", "in-log")) == {("log", "user_id", "equal")}  # decoded from an Avro block
    assert ("base", "user_id", "equal") in where(hits_of("user_id", "deleted-not-purged"))
    assert any(p == "metadata" for p, _, _ in where(hits_of("client_ip", "!10.9.9.9")))
    assert where(hits_of("user_id", "in-quarantine")) == {("quarantine", "raw_value", "avro-string")}
    assert where(hits_of("email", "text-only@example.com")) == {("base", "message", "bounded")}
    assert hits_of("user_id", "in-bas") == [] and hits_of("user_id", "bystander-1") != []

    # A purge: what a delete can reach goes; the free-text mention in a bystander's record stays, and
    # the run says so instead of calling the table clean.
    subjects = ["in-base", "in-log", "deleted-not-purged", "in-quarantine"]
    lines = [json.dumps({"request_id": v, "user_id": v}) for v in subjects]
    lines.append(json.dumps({"request_id": "text", "email": "text-only@example.com"}))
    result = run_delete(settings, parse_text("\n".join(lines), "r.jsonl"), do_purge=True, spark=spark)

    assert result.verified is False
    hit_requests = {h["request_id"] for h in result.verification["hit_list"]}  # type: ignore[index]
    assert hit_requests == {"text"}
    ledger = {r["request_id"]: r for r in spark.read.format("hudi").load(settings.ledger_path).collect()}
    assert {i for i, r in ledger.items() if r["status"] == "verified"} == {
        "in-base",
        "in-log",
        "deleted-not-purged",
        "in-quarantine",
        "d",
    }
    assert ledger["text"]["status"] == "unverified"
    assert ledger["text"]["verification_hits"] >= 1


def test_a_later_purge_finishes_earlier_deletes_ours_and_anyones(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any, tmp_path: Path
) -> None:
    from pyspark.sql import functions as F

    from loglake import table

    topic = topic_factory(partitions=1)
    rng = random.Random(81)
    settings: Settings = settings_factory(topic)
    path = settings.table.require_path()
    first = [
        *(_record(rng, "user_id", "early-subject", i, True) for i in range(4)),
        *(_record(rng, "email", "by-hand@example.com", 10 + i, True) for i in range(2)),
        *(_record(rng, "user_id", f"keep-{i}", 20 + i, True) for i in range(20)),
    ]
    _ingest(kafka_bootstrap, topic, settings, rng, first)

    # An erasure without --purge, and a delete made by hand through Hudi (no ledger knows of it).
    deleted = run_delete(settings, parse_text('{"request_id": "e1", "user_id": "early-subject"}', "r.jsonl"))
    assert deleted.records_deleted == 4
    by_hand = spark.read.format("hudi").load(path).where(F.col("email") == "by-hand@example.com")
    by_hand.select(table.RECORD_KEY, table.PARTITION_FIELD).write.format("hudi").options(
        **table.delete_options(settings)
    ).mode("append").save(path)
    assert raw_hits(path, ["early-subject", "by-hand@example.com"]) > 0  # logically gone, physically not

    # More ingest in between, as a live stream does.
    _ingest(
        kafka_bootstrap, topic, settings, rng, [_record(rng, "user_id", f"new-{i}", 40 + i, True) for i in range(10)]
    )

    config = _config(tmp_path, kafka_bootstrap, topic, Path(path))
    done = _cli("gdpr", "purge", "--config", str(config))

    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(done)
    assert report["requests"] == 0
    assert report["earlier_requests"] == ["e1"] and report["completed_requests"] == ["e1"]
    assert report["verification"]["checked_by_hash"] == ["e1"] and report["verification"]["clean"] is True
    assert report["purge"]["partitions_compacted"] and report["purge"]["partitions_pending"] == []
    assert raw_hits(path, ["early-subject", "by-hand@example.com"]) == 0
    ledger = {r["request_id"]: r for r in spark.read.format("hudi").load(settings.ledger_path).collect()}
    entry = ledger["e1"]
    assert entry["status"] == "verified" and entry["verified"] is True
    assert entry["deleted_at"] < entry["purged_at"] <= entry["verified_at"]
    assert report["ledger_status"]["verified"] == 1 and report["oldest_pending_purge_seconds"] is None
    remaining = Counter(r["user_id"] for r in read_hudi_rs(path).to_pylist())
    assert remaining == Counter({f"keep-{i}": 1 for i in range(20)} | {f"new-{i}": 1 for i in range(10)})


def test_hashed_verification_notices_a_subject_that_came_back(
    spark: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any, tmp_path: Path
) -> None:
    """A purge given no identifiers checks earlier requests by the ledger's hash: able to fail."""
    topic = topic_factory(partitions=1)
    rng = random.Random(91)
    settings: Settings = settings_factory(topic)
    _ingest(kafka_bootstrap, topic, settings, rng, [_record(rng, "user_id", "returning", i, False) for i in range(3)])
    run_delete(settings, parse_text('{"request_id": "r1", "user_id": "returning"}', "r.jsonl"))
    _ingest(kafka_bootstrap, topic, settings, rng, [_record(rng, "user_id", "returning", 10, False)])

    result = run_delete(settings, ParsedRequests([], []), do_purge=True, spark=spark)

    assert result.verified is False
    assert {(h["column"], h["match"], h["request_id"]) for h in result.verification["hit_list"]} == {  # type: ignore[index]
        ("user_id", "hash", "r1")
    }
    ledger = {r["request_id"]: r for r in spark.read.format("hudi").load(settings.ledger_path).collect()}
    assert ledger["r1"]["status"] == "unverified"
