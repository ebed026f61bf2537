"""The matching rules of the verifier and the redaction, without Spark: hits, and look-alikes that are not."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from gdpr.match import (
    AVRO_STRING,
    BOUNDED,
    EQUAL,
    HASH,
    JSON_ESCAPED,
    AvroDecoder,
    HashedIdentifier,
    Identifier,
    Matcher,
    avro_length_prefix,
    json_decoder,
    subject_digest,
)

ERASED = {
    "r-u1": "u1",
    "r-mail": "a@b.com",
    "r-ip": "10.0.0.1",
    "r-quote": "o'brien",
    "r-star": "*",
    "r-space": " spaced ",
}
FIELDS = frozenset({"user_id", "email", "client_ip"})


def matcher(**kwargs: object) -> Matcher:
    return Matcher(
        [Identifier(r, v) for r, v in ERASED.items()],
        identifier_fields=FIELDS,
        key_fields=frozenset({"record_key"}),
        **kwargs,  # type: ignore[arg-type]
    )


def hits(text: str) -> set[str]:
    return {f.request_id for f in matcher().in_text(text, "message")}


# Pairs (text, request ids found): the first group holds the identifier, the second only look-alikes.
HOLDS = [
    ("login by u1", {"r-u1"}),
    ("u1 logged in", {"r-u1"}),
    ("login by u1.", {"r-u1"}),
    ("users u1, u2 and u3", {"r-u1"}),
    ("user=u1;", {"r-u1"}),
    ('{"note": "hi"} u1', {"r-u1"}),
    ("mail sent to a@b.com.", {"r-mail"}),
    ("<a@b.com>", {"r-mail"}),
    ("from 10.0.0.1:443", {"r-ip"}),
    ("from 10.0.0.1!", {"r-ip"}),
    ("hello o'brien!", {"r-quote"}),
    ("(o'brien)", {"r-quote"}),
    ("SELECT * FROM t", {"r-star"}),
]
LOOKS_ALIKE = [
    "login by u10",
    "login by xu1",
    "u1_x",
    "u1-admin",
    "U1",
    "xa@b.com",
    "a@b.com.au",
    "a@b.co",
    "10.0.0.10",
    "110.0.0.1",
    "10.0.0.1.5",
    "o'brien2",
    "o''brien",
    "a*b",
    "**",
    "by spaced ok",
    "u1\x00",
    "\x00u1",
    "u1\u202e",
    "\u202du1",
    "u1\u0301",
    "u%1",
    "u_1",
]


@pytest.mark.parametrize(("text", "expected"), HOLDS)
def test_identifier_bounded_in_text_is_a_hit(text: str, expected: set[str]) -> None:
    assert hits(text) == expected


@pytest.mark.parametrize("text", LOOKS_ALIKE)
def test_look_alikes_in_text_are_not_hits(text: str) -> None:
    assert hits(text) == set()


def test_json_text_is_judged_field_by_field() -> None:
    m = matcher()
    # The tokens of this document include u1 and a@b.com, but its identifier fields hold look-alikes.
    lookalike = json.dumps({"user_id": "u1 ", "email": "a@b.com\u200b", "message": "hi"})
    assert m.in_text(lookalike, "record_json") == set()
    real = {(f.column, f.match) for f in m.in_text(json.dumps({"user_id": "u1", "message": "ok"}), "record_json")}
    assert real == {("record_json.user_id", EQUAL)}
    mention = {(f.column, f.match) for f in m.in_text('{"message": "reset sent to a@b.com"}', "record_json")}
    assert mention == {("record_json.message", BOUNDED)}


def test_text_arrays_agree_with_the_scalar_rule() -> None:
    m = matcher()
    texts = [t for t, _ in HOLDS] + LOOKS_ALIKE + [None, ""]
    found = m.in_text_array(pa.array(texts, pa.string()), "message")
    assert {f.request_id for f in found} == set().union(*(e for _, e in HOLDS))
    for text in LOOKS_ALIKE:
        assert m.in_text_array(pa.array([text]), "message") == set(), text


def test_identifier_columns_match_equal_values_only() -> None:
    m = matcher()
    column = pa.array(["u1", "u10", " u1", "u1 ", "U1", "a@b.com", "A@b.com", None])
    found = {(f.request_id, f.match) for f in m.in_identifier_array(column, "user_id")}
    assert found == {("r-u1", EQUAL), ("r-mail", EQUAL)}
    assert m.in_identifier_array(pa.array(["spaced", " spaced"]), "user_id") == set()


def test_raw_bytes_avro_strings_and_bounded_text() -> None:
    m = matcher()
    framed = avro_length_prefix(2) + b"u1" + avro_length_prefix(7) + b"a@b.com"
    assert {(f.request_id, f.match) for f in m.in_raw(framed)} == {("r-u1", AVRO_STRING), ("r-mail", AVRO_STRING)}
    assert {f.request_id for f in m.in_raw(b"\x10login by u1 ok")} == {"r-u1"}
    # Inside a longer Avro string, or next to letters, it is a look-alike's.
    assert m.in_raw(avro_length_prefix(3) + b"u10" + avro_length_prefix(8) + b"xa@b.com") == set()
    assert m.in_raw(b"Pu1P 10.0.0.10 a@b.com.au") == set()
    long_id = "x" * 300
    lm = Matcher([Identifier("r-long", long_id)])
    assert {f.match for f in lm.in_raw(b"\x01" + avro_length_prefix(300) + long_id.encode() + b"z")} == {AVRO_STRING}


def test_raw_bytes_json_escaped_forms() -> None:
    m = Matcher([Identifier("r-q", 'a"b'), Identifier("r-nl", "u\n1"), Identifier("r-e", "José")])
    blob = json.dumps({"user_id": 'a"b', "email": "u\n1", "x": "José"}, ensure_ascii=True).encode()
    assert {(f.request_id, f.match) for f in m.in_raw(blob)} == {
        ("r-q", JSON_ESCAPED),
        ("r-nl", JSON_ESCAPED),
        ("r-e", JSON_ESCAPED),
    }


def test_raw_skip_ranges_are_not_searched() -> None:
    m = matcher()
    data = b"xx u1 yy u1 zz"
    assert m.in_raw(data, skip=[(0, len(data))]) == set()
    assert {f.request_id for f in m.in_raw(data, skip=[(0, 6)])} == {"r-u1"}


def test_hashed_identifiers_match_by_the_ledgers_salted_hash() -> None:
    hashed = [HashedIdentifier("old", "user_id", subject_digest("salt", "user_id", "u-77"))]
    m = Matcher([], hashed=hashed, salt="salt", identifier_fields=FIELDS)
    assert {(f.request_id, f.match) for f in m.in_identifier_array(pa.array(["u-7", "u-77"]), "user_id")} == {
        ("old", HASH)
    }
    assert m.in_identifier_array(pa.array(["u-77"]), "email") == set()  # another kind of identifier
    assert (
        Matcher([], hashed=hashed, salt="other", identifier_fields=FIELDS).in_identifier_array(
            pa.array(["u-77"]), "user_id"
        )
        == set()
    )


def test_record_keys_are_looked_for_in_key_columns_only() -> None:
    m = Matcher([], record_keys=[Identifier("rk", "api:b1:0")], key_fields=frozenset({"record_key"}))
    assert {f.request_id for f in m.in_key_array(pa.array(["api:b1:0", "api:b1:01"]), "record_key")} == {"rk"}
    assert m.in_text("api:b1:0", "message") == set()


def test_decoders_read_only_whole_documents() -> None:
    import random

    from app.produce import encode_avro, make_batch
    from loglake.shape import avro_schema_json

    batch = make_batch(random.Random(1), 1_764_000_000_000, 3)
    batch["records"][0]["user_id"] = "u1"
    decoder = AvroDecoder(avro_schema_json())
    payload = encode_avro(batch)
    assert decoder(payload)["records"][0]["user_id"] == "u1"
    assert decoder(encode_avro(batch, confluent_wire_format=True))["batch_id"] == batch["batch_id"]
    assert decoder(payload[:-3]) is None
    assert decoder(payload + b"\x00") is None
    assert json_decoder(b' {"a": 1}') == {"a": 1}
    m = matcher()
    found = set(m.walk(decoder(payload), "raw_value"))
    assert {(f.column, f.match, f.request_id) for f in found} >= {("raw_value.records.user_id", EQUAL, "r-u1")}


def test_empty_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        Matcher([Identifier("r", "")])
