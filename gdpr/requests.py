"""Erasure requests: parsed from a JSON-lines or CSV file, or from Kafka messages, and checked.

Each request names a ``request_id`` and exactly one identifier of the data subject: ``user_id``,
``email``, ``client_ip``, or an explicit ``record_key``. A bad line is rejected with its line number
and reason; the other requests still run.

An identifier is taken exactly as given, byte for byte: no trimming, case folding or Unicode
normalisation, because each of those can turn one person's identifier into another's (a request for
``" spaced "`` must not erase ``spaced``). Whitespace around an identifier is kept and noted in the
report. An identifier has no length limit: a subject whose id is long must be erasable too.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from loglake.errors import ConfigError

IdentifierKind = Literal["user_id", "email", "client_ip", "record_key"]
IDENTIFIER_KINDS: tuple[IdentifierKind, ...] = ("user_id", "email", "client_ip", "record_key")
KNOWN_FIELDS = ("request_id", *IDENTIFIER_KINDS, "received_at")


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


def _check(fields: dict[str, Any], source: str) -> ErasureRequest | Rejection:
    unknown = sorted(k for k in fields if k not in KNOWN_FIELDS)
    if unknown:
        return Rejection(
            source, f"unknown column {', '.join(unknown)}; expected request_id and one of {', '.join(IDENTIFIER_KINDS)}"
        )
    request_id = fields.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        return Rejection(source, "no request_id")
    request_id = request_id.strip()
    present = [k for k in IDENTIFIER_KINDS if fields.get(k) is not None and fields.get(k) != ""]
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
        return Rejection(
            source, f"request {request_id} has no identifier; expected one of {', '.join(IDENTIFIER_KINDS)}"
        )
    if len(given) > 1:
        return Rejection(
            source,
            f"request {request_id} has {len(given)} identifiers ({', '.join(given)}); send one request per identifier",
        )
    kind = cast(IdentifierKind, given[0])
    value = fields[kind]
    return ErasureRequest(request_id=request_id, kind=kind, value=value, source=source)


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


def _jsonl(lines: Iterable[str], name: str) -> Iterator[ErasureRequest | Rejection]:
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
        yield _check(fields, source)


def _csv(text: str, name: str) -> Iterator[ErasureRequest | Rejection]:
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
        yield _check(dict(zip(header, row, strict=True)), source)
    if header is None:
        yield Rejection(f"{name}:1", "no header line; expected e.g. request_id,user_id")


def parse_text(text: str, name: str) -> ParsedRequests:
    """Parse a requests file's content: JSON lines if the first non-blank character is ``{``, else CSV."""
    stripped = text.lstrip()
    if not stripped:
        return ParsedRequests([], [Rejection(f"{name}:0", "the requests file is empty")])
    # Split on line feeds only: str.splitlines() would also split inside an identifier holding U+2028,
    # U+0085 or a file separator, which JSON allows unescaped.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    items = _jsonl(lines, name) if stripped.startswith("{") else _csv(text, name)
    return _dedupe(items)


def parse_file(path: Path) -> ParsedRequests:
    """Parse a JSON-lines or CSV requests file (see :func:`parse_text`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--requests {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--requests {path}: not UTF-8 text") from None
    return parse_text(text, path.name)


def parse_messages(messages: Iterable[tuple[str, bytes | None]]) -> ParsedRequests:
    """Parse Kafka messages ``(source, value)``: each value one JSON object like a JSON-lines line."""

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
            yield from (_with_source(item, source) for item in _jsonl([text], source))

    return _dedupe(items())


def _with_source(item: ErasureRequest | Rejection, source: str) -> ErasureRequest | Rejection:
    if isinstance(item, Rejection):
        return Rejection(source, item.reason)
    return ErasureRequest(item.request_id, item.kind, item.value, source)
