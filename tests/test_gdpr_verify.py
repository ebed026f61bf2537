"""The verifier's file scan, without Spark: each format decoded by meaning, the rest searched raw.

Real Hudi files are scanned by the integration tests (tests/test_gdpr_erasure.py); these build the
formats by hand to pin down each case, including damaged files.
"""

from __future__ import annotations

import gzip
import io
import json
import struct

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

from gdpr import hudi_log
from gdpr.match import AVRO_STRING, BOUNDED, EQUAL, Identifier, Matcher, avro_length_prefix
from gdpr.verify import scan_bytes

M = Matcher(
    [Identifier("r-ip", "10.1.2.3"), Identifier("r-mail", "a+b@example.com"), Identifier("r-none", "never-there")],
    identifier_fields=frozenset({"user_id", "email", "client_ip"}),
)


def _parquet(ip: str = "10.1.2.3", mail: str = "a+b@example.com", user: str = "u-1") -> bytes:
    table = pa.table(
        {
            "user_id": [user, "u-2", None],
            "client_ip": [ip, "10.9.9.9", None],
            "message": [f"login from {ip} ok", "nothing here", None],
            "attributes": pa.array([[("to", mail)], [], None], pa.map_(pa.string(), pa.string())),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def _found(name: str, data: bytes, m: Matcher = M) -> set[tuple[str, str, str]]:
    found, _ = scan_bytes(name, data, m)
    return {(f.column, f.match, f.request_id) for f in found}


def test_parquet_columns_are_judged_by_meaning() -> None:
    assert _found("part.parquet", _parquet()) == {
        ("client_ip", EQUAL, "r-ip"),
        ("message", BOUNDED, "r-ip"),
        ("attributes.value", BOUNDED, "r-mail"),
    }


def test_parquet_look_alikes_are_not_hits() -> None:
    data = _parquet(ip="10.1.2.30", mail="xa+b@example.com")
    found, stats = scan_bytes("part.parquet", data, M)
    assert found == set()
    assert stats.parquet_decoded == 1 and stats.raw_bytes == 0  # decoded, never searched as bytes


def _block(block_type: int, content: bytes, header: dict[int, str]) -> bytes:
    def meta(entries: dict[int, str]) -> bytes:
        out = struct.pack(">i", len(entries))
        for key, value in entries.items():
            raw = value.encode()
            out += struct.pack(">ii", key, len(raw)) + raw
        return out

    body = struct.pack(">ii", 1, block_type) + meta(header) + struct.pack(">q", len(content)) + content + meta({})
    body += struct.pack(">q", len(hudi_log.MAGIC) + 8 + len(body) + 8)
    return hudi_log.MAGIC + struct.pack(">q", len(body)) + body


AVRO_SCHEMA = {
    "type": "record",
    "name": "r",
    "fields": [{"name": "user_id", "type": ["null", "string"]}, {"name": "message", "type": "string"}],
}


def _avro_block(records: list[dict[str, object]]) -> bytes:
    content = struct.pack(">ii", 1, len(records))
    for record in records:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(AVRO_SCHEMA), record)
        content += struct.pack(">i", len(out.getvalue())) + out.getvalue()
    return _block(hudi_log.AVRO_DATA, content, {0: "20261127000000000", 2: json.dumps(AVRO_SCHEMA)})


def test_log_file_blocks_parquet_avro_and_damaged_tail() -> None:
    m = Matcher([Identifier("r-u", "u-1"), Identifier("r-ip", "10.1.2.3")], identifier_fields=frozenset({"user_id"}))
    log = (
        _block(hudi_log.PARQUET_DATA, _parquet(), {0: "20261127000000000"})
        + _avro_block([{"user_id": "u-1", "message": "x"}, {"user_id": "u-10", "message": "seen u-1."}])
        + _block(hudi_log.DELETE, b"\x00\x00\x00\x03" + avro_length_prefix(3) + b"u-1", {0: "20261127000000001"})
    )
    types = [b.name for b in hudi_log.blocks(log)]
    assert types == ["parquet", "avro", "delete"]
    torn = log + _block(hudi_log.PARQUET_DATA, b"PAR1 half a block from 10.1.2.3 ", {})[:-10]
    assert [b.name for b in hudi_log.blocks(torn)] == ["parquet", "avro", "delete", "corrupt"]
    found, stats = scan_bytes(".f1_20261127000000000.log.1_0-1-1", torn, m)
    assert {(f.column, f.match, f.request_id) for f in found} == {
        ("user_id", EQUAL, "r-u"),
        ("client_ip", BOUNDED, "r-ip"),  # not an identifier column of this matcher: text
        ("message", BOUNDED, "r-ip"),
        ("message", BOUNDED, "r-u"),  # "seen u-1." in the Avro block
        ("delete block", AVRO_STRING, "r-u"),
        ("corrupt block", BOUNDED, "r-ip"),
    }
    assert stats.parquet_decoded == 1 and stats.avro_blocks_decoded == 1


def test_block_types_reads_headers_only() -> None:
    log = _avro_block([{"user_id": None, "message": "m"}]) + _block(hudi_log.DELETE, b"x", {})
    reads: list[tuple[int, int]] = []

    def read_at(n: int, offset: int) -> bytes:
        reads.append((n, offset))
        return log[offset : offset + n]

    assert hudi_log.block_types(read_at, len(log)) == [hudi_log.AVRO_DATA, hudi_log.DELETE]
    assert all(n == 22 for n, _ in reads) and len(reads) == 2
    assert hudi_log.block_types(read_at, len(log) + 5) == [hudi_log.AVRO_DATA, hudi_log.DELETE, hudi_log.CORRUPT]


def test_raw_files_and_gzip_streams_inside_them() -> None:
    # An HFile-like file: compressed blocks holding Avro strings, and plain bytes around them.
    inner = b"\x00" + avro_length_prefix(8) + b"10.1.2.3" + b"\x00"
    data = b"DATABLK*" + gzip.compress(inner) + b"TRAILER " + gzip.compress(b"nothing") + b" a+b@example.com\n"
    assert _found("files-0000.hfile", data) == {("raw:gzip", AVRO_STRING, "r-ip"), ("raw", BOUNDED, "r-mail")}


def test_compressed_bytes_are_not_searched_as_text() -> None:
    m = Matcher([Identifier("r", "ab")])
    stream = gzip.compress(bytes(range(256)) * 50)
    # Plant the id inside the compressed bytes, between delimiters: only chance could put it there.
    assert m.in_raw(b" ab ") != set()
    found, stats = scan_bytes("x.hfile", stream, m)
    assert found == set() and stats.raw_bytes >= 256 * 50


def test_identifiers_are_literals_not_patterns() -> None:
    # "." and "+" must not act as regex operators: 10x1x2x3 is not 10.1.2.3, aab@... is not a+b@...
    data = b"10x1x2x3 aab@example.com " + _parquet(ip="10x1x2x3", mail="aab@example.com")
    assert _found("f.bin", data) == set()
