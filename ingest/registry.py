"""Writer schemas from a Confluent-compatible schema registry, by the id in each message's header.

The driver looks each id up once per run (confluent-kafka's ``SchemaRegistryClient``), checks that
Avro can resolve it to the table's reader schema (Avro's own ``SchemaCompatibility``, in the JVM:
the same rules the decoder applies), and grows the reader by the fields it adds. Decoding itself
stays in the JVM (:func:`ingest.parse.decode`), one ``from_avro`` per writer schema.

An id the registry does not know, or a schema the table cannot take, is a property of the data:
its messages go to quarantine with their own reason. A registry that does not answer is not: the
batch waits for it (``loglake_ingest_schema_registry_up`` is 0) and fails after
``ingest.schema_registry.unavailable_timeout``, with nothing quarantined; a restart replays it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pyspark.sql import SparkSession

from ingest.metrics import IngestMetrics
from ingest.schema import Decoding, SchemaMismatch, encoding_delta, merge, record_schema
from loglake.errors import SchemaRegistryUnavailableError
from loglake.settings import SchemaRegistrySettings
from loglake.shape import LogShape, with_plain_times

log = logging.getLogger(__name__)

# Ids the registry answered 404 for, remembered so a stream of such messages costs one request per
# id; bounded, since a hostile producer can make up ids.
UNKNOWN_IDS_KEPT = 1_000
_FIRST_WAIT, _LONGEST_WAIT = 1.0, 30.0
# Versions of a subject learned at start: producers on older versions are the ones still sending.
WARM_VERSIONS = 20


class SchemaBook:
    """The writer schemas this run has met, and the one reader schema they all resolve to.

    ``table_columns`` are the table's columns beyond the contract (name -> Spark SQL type), read at
    start: a writer field of another type than the table's column of that name is refused, and a
    column no writer of this run has is written as null (Hudi refuses a batch that lacks one).
    """

    def __init__(
        self,
        spark: SparkSession,
        settings: SchemaRegistrySettings,
        shape: LogShape,
        reserved: Iterable[str],
        table_columns: Mapping[str, str] | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        if not settings.url:
            raise ValueError("a SchemaBook needs ingest.schema_registry.url")
        self._spark = spark
        self._settings = settings
        self._client = SchemaRegistryClient(settings.client_config())
        self._metrics = metrics
        self._reserved = set(reserved)
        self._table = dict(table_columns or {})
        self._shape = shape
        self._reader: dict[str, Any] = json.loads(shape.schema)
        self._writers: dict[int, str] = {}
        self._rejected: dict[int, str] = {}
        self._unknown: dict[int, None] = {}
        self._batch_fields: list[str] = []
        self._record_fields: list[str] = []
        self._added: list[str] = []

    def decoding(self, *, closed: bool = False) -> Decoding:
        """The decoding of a batch with what is known now; ``closed`` once its new ids were looked up."""
        added = {*self._batch_fields, *self._record_fields}
        records = self._shape.records_field
        deltas = {sid: encoding_delta(self._reader, json.loads(w), records) for sid, w in self._writers.items()}
        return Decoding(
            reader=json.dumps(self._reader),
            writers=dict(self._writers),
            deltas={sid: d for sid, d in deltas.items() if d is not None},
            rejected=dict(self._rejected),
            unknown=frozenset(self._unknown),
            batch_fields=tuple(self._batch_fields),
            record_fields=tuple(self._record_fields),
            absent=tuple((name, kind) for name, kind in self._table.items() if name not in added),
            closed=closed,
            registry=self._settings.url or "the schema registry",
            table_columns=tuple(self._table),
            added=tuple(self._added),
        )

    def warm(self, subjects: Iterable[str], versions: int = WARM_VERSIONS) -> None:
        """Learn the latest ``versions`` schemas of ``subjects`` (the topics' ``<topic>-value``) up front.

        A stream's first batch would otherwise stage twice: once to find its ids, once to decode
        them. Best effort: a subject the registry lacks, or a registry that does not answer, leaves
        the ids to be looked up when a batch meets them.
        """
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        ids: list[int] = []
        for subject in subjects:
            try:
                for version in self._client.get_versions(subject)[-versions:]:
                    found = self._client.get_version(subject, version).schema_id
                    if found is not None:
                        ids.append(found)
            except SchemaRegistryError as exc:
                log.info("schema registry has no versions of subject %s (%s)", subject, exc.error_message)
            except Exception as exc:  # the HTTP client's own errors; batches wait for the registry
                log.warning("could not list subject %s at %s: %s", subject, self._settings.url, exc)
                return
        self.learn(sorted(set(ids)))

    def known(self, schema_id: int) -> bool:
        return schema_id in self._writers or schema_id in self._rejected or schema_id in self._unknown

    def learn(self, ids: Iterable[int]) -> None:
        """Look up ``ids`` not met before and take, refuse or mark each unknown.

        Raises:
            SchemaRegistryUnavailableError: the registry did not answer within the configured wait.
        """
        for schema_id in ids:
            if self.known(schema_id):
                continue
            text = self._fetch(schema_id)
            if text is None:
                log.warning("schema id %d is not in the registry at %s", schema_id, self._settings.url)
                self._unknown[schema_id] = None
                while len(self._unknown) > UNKNOWN_IDS_KEPT:
                    del self._unknown[next(iter(self._unknown))]
                continue
            self.take(schema_id, text)
        if self._metrics is not None:
            self._metrics.schema_ids.set(len(self._writers))

    def take(self, schema_id: int, text: str) -> None:
        """Take the writer schema ``text`` of ``schema_id`` into the reader, or refuse it with its reason."""
        try:
            parsed = json.loads(text)
            # A bare primitive schema ("string") is valid Avro, and no LogBatch.
            writer = with_plain_times(parsed, self._shape) if isinstance(parsed, dict) else parsed
            if not isinstance(writer, dict) or writer.get("type") != "record":
                raise SchemaMismatch(
                    f"not an Avro record schema but {writer.get('type') if isinstance(writer, dict) else writer}"
                )
            reader, batch_new, record_new = merge(self._reader, writer, self._reserved, self._shape.records_field)
            self._check_types(reader, batch_new, record_new)
            self._check_resolves(reader, writer)
        except (SchemaMismatch, ValueError) as exc:
            reason = f"schema id {schema_id} cannot be read into the table: {exc}"
            log.warning("%s; its messages go to quarantine", reason)
            self._rejected[schema_id] = reason
            return
        self._reader = reader
        self._writers[schema_id] = json.dumps(writer)
        self._batch_fields += batch_new
        self._record_fields += record_new
        self._added += [*batch_new, *record_new]
        if batch_new or record_new:
            log.info("schema id %d adds columns %s to the table", schema_id, ", ".join([*batch_new, *record_new]))
        else:
            log.info("schema id %d: no new columns", schema_id)

    def _jvm(self) -> Any:
        jvm = self._spark.sparkContext._jvm
        assert jvm is not None
        return jvm

    def _check_resolves(self, reader: dict[str, Any], writer: dict[str, Any]) -> None:
        """Avro's own check that ``writer`` data reads into ``reader`` (what from_avro will do)."""
        jvm = self._jvm()
        parse = jvm.org.apache.avro.Schema.Parser
        try:
            r = parse().parse(json.dumps(reader))
            w = parse().parse(json.dumps(writer))
        except Exception as exc:
            raise SchemaMismatch(f"not a valid Avro schema ({_java_message(exc)})") from None
        result = jvm.org.apache.avro.SchemaCompatibility.checkReaderWriterCompatibility(r, w)
        if result.getType().name() == "COMPATIBLE":
            return
        problems = [
            f"field {field_path(reader, str(i.getLocation()))}: {i.getMessage()}"
            for i in result.getResult().getIncompatibilities()
        ]
        raise SchemaMismatch("; ".join(problems[:3]) or result.getDescription())

    def _check_types(self, reader: dict[str, Any], batch_new: list[str], record_new: list[str]) -> None:
        """A new field must have the Spark type of the table's column of that name, if it has one."""
        if not self._table:
            return
        jvm = self._jvm()
        for level, names in ((reader, batch_new), (record_schema(reader, self._shape.records_field), record_new)):
            for f in level["fields"]:
                if f["name"] not in names or f["name"] not in self._table:
                    continue
                avro = jvm.org.apache.avro.Schema.Parser().parse(json.dumps(f["type"]))
                kind = jvm.org.apache.spark.sql.avro.SchemaConverters.toSqlType(avro).dataType().simpleString()
                if kind != self._table[f["name"]]:
                    raise SchemaMismatch(
                        f"field {f['name']} is {kind} but the table's column {f['name']} is {self._table[f['name']]}"
                    )

    def _fetch(self, schema_id: int) -> str | None:
        """The schema text of ``schema_id``, None if the registry does not have it; waits out outages."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        deadline = time.monotonic() + self._settings.unavailable_seconds
        wait = _FIRST_WAIT
        while True:
            try:
                schema = self._client.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    self._up(True)
                    return None
                if exc.http_status_code in (401, 403):
                    self._up(False)
                    raise SchemaRegistryUnavailableError(
                        f"the schema registry at {self._settings.url} refused access ({exc.http_status_code}: "
                        f"{exc.error_message}): check ingest.schema_registry.options (basic.auth.user.info, ssl.*)"
                    ) from None
                cause = f"HTTP {exc.http_status_code}: {exc.error_message}"
            except Exception as exc:  # the HTTP client's own errors: refused, reset, timed out, DNS
                cause = f"{type(exc).__name__}: {exc}"
            else:
                self._up(True)
                kind = getattr(schema, "schema_type", None) or "AVRO"
                # A Protobuf or JSON Schema id in an Avro topic: its text fails the Avro checks, named so.
                return str(schema.schema_str) if kind == "AVRO" else json.dumps({"type": f"{kind} schema"})
            self._up(False)
            if self._metrics is not None:
                self._metrics.schema_registry_errors.inc()
            if time.monotonic() + wait > deadline:
                raise SchemaRegistryUnavailableError(
                    f"the schema registry at {self._settings.url} (ingest.schema_registry.url) did not answer for "
                    f"{self._settings.unavailable_timeout} (ingest.schema_registry.unavailable_timeout) while "
                    f"looking up schema id {schema_id}: {cause}. Nothing was quarantined or lost: the batch "
                    "is replayed on restart"
                )
            log.warning(
                "schema registry at %s: %s; looking up schema id %d again in %.0f s",
                self._settings.url,
                cause,
                schema_id,
                wait,
            )
            time.sleep(wait)
            wait = min(wait * 2, _LONGEST_WAIT)

    def _up(self, up: bool) -> None:
        if self._metrics is not None:
            self._metrics.schema_registry_up.set(1 if up else 0)


def field_path(schema: Any, pointer: str) -> str:
    """A JSON pointer into ``schema`` (Avro's incompatibility location) as a field path: ``records[].level``."""
    names: list[str] = []
    node = schema
    parts = [p for p in pointer.split("/") if p]
    try:
        for i, part in enumerate(parts):
            if isinstance(node, list):
                node = node[int(part)]
            elif part == "fields" and i + 1 < len(parts):
                continue
            elif isinstance(node, dict) and part in ("type", "items", "values"):
                node = node[part]
                if part == "items":
                    names[-1:] = [f"{names[-1]}[]"] if names else ["[]"]
            elif isinstance(node, dict) and parts[i - 1 : i] == ["fields"]:
                node = node["fields"][int(part)]
                names.append(node["name"])
    except (KeyError, IndexError, ValueError, TypeError):
        pass  # a location this walk does not follow: name what it found
    return ".".join(names) or pointer


def _java_message(exc: BaseException) -> str:
    text = str(exc)
    for line in text.splitlines():
        if "Exception:" in line:
            return line.split("Exception:", 1)[1].strip()[:300]
    return text.splitlines()[0][:300] if text else type(exc).__name__
