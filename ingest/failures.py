"""The one line an operator reads when the stream stops: the cause, the value, and the setting to change.

A failure inside a micro-batch reaches the driver as a ``StreamingQueryException`` wrapping a Py4J
error wrapping a Python traceback wrapping a Java stack trace; the cause is hundreds of lines down.
:func:`explain` reads the whole chain and names the causes an on-call engineer meets, each with its
own exit code (docs/ingest.md, "When the stream must stop"); anything else gets the deepest error line found.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from loglake.errors import KafkaDataLossError, SchemaRegistryUnavailableError, StorageFullError, StreamFailedError
from loglake.jvm_errors import chain_text, deepest_error, jvm_gone
from loglake.settings import Settings

# Spark's Kafka source, when offsets it has to read are gone (spark-sql-kafka 3.5).
_LOST_OFFSET = re.compile(r"Cannot fetch offset (\d+) \(GroupId: [^,]*, TopicPartition: (.+?)-(\d+)\)")
_LOST_RANGE = re.compile(r"Cannot fetch records in \[(\d+), (\d+)\) \(GroupId: [^,]*, TopicPartition: (.+?)-(\d+)\)")
_OFFSET_CHANGED = re.compile(r"Partition (.+?)-(\d+)'s offset was changed from (\d+) to (\d+)")
_AVAILABLE_RANGE = re.compile(r"available offset range is \[(-?\d+), ?(-?\d+)\]")
_DATA_LOST = "Some data may have been lost because they are not available in Kafka any more"
_NO_SPACE = ("No space left on device", "Disk quota exceeded")
_READ_ONLY = ("Read-only file system", "Permission denied", "AccessDeniedException")
# Raised by the batch writer itself; its message already names the URL and the settings.
_REGISTRY_DOWN = re.compile(r"SchemaRegistryUnavailableError: (.+)")
_PATH = re.compile(r"(?:file:)?(/[^\s'\"()\[\],:]+)")


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def _setting_of(path: str, settings: Settings) -> str:
    """The setting whose folder holds ``path``, for naming it in a message."""
    named = [
        ("ingest.checkpoint_dir", settings.checkpoint_dir),
        ("table.quarantine_path", settings.table.effective_quarantine_path),
        ("table.path", settings.table.require_path()),
    ]
    for setting, folder in named:
        if _under(path, folder.removeprefix("file:").rstrip("/")):
            return f"{setting}={folder}"
    return "the folder of table.path, table.quarantine_path or ingest.checkpoint_dir"


def _ours(settings: Settings) -> list[str]:
    folders = [settings.checkpoint_dir, settings.table.effective_quarantine_path, settings.table.require_path()]
    return [f.removeprefix("file:").rstrip("/") for f in folders]


def _full_path(line: str, text: str, settings: Settings) -> str | None:
    """The path that could not be written. Java's "No space left on device" rarely names it, so: a path
    on that line, else the local folder of ours whose volume is (nearly) full, else the first path of
    ours anywhere in the chain (the chain names the checkpoint in passing, so it comes last)."""
    if match := _PATH.search(line):
        return match.group(1)
    ours = _ours(settings)
    room: list[tuple[float, str]] = []
    for folder in ours:
        if not folder.startswith("/"):
            continue
        existing = Path(folder)
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        with contextlib.suppress(OSError):
            usage = shutil.disk_usage(existing)
            room.append((usage.free / max(usage.total, 1), folder))
    if room and min(room)[0] < 0.05:
        return min(room)[1]
    for match in _PATH.finditer(text):
        if any(_under(match.group(1), folder) for folder in ours):
            return match.group(1)
    return None


def _line_with(text: str, needles: Iterable[str]) -> str | None:
    for line in text.splitlines():
        if any(n in line for n in needles):
            return line.strip()
    return None


def _data_loss(text: str, earliest: Callable[[str, int], int] | None) -> KafkaDataLossError | None:
    where: tuple[str, str, str, str] | None = None
    if m := _LOST_RANGE.search(text):
        where = (m.group(3), m.group(4), m.group(1), str(int(m.group(2)) - 1))
    elif m := _LOST_OFFSET.search(text):
        # Spark names the first offset it missed; where the gap ends is Kafka's earliest offset now.
        topic, partition, first = m.group(2), m.group(3), int(m.group(1))
        last = first
        if available := _AVAILABLE_RANGE.search(text):
            last = max(first, int(available.group(1)) - 1)
        elif earliest is not None:
            with contextlib.suppress(Exception):  # the first offset alone still names the loss
                last = max(first, earliest(topic, int(partition)) - 1)
        where = (topic, partition, str(first), str(last))
    elif m := _OFFSET_CHANGED.search(text):
        where = (m.group(1), m.group(2), m.group(3), str(int(m.group(4)) - 1))
    if where is None and _DATA_LOST not in text:
        return None
    span = f"{where[0]}[{where[1]}] offsets {where[2]}..{where[3]}" if where else "offsets of the topic"
    return KafkaDataLossError(
        f"Kafka data loss: {span} were deleted (topic retention or delete-records) before the stream read "
        "them; nothing of them was written. To skip them and go on, set kafka.fail_on_data_loss: false (skipped "
        "offsets are counted in loglake_ingest_kafka_skipped_offsets_total); to keep them, restore the topic"
    )


def explain(
    exc: BaseException, settings: Settings, jvm: Any = None, earliest: Callable[[str, int], int] | None = None
) -> StreamFailedError:
    """The named error for a stream that stopped with ``exc``; ``earliest(topic, partition)`` gives a
    partition's earliest offset in Kafka, to say where a data loss ends."""
    if jvm_gone(exc):
        memory = settings.spark.conf.get("spark.driver.memory", "Spark's default of 1g")
        return StreamFailedError(
            "the Spark driver JVM stopped answering: it was killed or exited (look above for "
            f"java.lang.OutOfMemoryError; if so raise spark.driver.memory, now {memory}). Nothing is lost: "
            "the stream resumes from its checkpoint on restart"
        )
    text = chain_text(exc, jvm)
    if registry := _REGISTRY_DOWN.search(text):
        return SchemaRegistryUnavailableError(registry.group(1).strip())
    if (loss := _data_loss(text, earliest)) is not None:
        return loss
    if (line := _line_with(text, _NO_SPACE)) is not None:
        path = _full_path(line, text, settings)
        return StorageFullError(
            f"no space left on device writing {path or 'a table or checkpoint file'} "
            f"({_setting_of(path or '', settings)}): free space on that volume or move the folder; the batch "
            "is replayed from the checkpoint on restart, nothing is lost"
        )
    if (line := _line_with(text, _READ_ONLY)) is not None:
        match = _PATH.search(line)
        where = _setting_of(match.group(1), settings) if match else _setting_of("", settings)
        return StreamFailedError(f"cannot write {where}: {line[:300]}")
    if (line := _line_with(text, ("java.lang.OutOfMemoryError",))) is not None:
        memory = settings.spark.conf.get("spark.driver.memory", "the default")
        return StreamFailedError(
            f"the driver ran out of memory ({line[:200]}): raise spark.driver.memory (now {memory}) or lower "
            "kafka.max_offsets_per_trigger"
        )
    return StreamFailedError(f"stream on table {settings.table.require_path()} failed: {deepest_error(text)}")
