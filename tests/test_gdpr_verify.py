"""The verifier's byte and Parquet scan, without Spark: what it must find and what it must not."""

from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq

from gdpr.verify import Needle, scan_bytes

NEEDLES = [Needle("r-ip", "10.1.2.3"), Needle("r-mail", "a+b@example.com"), Needle("r-none", "never-there")]


def _parquet(ip: str = "10.1.2.3", mail: str = "a+b@example.com") -> bytes:
    table = pa.table(
        {
            "message": [f"login from {ip} ok", "nothing here", None],
            "attributes": pa.array([[("to", mail)], [], None], pa.map_(pa.string(), pa.string())),
            "raw": pa.array([b"\x00" + mail.encode() + b"\x00", None, b""]),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def test_finds_values_inside_compressed_parquet_columns_maps_and_binary() -> None:
    found, decoded = scan_bytes("part.parquet", _parquet(), NEEDLES)
    assert decoded == 1
    assert found["r-ip"] >= 1 and found["r-mail"] >= 2
    assert "r-none" not in found


def test_finds_parquet_blocks_embedded_in_a_log_file_and_gzip_streams() -> None:
    log = b"#HUDI#header" + _parquet() + b"trailer" + gzip.compress(b"hfile block never-there")
    found, decoded = scan_bytes(".fg_001.log.1_0-1-1", log, NEEDLES)
    assert decoded == 1
    assert {"r-ip", "r-mail", "r-none"} <= set(found)


def test_identifiers_are_literals_not_patterns() -> None:
    # "." and "+" must not act as regex operators: 10x1x2x3 is not 10.1.2.3, aab@... is not a+b@...
    data = b"10x1x2x3 aab@example.com " + _parquet(ip="10x1x2x3", mail="aab@example.com")
    found, decoded = scan_bytes("f.log", data, NEEDLES)
    assert decoded == 1 and found == {}
