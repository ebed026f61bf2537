"""The public message contract: the ``LogBatch`` Avro schema and its JSON twin for Spark."""

from __future__ import annotations

import json
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
