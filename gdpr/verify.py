"""Proof of erasure: read every file under the tables' folders as it lies on storage and look for the subjects.

Not through Hudi's merged view, which hides deleted records but not their bytes. Each file is
decoded as far as its format allows, so that a value is judged by what it means
(:mod:`gdpr.match`): Parquet base files, and the Parquet and Avro data blocks inside Hudi log files,
column by column (identifier columns by equality, text bounded, binary raw or decoded); everything
that cannot be decoded (metadata-table HFiles, delete and command blocks, timeline files, unknown
files) raw, byte for byte, and inside every gzip stream it holds. The scan runs as a Spark job, one
task per group of files, so S3 is read by the executors rather than through the driver.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from gdpr import hudi_log
from gdpr.match import Found, Matcher, decode_document, parsed_schema
from loglake.storage import FileInfo

GZIP_MAGIC = b"\x1f\x8b\x08"
# Hudi's own meta columns that it fills itself (instant times, sequence numbers, file names): they
# cannot hold anything a producer sent. _hoodie_record_key and _hoodie_partition_path copy user data
# and are read like any column.
GENERATED_COLUMNS = frozenset({"_hoodie_commit_time", "_hoodie_commit_seqno", "_hoodie_file_name"})
# Report at most this many hits in full; the count covers all of them.
MAX_HITS_LISTED = 1000


@dataclass
class ScanStats:
    files: int = 0
    bytes: int = 0
    parquet_decoded: int = 0  # Parquet files and Parquet log blocks read column by column
    avro_blocks_decoded: int = 0
    raw_bytes: int = 0  # bytes searched raw (undecodable), including decompressed gzip streams

    def add(self, other: ScanStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class VerifyResult:
    files_scanned: int = 0
    bytes_scanned: int = 0
    parquet_decoded: int = 0
    avro_blocks_decoded: int = 0
    raw_bytes_scanned: int = 0
    hits: int = 0
    # The first MAX_HITS_LISTED hits: file, column, kind of match, request id (never the identifier).
    hit_list: list[dict[str, str]] = field(default_factory=list)
    # file -> request ids found in it
    files_with_hits: dict[str, list[str]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.hits == 0

    def requests_hit(self) -> dict[str, int]:
        """Files with hits per request id."""
        counts: dict[str, int] = {}
        for ids in self.files_with_hits.values():
            for r in ids:
                counts[r] = counts.get(r, 0) + 1
        return counts


# ---------------------------------------------------------------- formats


def _leaves(array: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, array) of every leaf column: map keys and values, list items and struct fields flattened."""
    import pyarrow as pa

    t = array.type
    if pa.types.is_map(t):
        yield from _leaves(array.keys, f"{path}.key")
        yield from _leaves(array.items, f"{path}.value")
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        yield from _leaves(array.flatten(), f"{path}[]")
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _leaves(array.field(i), f"{path}.{t.field(i).name}")
    else:
        yield path, array


def scan_parquet(data: bytes, matcher: Matcher, decoders: Sequence[Any], stats: ScanStats) -> set[Found]:
    """Hits in one Parquet file's columns and footer metadata, judged by column (see :mod:`gdpr.match`)."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(io.BytesIO(data))
    found: set[Found] = set()
    for key, value in (parquet.metadata.metadata or {}).items():
        name = f"footer:{key.decode('utf-8', errors='replace')}"
        try:
            found |= matcher.in_text(value.decode("utf-8"), name)
        except UnicodeDecodeError:
            found |= matcher.in_raw(value, name)
    stats.parquet_decoded += 1
    # A row group at a time: a 120 MB base file decodes to gigabytes at once.
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group)
        found |= _scan_columns(table, matcher, decoders)
    return found


def _scan_columns(table: Any, matcher: Matcher, decoders: Sequence[Any]) -> set[Found]:
    import pyarrow as pa

    found: set[Found] = set()
    for column_name in table.column_names:
        if column_name in GENERATED_COLUMNS:
            continue
        column = table.column(column_name)
        for chunk in column.chunks:
            for path, leaf in _leaves(chunk, column_name):
                t = leaf.type
                if pa.types.is_string(t) or pa.types.is_large_string(t):
                    if path in matcher.identifier_fields:
                        found |= matcher.in_identifier_array(leaf, path)
                        continue
                    if path in matcher.key_fields:
                        found |= matcher.in_key_array(leaf, path)
                    found |= matcher.in_text_array(leaf, path)
                elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
                    found |= matcher.in_binary_array(leaf, path, decoders)
    return found


def _gzip_streams(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(start, end, decompressed) of every gzip stream inside ``data`` (HFile blocks of the metadata table)."""
    view = memoryview(data)
    i = data.find(GZIP_MAGIC)
    while i != -1:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        parts: list[bytes] = []
        pos = i
        try:
            # Fed in pieces, so a stream's end is found without copying the rest of the file each time.
            while pos < len(data) and not inflater.eof:
                piece = view[pos : pos + 65536]
                parts.append(inflater.decompress(piece))
                pos += len(piece)
        except zlib.error:
            i = data.find(GZIP_MAGIC, i + 3)
            continue
        end = pos - len(inflater.unused_data) if inflater.eof else len(data)
        yield i, end, b"".join(parts)
        i = data.find(GZIP_MAGIC, max(end, i + 3))


def scan_raw(data: bytes, matcher: Matcher, stats: ScanStats, column: str = "raw") -> set[Found]:
    """Hits in undecodable bytes and in the gzip streams inside them (searched decompressed, not as
    compressed bytes, where an identifier could only appear by chance)."""
    found: set[Found] = set()
    compressed: list[tuple[int, int]] = []
    for start, end, inflated in _gzip_streams(data):
        found |= matcher.in_raw(inflated, f"{column}:gzip")
        stats.raw_bytes += len(inflated)
        compressed.append((start, end))
    found |= matcher.in_raw(data, column, skip=compressed)
    stats.raw_bytes += len(data) - sum(e - s for s, e in compressed)
    return found


def _avro_records(content: bytes, schema_json: str) -> Iterator[Any]:
    """Records of an Avro data block: int version, int count, then per record int size + binary Avro."""
    import fastavro

    schema = parsed_schema(schema_json)
    pos = 4
    count = int.from_bytes(content[pos : pos + 4], "big", signed=True)
    pos += 4
    for _ in range(count):
        size = int.from_bytes(content[pos : pos + 4], "big", signed=True)
        pos += 4
        yield fastavro.schemaless_reader(io.BytesIO(content[pos : pos + size]), schema, None)
        pos += size


def scan_log(data: bytes, matcher: Matcher, decoders: Sequence[Any], stats: ScanStats) -> set[Found]:
    """Hits in a Hudi log file, block by block: data blocks decoded, the rest raw."""
    found: set[Found] = set()
    for block in hudi_log.blocks(data):
        content = data[block.content_start : block.content_end]
        where = f"{block.name} block"
        for key, value in block.header.items():
            if key != hudi_log.HEADER_SCHEMA:
                found |= matcher.in_text(value, f"{where} header")
        decoded = False
        if block.block_type == hudi_log.PARQUET_DATA:
            try:
                found |= scan_parquet(content, matcher, decoders, stats)
                decoded = True
            except Exception:  # a damaged block is searched raw below
                decoded = False
        elif block.block_type == hudi_log.AVRO_DATA and hudi_log.HEADER_SCHEMA in block.header:
            try:
                records = list(_avro_records(content, block.header[hudi_log.HEADER_SCHEMA]))
            except Exception:  # a damaged block is searched raw below
                records = None
            if records is not None:
                for record in records:
                    found.update(matcher.walk(record, ""))
                stats.avro_blocks_decoded += 1
                decoded = True
        if not decoded:
            # The block's own framing (sizes, header) stays out of it: a length could spell a short id.
            found |= scan_raw(content, matcher, stats, column=where)
    return found


def scan_bytes(name: str, data: bytes, matcher: Matcher, decoders: Sequence[Any] = ()) -> tuple[set[Found], ScanStats]:
    """Hits in one file's bytes, by its kind: a Parquet file, a Hudi log file, or anything else (raw)."""
    stats = ScanStats(files=1, bytes=len(data))
    if name.endswith(".parquet") and data[:4] == b"PAR1":
        try:
            return scan_parquet(data, matcher, decoders, stats), stats
        except Exception:  # not readable as Parquet after all: raw
            stats = ScanStats(files=1, bytes=len(data))
    elif ".log." in name and data.startswith(hudi_log.MAGIC):
        return scan_log(data, matcher, decoders, stats), stats
    return scan_raw(data, matcher, stats), stats


# ---------------------------------------------------------------- storage and Spark


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


def filesystem(path: str, s3: dict[str, str] | None = None) -> tuple[Any, str]:
    """A pyarrow file system and the path within it, for a Hadoop-style path (file:, s3a:, s3:)."""
    from pyarrow import fs

    if path.startswith("file:"):
        local = path[len("file:") :]
        while local.startswith("//"):
            local = local[1:]
        return fs.LocalFileSystem(), local
    if path.startswith(("s3a://", "s3://")) and s3 and s3.get("endpoint"):
        endpoint = s3["endpoint"]
        scheme, _, host = endpoint.rpartition("://")
        store = fs.S3FileSystem(
            access_key=s3.get("access_key"),
            secret_key=s3.get("secret_key"),
            endpoint_override=host or endpoint,
            scheme=scheme or "https",
            region=s3.get("region", "us-east-1"),
        )
        return store, path.split("://", 1)[1]
    if path.startswith("/"):
        return fs.LocalFileSystem(), path
    return fs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))


def read_file(path: str, s3: dict[str, str] | None = None) -> bytes:
    store, target = filesystem(path, s3)
    with store.open_input_stream(target) as stream:
        return bytes(stream.read())


def _scan_partition(
    paths: Iterable[str], matcher: Matcher, decoders: Sequence[Any], s3: dict[str, str]
) -> Iterator[tuple[str, ScanStats, list[Found]]]:
    for path in paths:
        try:
            data = read_file(path, s3)
        except FileNotFoundError:
            # Cleaned away by a concurrent writer between listing and reading: nothing left to hold a value.
            continue
        found, stats = scan_bytes(path.rsplit("/", 1)[-1], data, matcher, decoders)
        yield path, stats, sorted(found, key=lambda f: (f.request_id, f.column, f.match))


def verify(
    spark: SparkSession, files: Sequence[FileInfo], matcher: Matcher, decoders: Sequence[Any] = ()
) -> VerifyResult:
    """Scan ``files`` for the matcher's identifiers (see module docstring) and total the hits."""
    result = VerifyResult()
    if not files or matcher.empty:
        result.files_scanned = len(files)
        result.bytes_scanned = sum(f.size for f in files)
        return result
    s3 = s3_options(spark)
    wanted = list(decoders)
    slices = max(1, min(len(files), spark.sparkContext.defaultParallelism * 4))
    # Largest first, so one big file does not end up last in a task of many.
    paths = [f.path for f in sorted(files, key=lambda f: -f.size)]
    rows = (
        spark.sparkContext.parallelize(paths, slices)
        .mapPartitions(lambda part: _scan_partition(part, matcher, wanted, s3))
        .collect()
    )
    total = ScanStats()
    for path, stats, found in rows:
        total.add(stats)
        for f in found:
            result.hits += 1
            if len(result.hit_list) < MAX_HITS_LISTED:
                result.hit_list.append({"file": path, "column": f.column, "match": f.match, "request_id": f.request_id})
        if found:
            result.files_with_hits[path] = sorted({f.request_id for f in found})
    result.files_scanned = total.files
    result.bytes_scanned = total.bytes
    result.parquet_decoded = total.parquet_decoded
    result.avro_blocks_decoded = total.avro_blocks_decoded
    result.raw_bytes_scanned = total.raw_bytes
    return result


def matching_documents(
    matcher: Matcher, rows: Iterable[tuple[str, bytes | None, str | None]], decoders: Sequence[Any]
) -> Iterator[str]:
    """Keys of quarantine rows whose raw bytes or record text hold an identifier (the verifier's rules)."""
    for key, raw, record in rows:
        hit = False
        if raw:
            document = decode_document(raw, decoders)
            hit = bool(set(matcher.walk(document, "raw_value")) if document is not None else matcher.in_raw(raw))
        if hit or (record and matcher.in_text(record, "record_json")):
            yield key
