"""When a value in a file is an erased subject's identifier, and when it only looks like one.

The verifier and the quarantine redaction share these rules, so what an erasure redacts is exactly
what verification would call a leftover. Identifiers are compared byte for byte, never normalised
(case, Unicode form, whitespace): a look-alike is somebody else.

- **Identifier fields** (the table's subject columns, setting ``log_schema.subject_columns``, and the
  same names inside decoded Avro or JSON): a hit is a value *equal* to an erased identifier. ``u10``
  is not ``u1``.
- **Text** (messages, attribute keys and values, every other string): a hit is the identifier
  *bounded* on both sides by the start or end of the text, whitespace, or a delimiter
  (:data:`DELIMITERS`); sentence punctuation (``.!?``) may stand between the identifier and its
  right-hand boundary. A delimiter that occurs in the identifier itself does not bound it. So ``u1``
  in ``u10``, ``a@b.com`` in ``xa@b.com``, ``10.0.0.1`` in ``10.0.0.10`` and ``o'brien`` in
  ``o'brien2`` are not hits; ``u1`` in ``login by u1.`` is. Text that is a JSON document is decoded
  and checked field by field instead.
- **Raw bytes** (what cannot be decoded: metadata-table HFiles, delete blocks, timeline files,
  undecodable quarantined messages): a hit is an Avro string that holds exactly the identifier (its
  length prefix says so), or the identifier bounded as in text, where control bytes bound it too
  (binary framing). The JSON-escaped form of an identifier counts as well.

Whitespace-padded look-alikes are the one thing text cannot tell apart: in free text, ``u1`` between
two spaces is ``u1`` whoever wrote it, so a bystander whose id is `` u1 `` is indistinguishable from
the subject ``u1`` there (identifier fields still tell them apart).
"""

from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# Characters that end an identifier in text, besides whitespace and Unicode separators.
DELIMITERS = frozenset("\"'`()[]{}<>,;:=/\\|&")
# Sentence punctuation that may follow an identifier before its boundary ("... by u1.").
TRAILING = frozenset(".!?")
_ASCII_SPACE = frozenset(" \t\n\r\f\v")
# The same delimiters as one RE2 character class, for splitting text into candidate tokens in Arrow.
_SPLIT_PATTERN = "[\\x{9}-\\x{d} \\p{Z}\"'`()\\[\\]{}<>,;:=/\\\\|&]+"

# Match kinds a report names.
EQUAL = "equal"  # an identifier field equal to the identifier
HASH = "hash"  # an identifier field whose salted hash is a pending request's (value not at hand)
BOUNDED = "bounded"  # the identifier bounded in text
AVRO_STRING = "avro-string"  # raw bytes: an Avro string holding exactly the identifier
JSON_ESCAPED = "json-escaped"  # raw bytes or text: the identifier as JSON escapes it, bounded


@dataclass(frozen=True)
class Identifier:
    """An identifier to look for, known by value; reports name the request, never the value."""

    request_id: str
    value: str


@dataclass(frozen=True)
class HashedIdentifier:
    """An identifier known only by the ledger's salted hash (a request erased by an earlier run)."""

    request_id: str
    kind: str
    digest: str


def subject_digest(salt: str, kind: str, value: str) -> str:
    """The ledger's salted SHA-256 of an identifier: the same subject always hashes alike under one salt."""
    return hashlib.sha256(f"{salt}\x00{kind}\x00{value}".encode()).hexdigest()


def _is_separator(ch: str) -> bool:
    return ch in _ASCII_SPACE or (ch > "\x7f" and unicodedata.category(ch) in ("Zs", "Zl", "Zp"))


def _text_delimiter(ch: str, value: str) -> bool:
    return (ch in DELIMITERS or _is_separator(ch)) and ch not in value


def bounded_at(text: str, start: int, end: int, value: str) -> bool:
    """Whether ``text[start:end]`` (an occurrence of ``value``) is bounded as the module docstring says."""
    if start > 0 and not _text_delimiter(text[start - 1], value):
        return False
    k = end
    while k < len(text) and text[k] in TRAILING:
        k += 1
    return k == len(text) or _text_delimiter(text[k], value)


_RAW_DELIMITERS = frozenset(b"\"'`()[]{}<>,;:=/\\|& \t\n\r\f\v") | frozenset(range(0x20)) | {0x7F}


def _raw_delimiter(byte: int, value: bytes) -> bool:
    return byte in _RAW_DELIMITERS and byte not in value


def raw_bounded_at(data: bytes, start: int, end: int, value: bytes) -> bool:
    """:func:`bounded_at` for bytes, where control bytes (binary framing) bound an identifier too."""
    if start > 0 and not _raw_delimiter(data[start - 1], value):
        return False
    k = end
    while k < len(data) and data[k] in b".!?":
        k += 1
    return k == len(data) or _raw_delimiter(data[k], value)


def avro_length_prefix(length: int) -> bytes:
    """The zig-zag varint Avro writes before a string of ``length`` bytes."""
    z = length << 1
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def json_escapes(value: str) -> list[str]:
    """The forms JSON writers give ``value`` inside a string literal, other than ``value`` itself."""
    forms = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    forms.discard(value)
    return sorted(forms)


def _tokenizable(value: str) -> bool:
    """Whether every bounded occurrence of ``value`` is a whole token after splitting text on delimiters."""
    return bool(value) and not any(ch in DELIMITERS or _is_separator(ch) for ch in value) and value[-1] not in TRAILING


@dataclass(frozen=True)
class Found:
    """One kind of hit for one request in one place (a column, a field path or ``raw``)."""

    column: str
    match: str
    request_id: str


@dataclass
class Matcher:
    """The rules above, compiled for a set of identifiers. Picklable: it ships to Spark's Python workers.

    ``identifiers`` are searched everywhere (identifier fields by equality, text, raw bytes);
    ``record_keys`` (erasures by record key, which carry no personal data) only in the record-key
    columns ``key_fields``, by equality; ``hashed`` requests, whose identifiers this run was not
    given, in identifier fields (and record-key columns) by the ledger's salted hash.
    """

    identifiers: Sequence[Identifier]
    record_keys: Sequence[Identifier] = ()
    hashed: Sequence[HashedIdentifier] = ()
    salt: str = ""
    identifier_fields: frozenset[str] = frozenset()
    key_fields: frozenset[str] = frozenset()
    _by_value: dict[str, set[str]] = field(init=False, default_factory=dict)
    _by_key: dict[str, set[str]] = field(init=False, default_factory=dict)
    _by_digest: dict[tuple[str, str], set[str]] = field(init=False, default_factory=dict)
    _automata: dict[str, Any] = field(init=False, default_factory=dict)
    _forms: tuple[list[str], list[str]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        for ident in self.identifiers:
            if not ident.value:
                raise ValueError(f"request {ident.request_id}: an empty identifier matches nothing safely")
            self._by_value.setdefault(ident.value, set()).add(ident.request_id)
        for key in self.record_keys:
            self._by_key.setdefault(key.value, set()).add(key.request_id)
        for h in self.hashed:
            self._by_digest.setdefault((h.kind, h.digest), set()).add(h.request_id)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_automata"] = {}  # rebuilt lazily in each worker
        return state

    @property
    def empty(self) -> bool:
        return not self._by_value and not self._by_key and not self._by_digest

    @property
    def hashed_kinds(self) -> set[str]:
        return {kind for kind, _ in self._by_digest}

    # ------------------------------------------------------------ search structures

    def _automaton(self, mode: str) -> Any:
        """Aho-Corasick over every form of every identifier: one pass per text or blob, any number of them.

        ``text`` keys are the identifiers and their JSON escapes as text; ``raw`` keys are their UTF-8
        bytes, as Latin-1 text so that a blob decodes to a string of the same length.
        """
        automaton = self._automata.get(mode)
        if automaton is None:
            import ahocorasick

            automaton = ahocorasick.Automaton()
            entries: dict[str, list[tuple[str, str]]] = {}
            for value in self._by_value:
                for form, kind in [(value, BOUNDED), *((e, JSON_ESCAPED) for e in json_escapes(value))]:
                    key = form if mode == "text" else form.encode("utf-8").decode("latin-1")
                    entries.setdefault(key, []).append((value, kind))
            for key, meaning in entries.items():
                automaton.add_word(key, (len(key), meaning))
            if entries:
                automaton.make_automaton()
            self._automata[mode] = automaton
        return automaton

    # ------------------------------------------------------------ scalar checks

    def equal(self, value: str | None) -> set[str]:
        """Request ids whose identifier ``value`` is, byte for byte."""
        return set(self._by_value.get(value, ())) if value is not None else set()

    def equal_hashed(self, kind: str, value: str | None) -> set[str]:
        """Request ids known only by hash whose identifier of ``kind`` ``value`` is."""
        if value is None or not self._by_digest:
            return set()
        return set(self._by_digest.get((kind, subject_digest(self.salt, kind, value)), ()))

    def in_text(self, text: str, column: str, depth: int = 0) -> set[Found]:
        """Hits in one text value: decoded field by field if it is a JSON document, else bounded occurrences."""
        if not self._by_value or not text:
            return set()
        stripped = text.lstrip()
        if depth < 3 and stripped[:1] in ("{", "["):
            try:
                document = json.loads(text)
            except (ValueError, RecursionError):
                document = None
            if isinstance(document, dict | list):
                return set(self.walk(document, column, depth + 1))
        found: set[Found] = set()
        if len(self._automaton("text")) == 0:
            return found
        for last, (length, meanings) in self._automaton("text").iter(text):
            start, end = last - length + 1, last + 1
            for value, kind in meanings:
                # An escaped form never holds a bare quote, so the quotes of its JSON string bound it.
                own = text[start:end].replace('\\"', "") if kind == JSON_ESCAPED else value
                if bounded_at(text, start, end, own):
                    found.update(Found(column, kind, r) for r in self._by_value[value])
        return found

    def in_raw(self, data: bytes, column: str = "raw", skip: Sequence[tuple[int, int]] = ()) -> set[Found]:
        """Hits in bytes that could not be decoded (see module docstring); ``skip`` ranges are not searched."""
        found: set[Found] = set()
        if not self._by_value or not data or len(self._automaton("raw")) == 0:
            return found
        for last, (length, meanings) in self._automaton("raw").iter(data.decode("latin-1")):
            start, end = last - length + 1, last + 1
            if any(a <= start < b for a, b in skip):
                continue
            for value, kind in meanings:
                form = data[start:end].replace(b'\\"', b"")
                prefix = avro_length_prefix(length)
                if kind == BOUNDED and data[max(0, start - len(prefix)) : start] == prefix:
                    found.update(Found(column, AVRO_STRING, r) for r in self._by_value[value])
                elif raw_bounded_at(data, start, end, form):
                    found.update(Found(column, kind, r) for r in self._by_value[value])
        return found

    def walk(self, obj: Any, path: str, depth: int = 0) -> Iterator[Found]:
        """Hits in a decoded document (Avro record, JSON): identifier fields by equality, other strings as text."""
        if isinstance(obj, dict):
            for key, value in obj.items():
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str):
                    yield from self.in_text(key, f"{name}(key)", depth)
                if key in self.identifier_fields and isinstance(value, str):
                    yield from (Found(name, EQUAL, r) for r in self.equal(value))
                    yield from (Found(name, HASH, r) for r in self.equal_hashed(key, value))
                else:
                    if key in self.key_fields and isinstance(value, str):
                        yield from (Found(name, EQUAL, r) for r in self._by_key.get(value, ()))
                        yield from (Found(name, HASH, r) for r in self.equal_hashed("record_key", value))
                    yield from self.walk(value, name, depth)
        elif isinstance(obj, list | tuple):
            for item in obj:
                yield from self.walk(item, path, depth)
        elif isinstance(obj, str):
            yield from self.in_text(obj, path, depth)
        elif isinstance(obj, bytes | bytearray):
            yield from self.in_raw(bytes(obj), path)

    # ------------------------------------------------------------ Arrow columns

    def in_identifier_array(self, values: Any, column: str) -> set[Found]:
        """Hits in an identifier column: equal values, and equal salted hashes for requests known by hash."""
        import pyarrow as pa
        import pyarrow.compute as pc

        found: set[Found] = set()
        if self._by_value:
            wanted = pa.array(list(self._by_value), values.type)
            hits = pc.unique(pc.filter(values, pc.is_in(values, value_set=wanted)))
            for value in hits.to_pylist():
                found.update(Found(column, EQUAL, r) for r in self.equal(value))
        if column in self.hashed_kinds:
            for value in pc.unique(values).to_pylist():
                found.update(Found(column, HASH, r) for r in self.equal_hashed(column, value))
        return found

    def in_key_array(self, values: Any, column: str) -> set[Found]:
        """Hits of erasures by record key in a record-key column: equal keys, or equal salted hashes."""
        import pyarrow as pa
        import pyarrow.compute as pc

        found: set[Found] = set()
        if self._by_key:
            wanted = pa.array(list(self._by_key), values.type)
            for value in pc.unique(pc.filter(values, pc.is_in(values, value_set=wanted))).to_pylist():
                found.update(Found(column, EQUAL, r) for r in self._by_key[value])
        if "record_key" not in self.hashed_kinds:
            return found
        for value in pc.unique(values).to_pylist():
            found.update(Found(column, HASH, r) for r in self.equal_hashed("record_key", value))
        return found

    def in_text_array(self, values: Any, column: str) -> set[Found]:
        """Hits in a text column. Arrow narrows the distinct values down (tokens equal to an identifier,
        or containing one that holds a delimiter); only those candidates reach Python."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self._by_value:
            return set()
        distinct = pc.unique(values).drop_null()
        if len(distinct) == 0:
            return set()
        tokens, others = self._text_forms()
        rows: set[int] = set()
        if tokens:
            pieces = pc.split_pattern_regex(distinct, _SPLIT_PATTERN)
            flat = pc.list_flatten(pieces)
            wanted = pa.array(tokens, flat.type)
            hit = pc.or_(pc.is_in(flat, value_set=wanted), pc.is_in(pc.utf8_rtrim(flat, ".!?"), value_set=wanted))
            if pc.any(hit).as_py():
                rows.update(pc.unique(pc.filter(pc.list_parent_indices(pieces), hit)).to_pylist())
        for form in others:
            rows.update(pc.indices_nonzero(pc.match_substring(distinct, form)).to_pylist())
        found: set[Found] = set()
        for text in distinct.take(pa.array(sorted(rows), pa.int64())).to_pylist():
            found |= self.in_text(text, column)
        return found

    def _text_forms(self) -> tuple[list[str], list[str]]:
        """Every form of every identifier, split into whole tokens (looked up in Arrow) and the rest (searched)."""
        if self._forms is None:
            tokens: list[str] = []
            others: list[str] = []
            for value in self._by_value:
                for form in [value, *json_escapes(value)]:
                    (tokens if _tokenizable(form) else others).append(form)
            self._forms = (tokens, others)
        return self._forms

    def in_binary_array(self, values: Any, column: str, decoders: Iterable[Any] = ()) -> set[Found]:
        """Hits in a binary column (quarantined raw messages): decoded by meaning when a decoder reads
        the whole value, else searched raw."""
        found: set[Found] = set()
        if not self._by_value:
            return found
        for value in values.to_pylist():
            if not value:
                continue
            document = decode_document(value, decoders)
            if document is not None:
                found.update(self.walk(document, column))
            else:
                found |= self.in_raw(value, column)
        return found


def decode_document(data: bytes, decoders: Iterable[Any]) -> Any:
    """``data`` decoded by the first decoder that reads all of it (JSON text, or Avro with a known schema)."""
    for decode in decoders:
        try:
            document = decode(data)
        except Exception:  # noqa: S112 - a decoder that does not fit this value; the next one may
            continue
        if document is not None:
            return document
    return None


def json_decoder(data: bytes) -> Any:
    """A JSON object or array in UTF-8, or None."""
    stripped = data.lstrip()
    if stripped[:1] not in (b"{", b"["):
        return None
    return json.loads(data.decode("utf-8"))


@functools.cache
def parsed_schema(schema_json: str) -> Any:
    import fastavro

    return fastavro.parse_schema(json.loads(schema_json))


@dataclass(frozen=True)
class AvroDecoder:
    """Binary Avro with a known writer schema (optionally behind the 5-byte Confluent header), read whole."""

    schema_json: str

    def __call__(self, data: bytes) -> Any:
        import io

        import fastavro

        parsed = parsed_schema(self.schema_json)
        for payload in (data, data[5:] if data[:1] == b"\x00" and len(data) > 5 else None):
            if payload is None:
                continue
            buffer = io.BytesIO(payload)
            try:
                document = fastavro.schemaless_reader(buffer, parsed, None)
            except Exception:  # noqa: S112 - not this framing; try the next
                continue
            if buffer.tell() == len(payload):
                return document
        return None
