"""The public message contract, the ``LogBatch`` Avro schema, and how writer schemas grow the table.

With a schema registry, each message names its writer schema. Every message is decoded into one
reader schema: LogBatch, grown by the optional fields writers add at the batch or record level,
which become nullable columns of the table. Pure functions over schema dicts; the registry client
and the resolution check live in :mod:`ingest.registry`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "log_batch.avsc"


@cache
def avro_schema_json() -> str:
    """The writer schema as committed in ``ingest/schemas/log_batch.avsc`` (Spark's from_avro wants text)."""
    return resources.files("ingest").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")


def avro_schema() -> dict[str, Any]:
    """The writer schema as a dict (for fastavro's ``parse_schema``)."""
    schema: dict[str, Any] = json.loads(avro_schema_json())
    return schema


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
