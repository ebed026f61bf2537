"""Proof of erasure: read every file under the tables' folders raw and count the subjects' identifiers.

Not through Hudi's merged view (which hides deleted records but not their bytes): each file is read
as it lies on storage. Parquet files, and Parquet blocks embedded in Hudi log files, are decoded
column by column (values sit compressed in data pages); every file is also searched byte for byte
(uncompressed Avro blocks, JSON timeline files, footers' min/max statistics) and inside any gzip
stream it contains (HFile blocks of the metadata table). The scan runs as a Spark job, one task per
group of files, so it reads S3 from the executors rather than through the driver.
"""

from __future__ import annotations

import contextlib
import io
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from loglake.storage import FileInfo

PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b\x08"


@dataclass(frozen=True)
class Needle:
    """One identifier to look for; reports name the request, never the value."""

    request_id: str
    value: str


@dataclass
class VerifyResult:
    files_scanned: int = 0
    bytes_scanned: int = 0
    parquet_blocks_decoded: int = 0
    hits: int = 0
    # file -> request ids found in it (identifiers never appear in the report)
    files_with_hits: dict[str, list[str]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.hits == 0


def _parquet_blobs(data: bytes, whole: bool) -> Iterator[bytes]:
    """The Parquet files in ``data``: all of it for a .parquet file, else each block embedded in a log file."""
    if whole:
        yield data
        return
    starts = []
    i = data.find(PARQUET_MAGIC)
    while i != -1:
        starts.append(i)
        i = data.find(PARQUET_MAGIC, i + 4)
    used_until = -1
    for s in starts:
        if s < used_until:
            continue
        for e in starts:
            if e <= s + 4:
                continue
            footer_len = int.from_bytes(data[e - 4 : e], "little")
            if e - 4 - footer_len <= s:
                continue
            yield data[s : e + 4]
            used_until = e + 4
            break


def _strings_in(blob: bytes) -> Iterator[object]:
    """Every string-like leaf column of a Parquet blob, flattened (maps, lists and structs included)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(blob))

    def leaves(arr: pa.Array) -> Iterator[pa.Array]:
        t = arr.type
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            yield arr
        elif pa.types.is_map(t):
            yield from leaves(arr.keys)
            yield from leaves(arr.items)
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            yield from leaves(arr.flatten())
        elif pa.types.is_struct(t):
            for i in range(t.num_fields):
                yield from leaves(arr.field(i))

    for column in table.columns:
        for chunk in column.chunks:
            yield from leaves(chunk)


def pattern(needles: Sequence[Needle]) -> str:
    """One RE2 alternation of every needle: a file or column is scanned once, not once per needle."""
    return "|".join(re.escape(n.value) for n in needles)


def _count(values: Iterable[object], needles: Sequence[Needle]) -> dict[str, int]:
    found: dict[str, int] = {}
    for v in values:
        if v is None:
            continue
        raw = v.encode() if isinstance(v, str) else v if isinstance(v, bytes) else str(v).encode()
        for n in needles:
            if c := raw.count(n.value.encode()):
                found[n.request_id] = found.get(n.request_id, 0) + c
    return found


def _count_in_arrays(arrays: Iterable[object], needles: Sequence[Needle], regex: str) -> dict[str, int]:
    """Occurrences per request id in string or binary arrays; only matching values reach Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found: dict[str, int] = {}
    for arr in arrays:
        assert isinstance(arr, pa.Array)
        mask = pc.match_substring_regex(arr, regex)
        if not pc.any(mask).as_py():
            continue
        for k, v in _count(arr.filter(mask).to_pylist(), needles).items():
            found[k] = found.get(k, 0) + v
    return found


def _gunzip_all(data: bytes) -> Iterator[bytes]:
    i = data.find(GZIP_MAGIC)
    while i != -1:
        with contextlib.suppress(zlib.error):
            yield zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[i:])
        i = data.find(GZIP_MAGIC, i + 3)


def scan_bytes(name: str, data: bytes, needles: Sequence[Needle]) -> tuple[dict[str, int], int]:
    """Hits per request id in one file's bytes, and how many Parquet blocks were decoded."""
    found: dict[str, int] = {}

    def add(more: dict[str, int]) -> None:
        for k, v in more.items():
            found[k] = found.get(k, 0) + v

    import pyarrow as pa

    regex = pattern(needles)
    raw = [data, *_gunzip_all(data)]
    add(_count_in_arrays([pa.array(raw, pa.large_binary())], needles, regex))
    decoded = 0
    if PARQUET_MAGIC in data:
        for blob in _parquet_blobs(data, whole=name.endswith(".parquet")):
            try:
                add(_count_in_arrays(_strings_in(blob), needles, regex))
                decoded += 1
            except Exception:  # noqa: S112 - a PAR1 byte pair that is not a Parquet file
                continue
    return found, decoded


def s3_options(spark: SparkSession) -> dict[str, str]:
    """The S3A endpoint and keys Spark uses (S3-compatible stores), so the workers' reads go to the same store.

    Empty on EMR and plain AWS: there the workers' own credential chain and the bucket's region apply.
    """
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    keys = {
        "endpoint": "fs.s3a.endpoint",
        "access_key": "fs.s3a.access.key",
        "secret_key": "fs.s3a.secret.key",
        "region": "fs.s3a.endpoint.region",
    }
    return {name: str(value) for name, key in keys.items() if (value := conf.get(key))}


def _open(path: str, s3: dict[str, str] | None = None) -> bytes:
    from pyarrow import fs

    filesystem: fs.FileSystem
    if path.startswith("file:"):
        local = path[len("file:") :]
        while local.startswith("//"):
            local = local[1:]
        filesystem = fs.LocalFileSystem()
        target = local
    elif path.startswith(("s3a://", "s3://")) and s3 and s3.get("endpoint"):
        endpoint = s3["endpoint"]
        scheme, _, host = endpoint.rpartition("://")
        filesystem = fs.S3FileSystem(
            access_key=s3.get("access_key"),
            secret_key=s3.get("secret_key"),
            endpoint_override=host or endpoint,
            scheme=scheme or "https",
            region=s3.get("region", "us-east-1"),
        )
        target = path.split("://", 1)[1]
    else:
        filesystem, target = fs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))
    with filesystem.open_input_stream(target) as stream:
        return bytes(stream.read())


def _scan_partition(
    paths: Iterable[str], needles: Sequence[Needle], s3: dict[str, str]
) -> Iterator[tuple[str, int, int, dict[str, int]]]:
    for path in paths:
        data = _open(path, s3)
        found, decoded = scan_bytes(path.rsplit("/", 1)[-1], data, needles)
        yield path, len(data), decoded, found


def verify(spark: SparkSession, files: Sequence[FileInfo], needles: Sequence[Needle]) -> VerifyResult:
    """Scan ``files`` for ``needles`` (see module docstring) and total the hits."""
    result = VerifyResult()
    if not files or not needles:
        result.files_scanned = len(files)
        result.bytes_scanned = sum(f.size for f in files)
        return result
    wanted = list(needles)
    s3 = s3_options(spark)
    slices = max(1, min(len(files), spark.sparkContext.defaultParallelism * 4))
    rows = (
        spark.sparkContext.parallelize([f.path for f in files], slices)
        .mapPartitions(lambda paths: _scan_partition(paths, wanted, s3))
        .collect()
    )
    for path, size, decoded, found in rows:
        result.files_scanned += 1
        result.bytes_scanned += size
        result.parquet_blocks_decoded += decoded
        if found:
            result.hits += sum(found.values())
            result.files_with_hits[path] = sorted(found)
    return result
