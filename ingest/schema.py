"""How writer schemas grow the table's reader schema.

With a schema registry, each message names its writer schema. Every message is decoded into one
reader schema: LogBatch, grown by the optional fields writers add at the batch or record level,
which become nullable columns of the table. Pure functions over schema dicts; the registry client
and the resolution check live in :mod:`ingest.registry`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SchemaMismatch(ValueError):
    """A writer schema the table cannot take; the message says which field and why."""


def record_schema(batch: dict[str, Any], records_field: str = "records") -> dict[str, Any]:
    """The record schema inside a batch schema (the items of its ``records_field`` array).

    Raises:
        SchemaMismatch: there is no such field holding an array of records.
    """
    for f in batch.get("fields", []):
        if f["name"] == records_field:
            array = f["type"]
            items = array.get("items") if isinstance(array, dict) and array.get("type") == "array" else None
            if isinstance(items, dict) and items.get("type") == "record":
                return items
    raise SchemaMismatch(f"field {records_field} is missing or is not an array of records")


def _optional(field: dict[str, Any]) -> dict[str, Any]:
    """``field`` as a reader field that defaults to null: writers that lack it still resolve."""
    t = field["type"]
    branches = list(t) if isinstance(t, list) else [t]
    branches = ["null", *(b for b in branches if b != "null")]
    out = {k: v for k, v in field.items() if k not in ("type", "default")}
    return {**out, "type": branches, "default": None}


def merge(
    reader: dict[str, Any], writer: dict[str, Any], reserved: set[str], records_field: str = "records"
) -> tuple[dict[str, Any], list[str], list[str]]:
    """``reader`` grown by the fields ``writer`` adds at the batch and at the record level.

    Every added field is optional in the reader (null for writers without it), so earlier writers
    still resolve. Returns the new reader and the added batch and record field names.

    Raises:
        SchemaMismatch: an added field's name is taken, case-insensitively, by ``reserved`` (the
            table's own columns) or by the other level's fields: it would be two columns of one name.
    """
    out = json.loads(json.dumps(reader))
    writer_record = record_schema(writer, records_field)
    out_record = record_schema(out, records_field)
    taken = {n.lower() for n in reserved}
    taken |= {f["name"].lower() for f in out["fields"]} | {f["name"].lower() for f in out_record["fields"]}
    added: dict[str, list[str]] = {"batch": [], "record": []}
    for level, source, target in (("batch", writer, out), ("record", writer_record, out_record)):
        have = {f["name"] for f in target["fields"]}
        for f in source.get("fields", []):
            if f["name"] in have:
                continue
            where = f["name"] if level == "batch" else f"{records_field}[].{f['name']}"
            if f["name"].lower() in taken or f["name"].startswith("_"):
                raise SchemaMismatch(
                    f"new field {where} would be a column named like one the table already has "
                    "(or starts with _, kept for Hudi); rename it"
                )
            taken.add(f["name"].lower())
            target["fields"].append(_optional(f))
            added[level].append(f["name"])
    return out, added["batch"], added["record"]


@dataclass(frozen=True)
class Decoding:
    """How one micro-batch's messages are decoded when a schema registry gives the writer schemas.

    ``writers`` maps each schema id the table can take to its writer schema; every message is read
    into ``reader``, the LogBatch schema grown by the fields those writers added. Columns beyond the
    contract: ``batch_fields`` and ``record_fields`` (added fields, by level) and ``absent`` (the
    table's columns that no writer of this run has, as (name, Spark SQL type): written as nulls).
    """

    reader: str
    writers: Mapping[int, str]
    # Schema id -> why the table cannot take it (its messages go to quarantine).
    rejected: Mapping[int, str] = field(default_factory=dict)
    # Ids the registry does not know.
    unknown: frozenset[int] = frozenset()
    batch_fields: tuple[str, ...] = ()
    record_fields: tuple[str, ...] = ()
    absent: tuple[tuple[str, str], ...] = ()
    # Schema id -> (per message, per record) bytes its data takes more re-encoded with the reader
    # (:func:`encoding_delta`); the strict check decodes ids without one a second time.
    deltas: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    # True once this batch's new ids were looked up: an id still unclassified was over the lookup cap.
    closed: bool = False
    registry: str = "the schema registry"
    # The table's columns beyond the contract, in its order: staged rows keep it.
    table_columns: tuple[str, ...] = ()
    # The added fields in the order writers added them (default: batch fields, then record fields).
    added: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns after the contract's, in the order they are written: the table's, then new ones."""
        added = self.added or (*self.batch_fields, *self.record_fields)
        return (*self.table_columns, *(c for c in added if c not in self.table_columns))


def _normal(avro_type: Any) -> str:
    """A type as comparable text (docs and defaults aside)."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("doc", "default", "aliases")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return json.dumps(strip(avro_type), sort_keys=True)


def _field_delta(reader_field: dict[str, Any], writer_type: Any) -> int | None:
    """Bytes a value takes more when encoded with the reader's field than as the writer wrote it."""
    r = reader_field["type"]
    if writer_type is None:
        # Absent from the writer: the reader encodes its default. Null in a union is one byte (its
        # branch index); an empty map or array is one byte (a zero count).
        if isinstance(r, list) and reader_field.get("default", "") is None and r.index("null") < 64:
            return 1
        bare = r if isinstance(r, dict) else {}
        if bare.get("type") in ("map", "array") and reader_field.get("default") in ({}, []):
            return 1
        return None
    if _normal(r) == _normal(writer_type):
        return 0
    # A writer's plain type read into a union of the reader: the reader adds a branch index.
    in_union = isinstance(r, list) and not isinstance(writer_type, list) and len(r) < 64
    if in_union and any(_normal(b) == _normal(writer_type) for b in r):
        return 1
    return None


def encoding_delta(
    reader: dict[str, Any], writer: dict[str, Any], records_field: str = "records"
) -> tuple[int, int] | None:
    """(per message, per record) bytes by which ``writer`` data re-encoded with ``reader`` is longer.

    Lets the strict Avro check compare a message's length with its decode re-encoded in the reader
    schema, without decoding it a second time with its writer schema. None when the difference
    depends on the values (a promoted type, a changed nested record): those are decoded again.
    """
    try:
        reader_record, writer_record = record_schema(reader, records_field), record_schema(writer, records_field)
    except SchemaMismatch:
        return None
    totals = []
    for r_fields, w_fields, skip in (
        (reader["fields"], writer["fields"], records_field),
        (reader_record["fields"], writer_record["fields"], None),
    ):
        written = {f["name"]: f["type"] for f in w_fields}
        if set(written) - {f["name"] for f in r_fields}:
            return None  # a writer field the reader drops: its bytes are unknown
        total = 0
        for f in r_fields:
            if f["name"] == skip:
                continue
            delta = _field_delta(f, written.get(f["name"]))
            if delta is None:
                return None
            total += delta
        totals.append(total)
    return totals[0], totals[1]
