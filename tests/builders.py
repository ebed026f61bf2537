"""Test data builders and independent readers (no loglake code on the checking side)."""

from __future__ import annotations

import contextlib
import random
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from confluent_kafka import Producer

from app.produce import encode_avro, encode_json, make_batch

NOW_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z: fixed, so partitions are predictable

# The LogBatch table's columns after Hudi's meta columns, written out by hand: the public contract
# the code's shape must reproduce.
LOGBATCH_COLUMNS = (
    "record_key",
    "ts",
    "level",
    "user_id",
    "email",
    "client_ip",
    "event",
    "message",
    "attributes",
    "batch_id",
    "service",
    "host",
    "region",
    "sent_at",
    "record_index",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "ingested_at",
    "event_date",
)


def make_batches(n: int, seed: int = 7, records: tuple[int, int] = (7, 25)) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [make_batch(rng, NOW_MS, rng.randint(*records)) for _ in range(n)]


def encode(batch: dict[str, Any], encoding: str = "avro", wire: bool = False) -> bytes:
    return encode_json(batch) if encoding == "json" else encode_avro(batch, confluent_wire_format=wire)


def send(bootstrap: str, topic: str, payloads: list[bytes], partition: int | None = None) -> None:
    """Produce raw payloads, in order, and wait until every one is acknowledged."""
    # Up to the broker's own limit (1 MiB), not librdkafka's lower default of 1,000,000 bytes.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 1_048_588})
    errors: list[Any] = []
    for payload in payloads:
        kwargs: dict[str, Any] = {"partition": partition} if partition is not None else {}
        producer.produce(topic, payload, on_delivery=lambda err, _msg: errors.append(err) if err else None, **kwargs)
    assert producer.flush(30) == 0
    assert not errors, errors


def escape(service: str) -> str:
    return service.replace("%", "%25").replace(":", "%3A")


def expected_rows(batches: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the table must hold for ``batches``, keyed by record key, computed without loglake code."""
    rows = {}
    for b in batches:
        for i, r in enumerate(b["records"]):
            key = f"{escape(b['service'])}:{b['batch_id']}:{i}"
            day = datetime.fromtimestamp(r["ts"] // 1000, tz=UTC).strftime("%Y-%m-%d")
            rows[key] = {
                "ts": r["ts"],
                "level": r["level"],
                "user_id": r.get("user_id"),
                "email": r.get("email"),
                "client_ip": r.get("client_ip"),
                "event": r["event"],
                "message": r["message"],
                "attributes": dict(r.get("attributes") or {}),
                "batch_id": b["batch_id"],
                "service": b["service"],
                "host": b["host"],
                "region": b.get("region"),
                "sent_at": b["sent_at"],
                "record_index": i,
                "event_date": day,
            }
    return rows


def _millis(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    return int(value)


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    """A table row (from Spark or hudi-rs) in the shape of :func:`expected_rows`."""
    attrs = row.get("attributes")
    if isinstance(attrs, list):  # pyarrow maps come back as (key, value) pairs
        attrs = dict(attrs)
    return {
        "ts": _millis(row["ts"]),
        "level": row["level"],
        "user_id": row["user_id"],
        "email": row["email"],
        "client_ip": row["client_ip"],
        "event": row["event"],
        "message": row["message"],
        "attributes": dict(attrs or {}),
        "batch_id": row["batch_id"],
        "service": row["service"],
        "host": row["host"],
        "region": row["region"],
        "sent_at": _millis(row["sent_at"]),
        "record_index": row["record_index"],
        "event_date": row["event_date"],
    }


def s3_options(endpoint: str, access_key: str, secret_key: str) -> dict[str, str]:
    """hudi-rs storage options for an S3-compatible store over plain HTTP."""
    return {
        "aws_access_key_id": access_key,
        "aws_secret_access_key": secret_key,
        "aws_endpoint": endpoint,
        "aws_allow_http": "true",
        "aws_region": "us-east-1",
    }


def read_hudi_rs(path: str, storage_options: dict[str, str] | None = None) -> pa.Table:
    """Snapshot read with hudi-rs (the ``hudi`` package): an independent reader, no Spark, no JVM.
    ``storage_options`` reach an object store (:func:`s3_options`)."""
    from hudi import HudiTableBuilder

    table = HudiTableBuilder.from_base_uri(path).with_storage_options(storage_options or {}).build()
    batches = table.read()
    return pa.Table.from_batches(batches) if batches else pa.table({})


def read_live_hudi_rs(path: str, timeout: float = 30) -> pa.Table:
    """:func:`read_hudi_rs` of a table a writer is committing to on the local disk. Hudi 1.0 writes a
    completed instant's file in place there (through a temporary file and a rename on HDFS only; an
    S3 PUT appears whole), so a reader can meet it before its bytes and fail on its commit metadata;
    such a read is tried again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return read_hudi_rs(path)
        except Exception as exc:  # hudi-rs does not export HudiCoreError
            if "Commit metadata error" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _parquet_values(blob: bytes) -> list[str]:
    """Every string in a Parquet file's columns (maps and nested values included), via pyarrow."""
    import io
    import json

    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(blob)).to_pylist()
    return [json.dumps(rows, default=lambda v: v.decode("latin-1") if isinstance(v, bytes) else str(v))]


def raw_hits(root: str, identifiers: list[str]) -> int:
    """How often ``identifiers`` occur in the files under ``root``, read raw (not through Hudi).

    Every file is searched byte for byte; Parquet files, and the Parquet blocks that Hudi log files
    embed (between ``PAR1`` markers), are decoded with pyarrow, because their values are compressed.
    """
    import zlib
    from pathlib import Path

    hits = 0
    for path in Path(root).rglob("*"):
        if not path.is_file() or path.name.endswith(".crc"):
            continue
        data = path.read_bytes()
        texts = [data.decode("latin-1")]
        # gzip streams (HFile blocks of Hudi's metadata table) are searched decompressed too.
        start = data.find(b"\x1f\x8b\x08")
        while start != -1:
            with contextlib.suppress(zlib.error):
                texts.append(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[start:]).decode("latin-1"))
            start = data.find(b"\x1f\x8b\x08", start + 3)
        marks = [i for i in range(len(data) - 3) if data[i : i + 4] == b"PAR1"] if b"PAR1" in data else []
        for n, start in enumerate(marks):
            for end in marks[n + 1 :]:
                try:
                    texts.extend(_parquet_values(data[start : end + 4]))
                    break
                except Exception:  # noqa: S112 - not a whole Parquet file between these markers
                    continue
        hits += sum(text.count(identifier) for text in texts for identifier in identifiers)
    return hits


def encode_with(schema: dict[str, Any], batch: dict[str, Any], schema_id: int) -> bytes:
    """``batch`` in the Confluent wire format: magic byte, big-endian schema id, binary Avro of ``schema``."""
    import io
    import struct

    import fastavro

    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), batch)
    return buf.getvalue()


def as_version(batch: dict[str, Any], version: str, tag: str) -> dict[str, Any]:
    """A copy of ``batch`` with the values its schema ``version`` adds (``tag`` makes them unique)."""
    import copy

    out = copy.deepcopy(batch)
    if version in ("v2", "v3"):
        for i, r in enumerate(out["records"]):
            r["trace_id"] = f"{tag}-{i}"
    if version == "v3":
        out["env"] = f"env-{tag}"
        out.pop("region", None)
    return out
