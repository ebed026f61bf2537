"""Typed, frozen settings shared by every loglake job, loaded once from YAML + flags.

Precedence: defaults < YAML file < ``--set key=value`` < dedicated flags (``--table-path`` ...).
Any ``hoodie.*`` key goes to :attr:`Settings.hoodie` and any ``spark.*`` key to
:attr:`SparkSettings.conf`, so every Hudi and Spark option can be passed through without code.
An invalid value fails at start with the dotted name of the setting.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loglake import config_keys
from loglake.errors import ConfigError

log = logging.getLogger(__name__)

_TRIGGER_RE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(ms|millis|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?)\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SECRET_RE = re.compile(r"password|secret|jaas|token|credential|access\.key|session\.key|salt|auth", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``'5 minutes'`` -> 300.0 seconds. Raises ValueError naming the text."""
    match = _TRIGGER_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like '30 seconds', '5 minutes' or '1 hour'")
    number, unit = float(match.group(1)), match.group(2).lower()
    factor = _UNIT_SECONDS["ms"] if unit == "ms" or unit.startswith("milli") else _UNIT_SECONDS[unit[0]]
    return number * factor


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class KafkaSettings(_Model):
    """Where the log batches come from."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Kafka brokers, `host:port[,host:port...]` (`loglake kafka start` prints one). "
        "Flag: `--bootstrap-servers`.",
    )
    topic: str = Field(default="logs", description="Topic of the log batches. Flag: `--topic`.")
    starting_offsets: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a stream without a checkpoint starts reading."
    )
    max_offsets_per_trigger: int | None = Field(
        default=None,
        gt=0,
        description="Caps one micro-batch (messages across all partitions), e.g. to bound a catch-up batch "
        "after downtime; null reads everything that arrived up to the trigger.",
    )
    min_partitions: int | None = Field(
        default=None,
        gt=0,
        description="More Spark tasks than Kafka partitions, for clusters with more cores than partitions.",
    )
    fail_on_data_loss: bool = Field(
        default=True,
        description="True: the stream stops (exit code 5) if retention deleted offsets it had not read, rather "
        "than skipping them; false: it skips them, logs the range and counts them in "
        "`loglake_ingest_kafka_skipped_offsets_total`.",
    )
    connect_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How long the start-up check waits for a broker to answer before the job fails "
        "(`no broker answered within 15 s`).",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Passed to Spark's Kafka source as is, e.g. `kafka.security.protocol`, "
        "`kafka.sasl.jaas.config`; keys the Kafka consumer and Spark's Kafka source do not know are rejected.",
    )

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, str]) -> dict[str, str]:
        config_keys.check_kafka_options(value)
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value


class TableSettings(_Model):
    """The Hudi table the jobs share."""

    path: str | None = Field(
        default=None,
        description="Folder of the log table (`s3://bucket/prefix/logs` on EMR); every job needs it. "
        "Flag: `--table-path`.",
    )
    name: str = Field(default="logs", description="Hudi table name; the catalog names derive from it.")
    quarantine_path: str | None = Field(
        default=None, description="Folder of the quarantine table; default `<table.path>_quarantine`."
    )
    conflict_retries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Attempts of a commit that loses an optimistic-concurrency conflict to another writer "
        "(the stream and the GDPR job alike).",
    )
    version: Literal[6, 8, 9] | None = Field(
        default=None,
        description="Hudi table version of the log and quarantine tables. Unset, a new table is created at 9 "
        "(Hudi 1.2's own layout), a version-6 table is written at 6, and a version-8 table (Hudi 1.0's) is "
        "refused until `loglake table upgrade` moves it to 9 once: Hudi 1.2's writes to a version-8 table "
        "leave it unreadable to hudi-rs 0.5. No writer upgrades a table on the way. Set, it is a pin: every "
        "job refuses a table of another version. 6 is the 0.x layout that Hudi 1.2 still writes: Athena "
        "(Hudi 0.14/0.15 readers) and Trino up to 476 read only that; it gives up the LSM timeline and the "
        "compaction job's explicit archiving (writers archive as they commit). 8 is for tables that Hudi "
        "1.0.2 (Amazon EMR 7.11-7.13's own) must still write.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not a table name (letters, digits, underscore)")
        return value

    def require_path(self) -> str:
        if not self.path:
            raise ConfigError("setting table.path is required: pass --table-path or set table.path in the config file")
        return self.path.rstrip("/")

    @property
    def effective_quarantine_path(self) -> str:
        """The quarantine table: configured, else the sibling folder ``<table-path>_quarantine``."""
        return self.quarantine_path or f"{self.require_path()}_quarantine"


class SchemaRegistrySettings(_Model):
    """A Confluent-compatible schema registry: the writer schema of each message by its header's id."""

    url: str | None = Field(
        default=None,
        description="Confluent API URL of the registry (Apicurio: `.../apis/ccompat/v7`; `loglake registry "
        "start` prints one): each message is read with the writer schema of its header's id. Unset: every "
        "message is decoded with the LogBatch schema of this release.",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="confluent-kafka SchemaRegistryClient settings as is: `basic.auth.user.info`, "
        "`ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`, `timeout`, `max.retries`, ...; "
        "a key the client does not know fails at start.",
    )
    max_new_ids_per_batch: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="New schema ids looked up per micro-batch. Producers use a handful; a flood of random ids "
        "(bytes that look like a header) must not turn one batch into thousands of registry requests.",
    )
    unavailable_timeout: str = Field(
        default="10 minutes",
        description="How long a batch that needs a schema waits for an unreachable registry (retrying, the "
        "gauge `loglake_ingest_schema_registry_up` at 0) before the stream stops with exit code 7; a restart "
        "resumes the batch.",
    )

    @field_validator("options", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        # YAML reads `timeout: 5` as a number; the options are texts like every pass-through setting.
        return {k: str(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("unavailable_timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _client(self) -> SchemaRegistrySettings:
        if self.url:
            # The client refuses keys it does not know; a typo is caught at start, not at the first new id.
            from confluent_kafka.schema_registry import SchemaRegistryClient

            try:
                SchemaRegistryClient(self.client_config())
            except (ValueError, TypeError) as exc:
                raise ValueError(f"options: {exc}") from None
            except OSError as exc:  # a TLS file that is missing or not PEM
                files = ", ".join(f"{k}={v}" for k, v in self.options.items() if k.startswith("ssl."))
                raise ValueError(f"options: cannot load {files}: {exc.strerror or exc}") from None
        return self

    @property
    def unavailable_seconds(self) -> float:
        return parse_duration(self.unavailable_timeout)

    def client_config(self) -> dict[str, Any]:
        """The SchemaRegistryClient configuration: url plus the options (numbers as numbers)."""
        config: dict[str, Any] = {"url": self.url}
        for key, value in self.options.items():
            config[key] = int(value) if value.isdigit() else value
        return config


class IngestSettings(_Model):
    """The streaming ingest job."""

    checkpoint_dir: str | None = Field(
        default=None,
        description="Streaming checkpoint (the Kafka offsets of each micro-batch); default "
        "`<table.path>_checkpoints/<ingest.query_name>`. Flag: `--checkpoint-dir`.",
    )
    trigger: str = Field(
        default="5 minutes",
        description="Interval of the micro-batches, a duration like '30 seconds', '5 minutes' or '1 hour'; each "
        "is one Hudi delta commit. Flag: `--trigger`.",
    )
    encoding: Literal["avro", "json"] = Field(
        default="avro", description="Plain binary Avro, or the same structure as JSON (which follows LogBatch)."
    )
    confluent_wire_format: bool = Field(
        default=False,
        description="True: a 5-byte schema-registry header (magic byte, schema id) comes before the Avro; "
        "always so with `schema_registry.url`.",
    )
    max_message_bytes: int = Field(
        default=1_048_576,
        gt=0,
        description="A message over this many bytes goes to quarantine before any decoding (`too_large`).",
    )
    max_records_per_message: int = Field(
        default=10_000,
        gt=0,
        description="A message holding more records goes to quarantine whole (`too_many_records`). Real batches "
        "hold tens; the default leaves 400x headroom over 25 and bounds one message's share of a batch.",
    )
    strict_avro: bool = Field(
        default=True,
        description="Re-encode each decoded batch and compare its length with the payload: binary Avro has no "
        "framing, so trailing garbage or another schema's bytes can otherwise decode as if they were valid.",
    )
    query_name: str = Field(
        default="loglake_ingest",
        description="Name of the streaming query; names the default checkpoint folder and is kept in each "
        "commit's metadata.",
    )
    schema_registry: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)

    @model_validator(mode="after")
    def _registry(self) -> IngestSettings:
        if self.schema_registry.url and self.encoding != "avro":
            raise ValueError(
                "ingest.schema_registry.url holds Avro writer schemas; it needs ingest.encoding=avro, "
                f"not {self.encoding}"
            )
        return self

    @property
    def wire_header(self) -> bool:
        """Whether messages start with the Confluent header (magic byte, schema id): always with a registry."""
        return self.confluent_wire_format or self.schema_registry.url is not None

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError(f"{value!r} must be longer than 0")
        return value

    @property
    def trigger_seconds(self) -> float:
        return parse_duration(self.trigger)


class LogSchemaSettings(_Model):
    """The shape of the messages: which fields are what. Defaults: the LogBatch contract.

    A message is a batch: fields of the batch plus an array of records. Each record becomes a row
    with the batch's fields beside its own; the event time becomes the ``ts`` column and names the
    ``event_date`` partition; the key fields (of the batch) and the record's index in the array make
    the record key. Checked at start against the Avro schema (``avro_schema``, else the registry's
    latest version of the topic's subject, else LogBatch), naming any field it lacks.
    """

    avro_schema: str | None = Field(
        default=None,
        description="An .avsc file: the messages' schema (the reader schema when a registry gives writer "
        "schemas); unset, fields of your own are checked against the registry's latest `<topic>-value`.",
    )
    records_field: str = Field(default="records", description="The batch field that holds the array of records.")
    key_fields: list[str] = Field(
        default_factory=lambda: ["service", "batch_id"],
        min_length=1,
        description="Batch fields that identify a batch: with the record index, the record key. Their values "
        "must be stable across resends (a producer retry), or a resend is a second copy.",
    )
    event_time_field: str = Field(
        default="ts",
        description="A record field: epoch number in `event_time_unit`, or an Avro timestamp-millis/-micros. It "
        "becomes the `ts` column and names the `event_date` partition.",
    )
    event_time_unit: Literal["seconds", "millis", "micros"] = Field(
        default="millis", description="Unit of a numeric event time (an Avro timestamp says its own)."
    )
    batch_fields: list[str] | None = Field(
        default=None,
        description="Columns from the batch; null: every field of the batch (the records array excepted). "
        "Dotted paths are not supported: a nested struct is one column.",
    )
    record_fields: list[str] | None = Field(
        default=None,
        description="Columns from each record; null: every field of a record (the event time excepted). "
        "Dotted paths are not supported: a nested struct is one column.",
    )
    subject_columns: list[str] = Field(
        default_factory=lambda: ["user_id", "email", "client_ip"],
        min_length=1,
        description="Columns that hold a data subject's identifiers: erasure requests name them, and they never "
        "get column statistics in Hudi's metadata table (min/max would keep identifiers out of reach).",
    )
    stats_columns: list[str] | None = Field(
        default=None,
        description="Columns besides `ts` whose min/max Hudi keeps in its metadata table for data skipping; never "
        "a subject column. Null: `level`, `service`, `event` for LogBatch, the key fields for a shape of your own. "
        "Every writer derives the same list; changing it makes Hudi rebuild the column statistics.",
    )

    @field_validator("avro_schema")
    @classmethod
    def _schema_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"{value!r} is not a readable file")
        return value

    @field_validator("subject_columns", "key_fields", "batch_fields", "record_fields", "stats_columns")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not a field name (letters, digits, underscore)")
        if value is not None and len({n.lower() for n in value}) != len(value):
            raise ValueError(f"{value} names a field twice")
        return value


class MetricsSettings(_Model):
    """Prometheus endpoints."""

    port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="The driver serves `/metrics` here; 0 turns the endpoint off. Flag: `--metrics-port`.",
    )
    host: str = Field(
        default="0.0.0.0",  # noqa: S104 - scraped from other hosts on a cluster
        description="Address the driver's `/metrics` listens on; every interface, since Prometheus scrapes it "
        "from other hosts on a cluster.",
    )
    pushgateway: str | None = Field(
        default=None,
        description="`host:port` of a Prometheus Pushgateway: transient jobs (gdpr, compact) push their metrics "
        "there, and every writer turns on Hudi's own reporter. Flag: `--pushgateway`.",
    )


class GdprSettings(_Model):
    """The erasure job: ledger, salt, request topic, purge retention."""

    ledger_path: str | None = Field(
        default=None,
        description="The erasure ledger table; default the sibling folder `<table.path>_gdpr_ledger`.",
    )
    ledger_salt: str | None = Field(
        default=None,
        description="Salt of the subject hashes in the ledger. Set it from a secret store in production; unset, "
        "a random salt is created once beside the ledger (`<ledger>/.salt`) so re-runs hash alike.",
    )
    requests_topic: str | None = Field(
        default=None,
        description="Kafka topic of erasure requests (JSON objects like the JSON-lines file), read by the "
        "consumer group `requests_group`.",
    )
    requests_group: str = Field(
        default="loglake-gdpr",
        description="Consumer group of `requests_topic`; its offsets are committed only after a successful run.",
    )
    purge_file_versions_retained: int = Field(
        default=1,
        ge=1,
        description="A purge keeps this many file versions per file group: 1 leaves no older copy behind.",
    )


class CompactionSettings(_Model):
    """The table-services job (``loglake compact``): compaction, clustering, cleaning, archiving.

    How plans are chosen and sized is Hudi's (``hoodie.compaction.*``, ``hoodie.clustering.*``,
    ``hoodie.clean.*``, ``hoodie.keep.*``; defaults in :data:`loglake.table.TABLE_SERVICES`).
    """

    max_rounds: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="`--until-caught-up` stops after this many rounds even if the stream keeps scheduling plans "
        "(exit code 1 when plans from before the run are still pending).",
    )
    loop_interval: str = Field(default="10 minutes", description="Pause between rounds of `--loop`.")
    max_failed_rounds: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="`--loop` rides out a failed round (a rollback racing another writer's cleaner, a conflict "
        "with a delete) and tries again after the pause; it stops after this many failed rounds in a row.",
    )
    clustering: bool = Field(
        default=True,
        description="Cluster small base files; skipped (and said so in the report) with the bucket index, whose "
        "file groups are hash buckets.",
    )
    clean: bool = Field(
        default=True, description="Remove file versions the cleaning policy (`hoodie.clean.*`) no longer keeps."
    )
    archive: bool = Field(
        default=True,
        description="Archive old timeline instants (`hoodie.keep.*`); on a version-6 table the writers archive "
        "as they commit instead.",
    )

    @field_validator("loop_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def loop_seconds(self) -> float:
        return parse_duration(self.loop_interval)


class CatalogSettings(_Model):
    """Registration of the tables in a Hive Metastore (or AWS Glue through its Hive client), by name.

    The log table is registered twice, as Hudi does for merge-on-read tables: ``<table>_ro`` reads
    the compacted Parquet only, ``<table>_rt`` merges the delta logs too. The quarantine table
    (copy-on-write) is registered once.
    """

    enabled: bool | None = Field(
        default=None,
        description="Unset: on exactly when a metastore is given (`metastore_uris`). On EMR with the Glue Data "
        "Catalog the client comes from hive-site.xml, so there it is switched on with no URI.",
    )
    metastore_uris: str | None = Field(
        default=None,
        description="`thrift://host:9083[,thrift://...]`; unset: `hive.metastore.uris` from the cluster's "
        "hive-site.xml.",
    )
    database: str = Field(default="default", description="Database the tables are registered in.")
    table: str | None = Field(
        default=None,
        description="Name of the log table, registered as `<table>_ro` and `<table>_rt`; default `table.name`.",
    )
    quarantine_table: str | None = Field(
        default=None, description="Name of the quarantine table; default `<table.name>_quarantine`."
    )
    sync_every_batches: int = Field(
        default=1,
        ge=1,
        le=10_000,
        description="The stream registers new partitions and columns after every Nth micro-batch that committed "
        "(a sync that failed is retried after the next one whatever N is).",
    )
    hive_conf: dict[str, str] = Field(
        default_factory=dict,
        description="Hive client settings (`hive.metastore.*`, `hive.metastore.client.*`), e.g. the Glue client "
        "factory or `hive.metastore.client.socket.timeout: 60s`.",
    )

    @field_validator("metastore_uris")
    @classmethod
    def _uris(cls, value: str | None) -> str | None:
        if value is None:
            return value
        for uri in value.split(","):
            if not re.fullmatch(r"thrift://[^\s:/]+:\d{1,5}", uri.strip()):
                raise ValueError(f"{uri.strip()!r} is not a thrift://host:port metastore URI")
        return value

    @field_validator("database", "table", "quarantine_table")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        # Hive folds names to lower case and allows letters, digits and underscores only.
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not a Hive name (letters, digits, underscore)")
        return value

    @field_validator("hive_conf", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return {k: str(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("hive_conf")
    @classmethod
    def _hive_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not k.startswith(("hive.", "metastore.", "fs.", "aws."))]
        if bad:
            raise ValueError(f"keys {bad} are not Hive client settings (hive.*, metastore.*, fs.*, aws.*)")
        return value

    @property
    def active(self) -> bool:
        return self.enabled if self.enabled is not None else self.metastore_uris is not None


class SparkSettings(_Model):
    """How the SparkSession is built. ``conf`` holds any ``spark.*`` option."""

    jars: Literal["maven", "packages", "provided"] = Field(
        default="maven",
        description="maven: jars resolved once by loglake into `$LOGLAKE_HOME` (offline afterwards); packages: "
        "`spark.jars.packages` (Ivy) with the same coordinates; provided: the cluster has them (EMR).",
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Any `spark.*` option of the SparkSession (`spark.master`, `spark.driver.memory`, ...); "
        "unknown keys get a warning. Under spark-submit, master, memory and jars come from spark-submit.",
    )

    @field_validator("conf")
    @classmethod
    def _spark_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not k.startswith("spark.")]
        if bad:
            raise ValueError(f"keys {bad} do not start with 'spark.'")
        return value


class Settings(_Model):
    """Everything one loglake job needs."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    table: TableSettings = Field(default_factory=TableSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    log_schema: LogSchemaSettings = Field(default_factory=LogSchemaSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    gdpr: GdprSettings = Field(default_factory=GdprSettings)
    compaction: CompactionSettings = Field(default_factory=CompactionSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    hoodie: dict[str, str] = Field(
        default_factory=dict,
        description="Any `hoodie.*` option; applied last to every writer of the log table, so it can override "
        "loglake's defaults. A key Hudi does not declare fails at start, naming the nearest known one.",
    )

    @field_validator("hoodie")
    @classmethod
    def _hoodie_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not k.startswith("hoodie.")]
        if bad:
            raise ValueError(f"keys {bad} do not start with 'hoodie.'")
        # A typo is otherwise accepted and ignored by Hudi: the table silently gets the default.
        config_keys.check_hoodie(value)
        return value

    @model_validator(mode="after")
    def _paths(self) -> Settings:
        if (
            self.table.path
            and self.table.quarantine_path
            and (self.table.path.rstrip("/") == self.table.quarantine_path.rstrip("/"))
        ):
            raise ValueError("table.quarantine_path must differ from table.path")
        return self

    @property
    def checkpoint_dir(self) -> str:
        """Streaming checkpoint: configured, else ``<table-path>_checkpoints/<query name>``."""
        return self.ingest.checkpoint_dir or f"{self.table.require_path()}_checkpoints/{self.ingest.query_name}"

    @property
    def ledger_path(self) -> str:
        """The erasure ledger: configured, else ``<table-path>_gdpr_ledger``."""
        return (self.gdpr.ledger_path or f"{self.table.require_path()}_gdpr_ledger").rstrip("/")

    @property
    def storage_paths(self) -> list[str]:
        """Every folder the jobs read or write (table, quarantine, checkpoint, ledger) that is configured."""
        if self.table.path is None:
            return [p for p in (self.table.quarantine_path, self.ingest.checkpoint_dir, self.gdpr.ledger_path) if p]
        return [self.table.path, self.table.effective_quarantine_path, self.checkpoint_dir, self.ledger_path]

    def masked(self) -> dict[str, Any]:
        """The effective settings for the start-up log, with secrets masked."""
        return _mask(self.model_dump())


def is_secret(key: str) -> bool:
    """Whether a setting or option of this name holds a secret, whose value is never shown."""
    return _SECRET_RE.search(key) is not None


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if is_secret(key) and value:
        return "****"
    return value


def _coerce_scalar(text: str) -> Any:
    """``--set`` values are YAML scalars, so ``true``, ``10`` and ``null`` mean what they say."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _assign(tree: dict[str, Any], dotted: str, value: Any) -> None:
    if dotted.startswith("hoodie."):
        tree.setdefault("hoodie", {})[dotted] = str(value)
        return
    if dotted.startswith("spark.conf.spark."):
        # The YAML path of a Spark option (spark: conf: spark.x) is accepted as well as its own name.
        dotted = dotted.removeprefix("spark.conf.")
    if dotted.startswith("spark.") and dotted != "spark.jars":
        # spark.jars is loglake's own setting (how jars are brought); every other spark.* is Spark's.
        tree.setdefault("spark", {}).setdefault("conf", {})[dotted] = str(value)
        return
    if dotted.startswith("ingest.schema_registry.options."):
        options = tree.setdefault("ingest", {}).setdefault("schema_registry", {}).setdefault("options", {})
        options[dotted.removeprefix("ingest.schema_registry.options.")] = str(value)
        return
    if dotted.startswith("catalog.hive_conf."):
        # Hive setting names have dots of their own (hive.metastore.uris).
        conf = tree.setdefault("catalog", {}).setdefault("hive_conf", {})
        conf[dotted.removeprefix("catalog.hive_conf.")] = str(value)
        return
    if dotted.startswith("kafka.options."):
        # Kafka option names have dots of their own (kafka.sasl.jaas.config).
        tree.setdefault("kafka", {}).setdefault("options", {})[dotted.removeprefix("kafka.options.")] = str(value)
        return
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"setting {dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML itself keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"key {key!r} is given twice, on lines {seen[key]} and {line}; keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top, got {type(data).__name__}")
    # hoodie and spark.conf may be written as YAML trees; flatten them to the dotted option names.
    if isinstance(data.get("hoodie"), dict):
        data["hoodie"] = {_prefixed(k, "hoodie."): _option_text(v) for k, v in _flatten(data["hoodie"]).items()}
    spark = data.get("spark")
    if isinstance(spark, dict) and isinstance(spark.get("conf"), dict):
        spark["conf"] = {_prefixed(k, "spark."): _option_text(v) for k, v in _flatten(spark["conf"]).items()}
    return data


def _option_text(value: Any) -> str:
    """YAML's true/false back to the lower-case text Spark and Hudi document."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _prefixed(key: str, prefix: str) -> str:
    return key if key.startswith(prefix) else prefix + key


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        lines.append(
            f"setting {where}: {msg} (got {_mask(err.get('input'))!r})"
            if err["type"] != "missing"
            else f"setting {where}: required"
        )
    return "; ".join(lines)


# Environment variables that set a secret setting (between the YAML file and --set in precedence).
SECRET_ENV = {"LOGLAKE_LEDGER_SALT": "gdpr.ledger_salt"}


def load_settings(
    config: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    assignments: Iterable[str] = (),
) -> Settings:
    """Build the settings from an optional YAML file, ``KEY=VALUE`` assignments and flag overrides.

    Raises:
        ConfigError: naming the setting whose value is bad.
    """
    tree: dict[str, Any] = _read_yaml(config) if config else {}
    # Secrets come from the environment, so they need not be written into a settings file.
    for env, dotted in SECRET_ENV.items():
        if os.environ.get(env):
            _assign(tree, dotted, os.environ[env])
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. ingest.trigger='1 minute'")
        key, value = key.strip(), value.strip()
        # Spark and Hudi options keep their text exactly ("false" must not become "False").
        passthrough = key.startswith(("hoodie.", "kafka.options.", "ingest.schema_registry.options.")) or (
            key.startswith("spark.") and key != "spark.jars"
        )
        _assign(tree, key, value if passthrough else _coerce_scalar(value))
    for key, value in (overrides or {}).items():
        if value is not None:
            _assign(tree, key, value)
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None
