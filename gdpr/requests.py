"""Erasure requests: parsed from a JSON-lines or CSV file, or from Kafka messages, and checked.

Each request names a ``request_id`` and exactly one identifier of the data subject: a value of one
of the table's subject columns (the log shape's, setting ``log_schema.subject_columns``; LogBatch's
``user_id``, ``email`` and ``client_ip`` by default), or an explicit ``record_key``. A bad line is
rejected with its line number and reason; the other requests still run.

An identifier is taken exactly as given, byte for byte: no trimming, case folding or Unicode
normalisation, because each of those can turn one person's identifier into another's (a request for
``" spaced "`` must not erase ``spaced``). Whitespace around an identifier is kept and noted in the
report. An identifier has no length limit: a subject whose id is long must be erasable too.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loglake.errors import ConfigError
from loglake.shape import default_shape

# A subject column's name, or RECORD_KEY_KIND: which columns exist is configured, so no fixed set.
IdentifierKind = str
RECORD_KEY_KIND: IdentifierKind = "record_key"
# A request's fields besides its identifier.
OWN_FIELDS = ("request_id", "received_at")


def identifier_kinds(subject_columns: Iterable[str] | None = None) -> tuple[IdentifierKind, ...]:
    """What a request may name as its identifier: the subject columns (None: the LogBatch shape's),
    then ``record_key``.

    Raises:
        ConfigError: a subject column named like a request's own field or the record key, which
            would make a request's fields ambiguous.
    """
    columns = tuple(subject_columns) if subject_columns is not None else default_shape().subject_columns
    # Spark resolves column names regardless of case, so Record_Key would be the record key column.
    clash = [c for c in columns if c.lower() in (*OWN_FIELDS, RECORD_KEY_KIND)]
    if clash:
        raise ConfigError(
            f"setting log_schema.subject_columns: {', '.join(clash)} cannot be a subject column "
            f"({', '.join((*OWN_FIELDS, RECORD_KEY_KIND))} are fields of every erasure request)"
        )
    if not columns:
        raise ConfigError("setting log_schema.subject_columns: at least one column is needed")
    return (*columns, RECORD_KEY_KIND)


@dataclass(frozen=True)
class ErasureRequest:
    """One data subject to erase. ``value`` is the identifier; it never leaves the job unhashed."""

    request_id: str
    kind: IdentifierKind
    value: str
    source: str  # file:line or topic[partition]@offset, for messages about this request

    def __repr__(self) -> str:  # the identifier stays out of logs and tracebacks
        return f"ErasureRequest({self.request_id!r}, {self.kind}, from {self.source})"


@dataclass(frozen=True)
class Rejection:
    """A request that could not be used, where it came from, and why."""

    source: str
    reason: str


@dataclass
class ParsedRequests:
    requests: list[ErasureRequest]
    rejections: list[Rejection]

    def notes(self) -> list[Rejection]:
        """Accepted requests worth a second look: an identifier with whitespace at either end is matched
        with it, which is rarely what a hand-made file meant."""
        return [
            Rejection(
                r.source, f"request {r.request_id}: {r.kind} has whitespace at its start or end; matched as given"
            )
            for r in self.requests
            if r.value != r.value.strip()
        ]


def _unknown(columns: Iterable[str], kinds: Sequence[IdentifierKind]) -> str:
    return f"unknown column {', '.join(columns)}; expected request_id and one of {', '.join(kinds)}"


def _check(fields: dict[str, Any], source: str, kinds: Sequence[IdentifierKind]) -> ErasureRequest | Rejection:
    unknown = sorted(k for k in fields if k not in OWN_FIELDS and k not in kinds)
    if unknown:
        return Rejection(source, _unknown(unknown, kinds))
    request_id = fields.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        return Rejection(source, "no request_id")
    request_id = request_id.strip()
    present = [k for k in kinds if fields.get(k) is not None and fields.get(k) != ""]
    wrong_type = [k for k in present if not isinstance(fields[k], str)]
    if wrong_type:
        kind = wrong_type[0]
        return Rejection(source, f"request {request_id}: {kind} must be a string, got {type(fields[kind]).__name__}")
    # An identifier of only whitespace would match every record whose column is blank: never a person.
    blank = [k for k in present if not fields[k].strip()]
    given = [k for k in present if k not in blank]
    if not given:
        if blank:
            return Rejection(source, f"request {request_id}: {blank[0]} is only whitespace; give the identifier itself")
        return Rejection(source, f"request {request_id} has no identifier; expected one of {', '.join(kinds)}")
    if len(given) > 1:
        return Rejection(
            source,
            f"request {request_id} has {len(given)} identifiers ({', '.join(given)}); send one request per identifier",
        )
    kind = given[0]
    return ErasureRequest(request_id=request_id, kind=kind, value=fields[kind], source=source)


def _dedupe(items: Iterable[ErasureRequest | Rejection]) -> ParsedRequests:
    """Keep the first of identical requests; a request id reused for another subject is rejected."""
    requests: list[ErasureRequest] = []
    rejections: list[Rejection] = []
    seen: dict[str, ErasureRequest] = {}
    for item in items:
        if isinstance(item, Rejection):
            rejections.append(item)
            continue
        first = seen.get(item.request_id)
        if first is None:
            seen[item.request_id] = item
            requests.append(item)
        elif (first.kind, first.value) != (item.kind, item.value):
            rejections.append(
                Rejection(
                    item.source, f"request_id {item.request_id} already used for another subject at {first.source}"
                )
            )
    return ParsedRequests(requests, rejections)


def _jsonl(lines: Iterable[str], name: str, kinds: Sequence[IdentifierKind]) -> Iterator[ErasureRequest | Rejection]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        source = f"{name}:{number}"
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Rejection(source, f"not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(fields, dict):
            yield Rejection(source, f"expected a JSON object, got {type(fields).__name__}")
            continue
        yield _check(fields, source, kinds)


def _csv(text: str, name: str, kinds: Sequence[IdentifierKind]) -> Iterator[ErasureRequest | Rejection]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            continue
        source = f"{name}:{number}"
        if len(row) != len(header):
            yield Rejection(source, f"{len(row)} fields, the header has {len(header)}")
            continue
        # Cells are taken as written: the identifier's own spaces are part of it.
        yield _check(dict(zip(header, row, strict=True)), source, kinds)
    if header is None:
        yield Rejection(f"{name}:1", f"no header line; expected e.g. request_id,{kinds[0]}")


def parse_text(text: str, name: str, *, subject_columns: Iterable[str] | None = None) -> ParsedRequests:
    """Parse a requests file's content: JSON lines if the first non-blank character is ``{``, else CSV.

    A request may name one of ``subject_columns`` or ``record_key``; any other column is rejected.
    """
    kinds = identifier_kinds(subject_columns)
    stripped = text.lstrip()
    if not stripped:
        return ParsedRequests([], [Rejection(f"{name}:0", "the requests file is empty")])
    # Split on line feeds only: str.splitlines() would also split inside an identifier holding U+2028,
    # U+0085 or a file separator, which JSON allows unescaped.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    items = _jsonl(lines, name, kinds) if stripped.startswith("{") else _csv(text, name, kinds)
    return _dedupe(items)


def parse_file(path: Path, *, subject_columns: Iterable[str] | None = None) -> ParsedRequests:
    """Parse a JSON-lines or CSV requests file (see :func:`parse_text`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--requests {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--requests {path}: not UTF-8 text") from None
    return parse_text(text, path.name, subject_columns=subject_columns)


def parse_messages(
    messages: Iterable[tuple[str, bytes | None]], *, subject_columns: Iterable[str] | None = None
) -> ParsedRequests:
    """Parse Kafka messages ``(source, value)``: each value one JSON object like a JSON-lines line."""
    kinds = identifier_kinds(subject_columns)

    def items() -> Iterator[ErasureRequest | Rejection]:
        for source, value in messages:
            if value is None:
                yield Rejection(source, "empty message")
                continue
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                yield Rejection(source, "not UTF-8 text")
                continue
            yield from (_with_source(item, source) for item in _jsonl([text], source, kinds))

    return _dedupe(items())


def _with_source(item: ErasureRequest | Rejection, source: str) -> ErasureRequest | Rejection:
    if isinstance(item, Rejection):
        return Rejection(source, item.reason)
    return ErasureRequest(item.request_id, item.kind, item.value, source)


def restrict(parsed: ParsedRequests, subject_columns: Iterable[str]) -> ParsedRequests:
    """``parsed`` with every request for a column outside ``subject_columns`` (and not ``record_key``)
    moved to the rejections, for requests parsed without the table's settings at hand."""
    kinds = identifier_kinds(subject_columns)
    kept = [r for r in parsed.requests if r.kind in kinds]
    refused = [Rejection(r.source, _unknown([r.kind], kinds)) for r in parsed.requests if r.kind not in kinds]
    return ParsedRequests(kept, [*parsed.rejections, *refused])
