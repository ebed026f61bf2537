"""Erasure request parsing (pure Python): every bad line is named by number and skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gdpr.requests import (
    identifier_kinds,
    parse_file,
    parse_messages,
    parse_text,
    restrict,
)
from loglake.errors import ConfigError
from loglake.settings import LogSchemaSettings, load_settings
from loglake.shape import default_shape

PHONE_TABLE = ["phone", "user_ref"]


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


def test_default_kinds_are_the_settings_default() -> None:
    # Without columns given, the LogBatch shape's: the settings' default, derived from one place.
    assert list(default_shape().subject_columns) == LogSchemaSettings().subject_columns
    assert identifier_kinds() == ("user_id", "email", "client_ip", "record_key")


def test_configured_subject_columns_replace_the_default_ones() -> None:
    columns = load_settings(assignments=["log_schema.subject_columns=[phone, user_ref]"]).log_schema.subject_columns
    assert columns == PHONE_TABLE
    text = "\n".join(
        [
            '{"request_id": "p", "phone": "+44 20 7946 0000"}',
            '{"request_id": "u", "user_ref": "ref-1"}',
            '{"request_id": "e", "email": "x@example.com"}',
        ]
    )
    parsed = parse_text(text, "r.jsonl", subject_columns=columns)
    assert [(r.request_id, r.kind, r.value, r.source) for r in parsed.requests] == [
        ("p", "phone", "+44 20 7946 0000", "r.jsonl:1"),
        ("u", "user_ref", "ref-1", "r.jsonl:2"),
    ]
    assert [r.source for r in parsed.rejections] == ["r.jsonl:3"]
    assert parsed.rejections[0].reason == (
        "unknown column email; expected request_id and one of phone, user_ref, record_key"
    )


def test_configured_columns_in_csv_files_and_messages(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("request_id,phone,user_ref\nr1,555-0100,\nr2,,ref-2\nr3,555-0101,ref-3\n")
    parsed = parse_file(path, subject_columns=PHONE_TABLE)
    assert [(r.request_id, r.kind) for r in parsed.requests] == [("r1", "phone"), ("r2", "user_ref")]
    assert [(r.source, "2 identifiers" in r.reason) for r in parsed.rejections] == [("r.csv:4", True)]
    # The default columns are not known to a table configured without them, in a header as in a message.
    assert (
        "unknown column user_id"
        in parse_text("request_id,user_id\nr1,u-1\n", "r.csv", subject_columns=PHONE_TABLE).rejections[0].reason
    )
    parsed = parse_messages(
        [("req[0]@0", b'{"request_id": "k1", "user_id": "u-1"}'), ("req[0]@1", b'{"request_id": "k2", "phone": "1"}')],
        subject_columns=PHONE_TABLE,
    )
    assert [(r.request_id, r.kind, r.source) for r in parsed.requests] == [("k2", "phone", "req[0]@1")]
    assert [r.source for r in parsed.rejections] == ["req[0]@0"]
    assert "phone, user_ref, record_key" in parsed.rejections[0].reason
    # A request with no identifier names the configured columns too.
    empty = parse_text('{"request_id": "n"}', "r.jsonl", subject_columns=PHONE_TABLE).rejections[0].reason
    assert empty.endswith("expected one of phone, user_ref, record_key")


def test_requests_parsed_for_other_columns_are_restricted_to_the_configured_ones() -> None:
    parsed = parse_text(
        '{"request_id": "a", "email": "x@example.com"}\n{"request_id": "b", "record_key": "api:b1:0"}\nnot json',
        "r.jsonl",
    )
    kept = restrict(parsed, PHONE_TABLE)
    assert [r.request_id for r in kept.requests] == ["b"]
    assert [r.source for r in kept.rejections] == ["r.jsonl:3", "r.jsonl:1"]
    assert "one of phone, user_ref, record_key" in kept.rejections[1].reason
    assert restrict(parsed, default_shape().subject_columns) == parsed


@pytest.mark.parametrize("column", ["request_id", "record_key", "Received_At"])
def test_a_subject_column_named_like_a_request_field_is_refused(column: str) -> None:
    with pytest.raises(ConfigError, match=rf"log_schema.subject_columns: {column} cannot be"):
        parse_text('{"request_id": "a", "phone": "1"}', "r.jsonl", subject_columns=["phone", column])
