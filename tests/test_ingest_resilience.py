"""The stream against what production throws at it, for real, and the one line it says when it must stop.

Poison messages among good ones (at the default driver size), offsets deleted from Kafka before the
stream read them, a full file system, a broker outage, a second stream on one checkpoint, folders
that cannot be written. Each runs the real CLI (a fresh JVM) against the session's broker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from builders import NOW_MS, encode, expected_rows, make_batches, read_hudi_rs, read_live_hudi_rs, send
from conftest import free_port

from bench.fat_message import filled_batch, minimal_batch
from bench.soak import _children

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _config(tmp_path: Path, kafka: str, topic: str, table: Path, **sections: Any) -> Path:
    """A settings file as a user writes one; Spark keeps its default driver size unless told."""
    body: dict[str, Any] = {
        "kafka": {"bootstrap_servers": kafka, "topic": topic},
        "table": {"path": str(table)},
        "metrics": {"port": 0},
        "spark": {"conf": {"spark.master": "local[2]", "spark.ui.enabled": "false"}},
    }
    for name, values in sections.items():
        body.setdefault(name, {}).update(values)
    config = tmp_path / f"loglake-{len(list(tmp_path.glob('loglake-*.yaml')))}.yaml"
    config.write_text(json.dumps(body))
    return config


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _last_line(done: Any) -> str:
    return done.stderr.strip().splitlines()[-1]


def test_poison_messages_cannot_stop_the_stream(kafka_bootstrap: str, topic_factory: Any, tmp_path: Path) -> None:
    from test_ingest_parse import _negative_block_encoding

    topic = topic_factory(partitions=1)
    before, after = make_batches(10, seed=32), make_batches(10, seed=33)
    huge = minimal_batch(100_000)  # 8 bytes a record: 100,000 records in under 1 MiB
    biggest = filled_batch(10_000, 1_040_000, seed=31)  # the widest message the default limits let through
    [utf8_record, utf8_batch, long_min, negative] = make_batches(4, seed=34, records=(3, 3))
    utf8_record["records"][0]["message"] = "IN?FO poison"
    utf8_batch["service"] = "svc-?-poison"
    long_min["records"][2]["ts"] = -(2**63)
    [trailing] = make_batches(1, seed=35)
    poison = {
        "too_many_records": encode(huge),
        "invalid_utf8/record": encode(utf8_record).replace(b"IN?FO poison", b"IN\xffFO poison"),
        "invalid_utf8/batch": encode(utf8_batch).replace(b"svc-?-poison", b"svc-\xff-poison"),
        "bad_ts": encode(long_min),
        "avro_trailing_bytes": encode(trailing) + b"\x00garbage",
    }
    assert len(poison["too_many_records"]) < 1_048_576 and 1_000_000 < len(encode(biggest)) < 1_048_576
    payloads = [
        *(encode(b) for b in before),
        *poison.values(),
        encode(biggest),
        _negative_block_encoding(negative),
        *(encode(b) for b in after),
    ]
    send(kafka_bootstrap, topic, payloads, partition=0)
    table = tmp_path / "logs"

    done = _cli("ingest", "--once", "--config", str(_config(tmp_path, kafka_bootstrap, topic, table)))

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    good = [*before, *after, biggest, negative]
    expected = expected_rows(good)
    expected.update({k: v for k, v in expected_rows([utf8_record]).items() if not k.endswith(":0")})
    readable = {**long_min, "records": [{**r, "ts": NOW_MS} for r in long_min["records"]]}
    expected.update({k: v for k, v in expected_rows([readable]).items() if not k.endswith(":2")})
    got = read_hudi_rs(str(table)).column("record_key").to_pylist()
    assert len(got) == len(set(got)) == len(expected)  # every good record, once
    assert set(got) == set(expected)
    quarantine = read_hudi_rs(f"{table}_quarantine").to_pylist()
    offset = {p: len(before) + i for i, p in enumerate(poison)}
    reasons = {(q["kafka_offset"], q["reason_code"]) for q in quarantine}
    assert reasons == {(offset[name], name.split("/")[0]) for name in poison}
    assert report["rows_quarantined"] == len(poison)


def _produce_and_delete(kafka: str, topic: str, batches: list[dict[str, Any]], before_offset: int) -> None:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    send(kafka, topic, [encode(b) for b in batches], partition=0)
    admin = AdminClient({"bootstrap.servers": kafka})
    futures = admin.delete_records([TopicPartition(topic, 0, before_offset)])
    for future in futures.values():
        assert future.result(timeout=30).low_watermark == before_offset


def test_kafka_data_loss_stops_with_one_line_or_is_skipped_and_counted(
    cli: Any, kafka_bootstrap: str, topic_factory: Any, settings_factory: Any, tmp_path: Path
) -> None:
    from ingest.job import run
    from ingest.metrics import IngestMetrics

    topic = topic_factory(partitions=1)
    first, lost, kept = make_batches(10, seed=41), make_batches(10, seed=42), make_batches(10, seed=43)
    table = tmp_path / "logs"
    config = _config(tmp_path, kafka_bootstrap, topic, table)
    send(kafka_bootstrap, topic, [encode(b) for b in first], partition=0)
    assert cli("ingest", "--once", "--config", str(config)).returncode == 0
    # Offsets 10..19 are deleted (as retention would) before the stream comes back for them.
    _produce_and_delete(kafka_bootstrap, topic, lost + kept, before_offset=20)

    stopped = cli("ingest", "--once", "--config", str(config))

    assert stopped.returncode == 5, stopped.stderr[-3000:]
    line = _last_line(stopped)
    assert line.startswith(f"loglake ingest: error: Kafka data loss: {topic}[0] offsets 10..19 were deleted"), line
    assert "kafka.fail_on_data_loss: false" in line
    assert "Traceback" not in line

    settings = settings_factory(topic, "kafka.fail_on_data_loss=false", **{"table.path": str(table)})
    metrics = IngestMetrics()
    run(settings, once=True, metrics=metrics)

    assert metrics.skipped_offsets.labels(topic=topic, partition="0")._value.get() == 10
    assert set(read_hudi_rs(str(table)).column("record_key").to_pylist()) == set(expected_rows(first + kept))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_full_disk_is_one_line_naming_the_path_and_setting(
    cli: Any, kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=1)
    send(kafka_bootstrap, topic, [encode(b) for b in make_batches(3000, seed=51)], partition=0)
    volume = tmp_path / "small"
    volume.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(volume)], check=True)
    try:
        config = _config(
            tmp_path,
            kafka_bootstrap,
            topic,
            volume / "logs",
            ingest={"checkpoint_dir": str(tmp_path / "checkpoint")},
        )
        done = cli("ingest", "--once", "--config", str(config))
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=True)

    assert done.returncode == 6, done.stderr[-3000:]
    line = _last_line(done)
    assert line.startswith(f"loglake ingest: error: no space left on device writing {volume}/logs"), line
    assert f"table.path={volume}/logs" in line


def test_unwritable_paths_are_refused_before_spark_starts(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    started = time.monotonic()
    done = _cli("ingest", "--once", "--table-path", str(afile / "logs"))
    assert done.returncode == 2
    assert _last_line(done) == (
        f"loglake ingest: configuration error: setting table.path={afile}/logs lies under {afile}, which is a file; "
        "give a folder path"
    )
    assert "SparkContext" not in done.stderr and time.monotonic() - started < 30
    if os.geteuid() == 0:
        volume = tmp_path / "ro"
        volume.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(volume)], check=True)
        try:
            done = _cli("ingest", "--once", "--table-path", str(volume / "logs"))
        finally:
            subprocess.run(["umount", str(volume)], check=True)
        assert done.returncode == 2 and "read-only file system" in _last_line(done)


def test_a_second_stream_on_the_same_checkpoint_is_refused_naming_the_first(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=1)
    config = _config(tmp_path, kafka_bootstrap, topic, tmp_path / "logs", ingest={"trigger": "1 second"})
    log = tmp_path / "first.log"
    with log.open("wb") as out:
        first = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ingest", "--config", str(config)], stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 120
        while b"ingesting" not in log.read_bytes():
            assert first.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the first stream did not start"
            time.sleep(0.5)

        second = _cli("ingest", "--once", "--config", str(config), timeout=60)

        assert second.returncode == 2
        line = _last_line(second)
        assert f"is in use by another stream (pid {first.pid} on " in line, line
        assert "SparkContext" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)


def _scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("loglake_ingest_kafka")
    }


def test_broker_outage_reads_as_kafka_down_and_unknown_lag_then_recovers(tmp_path: Path) -> None:
    import math

    from devservers import kafka_broker

    data = tmp_path / "kafka"
    port = free_port()
    bootstrap = kafka_broker.start(port=port, data_dir=data)
    stream = None
    try:
        kafka_broker.create_topic(bootstrap, "outage", partitions=1)
        first, second = make_batches(20, seed=61), make_batches(20, seed=62)
        send(bootstrap, "outage", [encode(b) for b in first], partition=0)
        metrics_port = free_port()
        config = _config(
            tmp_path,
            bootstrap,
            "outage",
            tmp_path / "logs",
            ingest={"trigger": "1 second"},
            metrics={"port": metrics_port},
        )
        log = tmp_path / "stream.log"
        with log.open("wb") as out:
            stream = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "ingest", "--config", str(config)], stdout=out, stderr=out
            )

        def wait_for(what: str, check: Any, timeout: float = 180) -> dict[str, float]:
            deadline = time.monotonic() + timeout
            while True:
                assert stream is not None and stream.poll() is None, log.read_text()[-3000:]
                try:
                    samples = _scrape(metrics_port)
                    if check(samples):
                        return samples
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"{what}: {log.read_text()[-2000:]}"
                time.sleep(1)

        lag = 'loglake_ingest_kafka_offsets_behind{"partition": "0", "topic": "outage"}'
        up = "loglake_ingest_kafka_up{}"
        wait_for("caught up", lambda s: s.get(lag) == 0 and s.get(up) == 1)

        kafka_broker.stop(data_dir=data)
        down = wait_for("broker down", lambda s: s.get(up) == 0, timeout=60)
        assert math.isnan(down[lag])  # unknown, not a perfect 0

        kafka_broker.start(port=port, data_dir=data)
        send(bootstrap, "outage", [encode(b) for b in second], partition=0)
        wait_for("recovered", lambda s: s.get(up) == 1 and s.get(lag) == 0)
        deadline = time.monotonic() + 120
        expected = set(expected_rows(first + second))
        while set(read_live_hudi_rs(str(tmp_path / "logs")).column("record_key").to_pylist()) != expected:
            assert time.monotonic() < deadline, "not every record arrived after the outage"
            time.sleep(2)
        assert "does not answer" in log.read_text() and "answers again" in log.read_text()
    finally:
        if stream is not None:
            stream.send_signal(signal.SIGTERM)
            stream.wait(timeout=120)
        kafka_broker.stop(data_dir=data)


def test_a_killed_driver_jvm_ends_the_process_with_one_line(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=1)
    send(kafka_bootstrap, topic, [encode(b) for b in make_batches(200, seed=71)], partition=0)
    config = _config(tmp_path, kafka_bootstrap, topic, tmp_path / "logs", ingest={"trigger": "1 second"})
    log = tmp_path / "stream.log"
    with log.open("wb") as out:  # a file, not a pipe: Spark's chatter would fill a pipe and stall the stream
        stream = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ingest", "--config", str(config)], stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "logs" / ".hoodie" / "timeline").glob("*.deltacommit")):
            assert stream.poll() is None and time.monotonic() < deadline, "the stream did not commit"
            time.sleep(0.5)
        jvms = [pid for pid in _children(stream.pid) if "java" in _command(pid)]
        assert jvms
        for pid in jvms:
            os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
        stream.wait(timeout=60)
    finally:
        if stream.poll() is None:
            stream.kill()
    assert stream.returncode == 1
    assert (
        log.read_text()
        .strip()
        .splitlines()[-1]
        .startswith("loglake ingest: error: the Spark driver JVM stopped answering: it was killed or exited")
    )


def _command(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
