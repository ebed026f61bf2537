"""What the stream checks before Spark starts, and how it names a failure: without Spark or Kafka."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest import checkpoint_lock
from ingest.failures import explain
from ingest.health import KafkaProbe, skipped_offsets
from ingest.metrics import IngestMetrics
from loglake.errors import CheckpointInUseError, ConfigError, KafkaDataLossError, StorageFullError, StreamFailedError
from loglake.paths import check_writable
from loglake.settings import load_settings


def test_table_path_that_is_a_file_or_under_a_file_is_named(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match=f"setting table.path={afile} is a file"):
        check_writable([("table.path", str(afile))])
    with pytest.raises(ConfigError, match=f"setting ingest.checkpoint_dir={afile}/cp/x lies under {afile}"):
        check_writable([("ingest.checkpoint_dir", f"{afile}/cp/x")])
    check_writable([("table.path", str(tmp_path / "new" / "logs")), ("table.path", f"file:{tmp_path}")])
    check_writable([("table.path", "s3a://bucket/logs")])  # remote: left to the job


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only file system needs root")
def test_read_only_volume_is_named(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mount)], check=True)
    try:
        with pytest.raises(ConfigError, match="read-only file system"):
            check_writable([("table.quarantine_path", str(mount / "q"))])
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_one_stream_per_checkpoint_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    checkpoint = str(tmp_path / "cp" / "loglake_ingest")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from ingest.checkpoint_lock import hold\n"
            f"with hold({checkpoint!r}):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(CheckpointInUseError, match=f"in use by another stream \\(pid {holder.pid} on "),
            checkpoint_lock.hold(checkpoint),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel released the lock with the process: no stale lock to clear by hand.
    deadline = time.monotonic() + 5
    while True:
        try:
            with checkpoint_lock.hold(checkpoint):
                break
        except CheckpointInUseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


SETTINGS = load_settings(overrides={"table.path": "/data/lake/logs"})


class _Captured(Exception):
    """Stands in for a captured Spark exception: a description and a Java stack trace."""

    def __init__(self, desc: str, trace: str) -> None:
        super().__init__(desc)
        self._desc = desc
        self._stackTrace = trace


def test_kafka_data_loss_names_topic_partition_range_and_setting() -> None:
    trace = (
        "java.lang.IllegalStateException: Cannot fetch offset 10 (GroupId: spark-kafka-source-1, "
        "TopicPartition: logs-a-0).\nSome data may have been lost because they are not available in Kafka any "
        "more; either the\n data was aged out by Kafka or the topic may have been deleted before all the data "
        "in the\n topic was processed.\nThe current available offset range is [20, 30]."
    )
    error = explain(_Captured("[STREAM_FAILED] Query terminated", trace), SETTINGS)
    assert isinstance(error, KafkaDataLossError) and error.exit_code == 5
    assert "logs-a[0] offsets 10..19" in str(error) and "kafka.fail_on_data_loss: false" in str(error)
    changed = explain(_Captured("x", "Partition logs-3's offset was changed from 7 to 12, some data"), SETTINGS)
    assert "logs[3] offsets 7..11" in str(changed)


def test_disk_full_names_the_path_and_setting() -> None:
    trace = (
        "org.apache.hudi.exception.HoodieIOException: Failed to create file\n"
        "Caused by: java.io.IOException: No space left on device: "
        "/data/lake/logs/event_date=2026-11-27/.0000_1.log.1_0-1-1\n\tat java.io.FileOutputStream.writeBytes"
    )
    error = explain(_Captured("Query failed", trace), SETTINGS)
    assert isinstance(error, StorageFullError) and error.exit_code == 6
    assert "/data/lake/logs/event_date=2026-11-27/" in str(error) and "table.path=/data/lake/logs" in str(error)
    assert "\n" not in str(error)


def test_any_other_failure_is_its_deepest_error_line() -> None:
    trace = (
        "py4j.Py4JException: An exception was raised by the Python Proxy. Return Message: Traceback (most recent "
        'call last):\n  File "x.py", line 1\norg.apache.hudi.exception.HoodieException: write failed\n'
        "\tat org.apache.hudi.X\nCaused by: org.apache.hudi.exception.HoodieUpsertException: upsert failed\n"
        "Caused by: java.lang.IllegalArgumentException: bad partition path 'x'\n\tat y"
    )
    error = explain(_Captured("[STREAM_FAILED]", trace), SETTINGS)
    assert type(error) is StreamFailedError and error.exit_code == 1
    assert str(error).endswith("java.lang.IllegalArgumentException: bad partition path 'x'")


def test_a_py4j_error_without_causes_is_its_java_exception_line() -> None:
    """Py4J prints the Java exception after ": " below "An error occurred while calling ..."; with no
    ``Caused by`` that line is the cause, not the Py4J wrapper."""
    from loglake.jvm_errors import deepest_error

    text = (
        "Py4JJavaError: An error occurred while calling o61.sql.\n"
        ": org.apache.hudi.exception.HoodieException: no completed commit in s3a://lake/tables/logs\n"
        "\tat org.apache.hudi.X.y(X.java:1)\n"
    )
    assert (
        deepest_error(text)
        == "org.apache.hudi.exception.HoodieException: no completed commit in s3a://lake/tables/logs"
    )


def test_skipped_offsets_count_deleted_ranges_only() -> None:
    start = {"logs": {"0": 10, "1": 5, "2": 7}}
    end = {"logs": {"0": 30, "1": 9, "2": 7}}
    first = {("logs", 0): 20, ("logs", 1): 6}
    earliest = {("logs", 0): 20, ("logs", 1): 0}  # partition 1: offset 5 is a gap Kafka still holds (a marker)
    assert skipped_offsets(start, end, first, earliest) == {("logs", 0): (10, 20)}
    # Everything in the range deleted, nothing read at all.
    assert skipped_offsets({"t": {"0": 3}}, {"t": {"0": 8}}, {}, {("t", 0): 8}) == {("t", 0): (3, 8)}


def test_probe_of_a_secured_listener_is_a_tcp_connect() -> None:
    """SASL/SSL credentials are the Spark source's (Java format): a metadata request would always fail
    and read as an outage, so a secured listener is probed by connecting."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        settings = load_settings(
            overrides={"kafka.bootstrap_servers": f"127.0.0.1:{port}", "table.path": "/tmp/x"},
            assignments=["kafka.options.kafka.security.protocol=SASL_SSL"],
        )
        assert KafkaProbe(settings.kafka, IngestMetrics(), interval=1).probe()
    assert not KafkaProbe(settings.kafka, IngestMetrics(), interval=1).probe()  # nothing listens any more
