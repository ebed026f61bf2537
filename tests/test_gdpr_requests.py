"""Erasure request parsing (pure Python): every bad line is named by number and skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gdpr.requests import parse_file, parse_messages, parse_text
from loglake.errors import ConfigError


def test_jsonl_accepts_each_identifier_kind() -> None:
    text = "\n".join(
        [
            '{"request_id": "a", "user_id": "u-1"}',
            '{"request_id": "b", "email": "x@example.com"}',
            "",
            '{"request_id": "c", "client_ip": "10.0.0.1"}',
            '{"request_id": "d", "record_key": "api:b1:0"}',
        ]
    )
    parsed = parse_text(text, "r.jsonl")
    assert [(r.request_id, r.kind, r.value, r.source) for r in parsed.requests] == [
        ("a", "user_id", "u-1", "r.jsonl:1"),
        ("b", "email", "x@example.com", "r.jsonl:2"),
        ("c", "client_ip", "10.0.0.1", "r.jsonl:4"),
        ("d", "record_key", "api:b1:0", "r.jsonl:5"),
    ]
    assert parsed.rejections == []


def test_bad_jsonl_lines_are_rejected_by_line_number() -> None:
    text = "\n".join(
        [
            '{"request_id": "a", "user_id": "u-1"}',
            '{"request_id": "b"}',
            '{"request_id": "c", "phone": "123"}',
            "not json",
            '{"user_id": "u-2"}',
            '{"request_id": "e", "user_id": "u-3", "email": "y@example.com"}',
            '["a"]',
            '{"request_id": "a", "user_id": "u-9"}',
        ]
    )
    parsed = parse_text(text, "r.jsonl")
    assert [r.request_id for r in parsed.requests] == ["a"]
    reasons = {r.source: r.reason for r in parsed.rejections}
    assert list(reasons) == [f"r.jsonl:{n}" for n in range(2, 9)]
    assert "no identifier" in reasons["r.jsonl:2"]
    assert "unknown column phone" in reasons["r.jsonl:3"]
    assert "not JSON" in reasons["r.jsonl:4"]
    assert "no request_id" in reasons["r.jsonl:5"]
    assert "2 identifiers" in reasons["r.jsonl:6"]
    assert "JSON object" in reasons["r.jsonl:7"]
    assert "already used for another subject at r.jsonl:1" in reasons["r.jsonl:8"]


def test_csv_with_unknown_column_and_short_rows() -> None:
    text = "request_id,email,nickname\nr1,a@example.com,\nr2,,bob\nr3\nr1,a@example.com,\n"
    parsed = parse_text(text, "r.csv")
    assert [(r.request_id, r.value) for r in parsed.requests] == []
    # The unknown column makes every row unusable: each is named, none is silently half-read.
    assert [r.source for r in parsed.rejections] == ["r.csv:2", "r.csv:3", "r.csv:4", "r.csv:5"]
    assert "unknown column nickname" in parsed.rejections[0].reason
    assert "1 fields, the header has 3" in parsed.rejections[2].reason


def test_csv_good_rows_and_repeated_identical_request_kept_once() -> None:
    parsed = parse_text("request_id,user_id,email\nr1,u-1,\nr2,,b@example.com\nr1,u-1,\n", "r.csv")
    assert [(r.request_id, r.kind, r.source) for r in parsed.requests] == [
        ("r1", "user_id", "r.csv:2"),
        ("r2", "email", "r.csv:3"),
    ]
    assert parsed.rejections == []


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("\n  \n")
    parsed = parse_file(empty)
    assert parsed.requests == [] and "empty" in parsed.rejections[0].reason
    with pytest.raises(ConfigError, match=r"nope\.csv"):
        parse_file(tmp_path / "nope.csv")


def test_kafka_messages_named_by_topic_partition_offset() -> None:
    parsed = parse_messages(
        [
            ("req[0]@5", b'{"request_id": "k1", "email": "z@example.com"}'),
            ("req[0]@6", b"\xff\xfe"),
            ("req[1]@0", None),
            ("req[1]@1", b'{"request_id": "k2"}'),
        ]
    )
    assert [(r.request_id, r.source) for r in parsed.requests] == [("k1", "req[0]@5")]
    assert [r.source for r in parsed.rejections] == ["req[0]@6", "req[1]@0", "req[1]@1"]


def test_identifier_never_in_repr() -> None:
    request = parse_text('{"request_id": "a", "email": "secret@example.com"}', "r").requests[0]
    assert "secret" not in repr(request)


def test_identifiers_are_taken_byte_for_byte() -> None:
    long_id = "u-" + "x" * 5000
    text = "\n".join(
        json.dumps({"request_id": f"r{n}", "user_id": value})
        for n, value in enumerate([" spaced ", "José", "Jose\u0301", "u1\x00", "u1\n", "a\u2028b", long_id, "U1"])
    )
    parsed = parse_text(text, "r.jsonl")
    assert [r.value for r in parsed.requests] == [
        " spaced ",
        "José",
        "Jose\u0301",
        "u1\x00",
        "u1\n",
        "a\u2028b",
        long_id,
        "U1",
    ]
    assert parsed.rejections == []
    # Kept as given, but pointed out: whitespace at either end is rarely meant.
    assert [(n.source, "whitespace" in n.reason) for n in parsed.notes()] == [("r.jsonl:1", True), ("r.jsonl:5", True)]


def test_whitespace_only_identifiers_are_rejected_by_line() -> None:
    text = "\n".join(
        [
            '{"request_id": "a", "user_id": "   "}',
            '{"request_id": "b", "email": "\\t"}',
            '{"request_id": "c", "user_id": "u-1", "email": " "}',
        ]
    )
    parsed = parse_text(text, "r.jsonl")
    assert [(r.source, "only whitespace" in r.reason) for r in parsed.rejections] == [
        ("r.jsonl:1", True),
        ("r.jsonl:2", True),
    ]
    # A blank second column next to a real identifier is no second identifier.
    assert [(r.request_id, r.kind, r.value) for r in parsed.requests] == [("c", "user_id", "u-1")]


def test_csv_cells_keep_their_spaces_and_quoted_newlines() -> None:
    parsed = parse_text('request_id,user_id\nr1, u-1\nr2,"u\n2"\nr3,   \n', "r.csv")
    assert [(r.request_id, r.value) for r in parsed.requests] == [("r1", " u-1"), ("r2", "u\n2")]
    assert [r.source for r in parsed.rejections] == ["r.csv:5"]
    assert "only whitespace" in parsed.rejections[0].reason
