"""The ingest job's Prometheus metrics (``loglake_ingest_*``), in one registry per job."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Batch durations from a few seconds (small local batches) to beyond a 5-minute trigger.
_DURATION_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 90, 120, 180, 240, 300, 450, 600, 900)


@dataclass
class IngestMetrics:
    """Every metric the ingest driver exposes; updated by the listener and the batch writer."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.info = Info(
            "loglake_ingest",
            "Static facts about this ingest stream, as the labels table, topic and version.",
            registry=r,
        )
        self.batches = Counter("loglake_ingest_batches_total", "Micro-batches committed.", registry=r)
        self.input_messages = Counter(
            "loglake_ingest_input_messages_total",
            "Kafka messages read and written, counted by the writer from the rows it wrote (a message with an "
            "empty records array writes no row and is not counted).",
            registry=r,
        )
        self.batch_input_messages = Gauge(
            "loglake_ingest_batch_input_messages", "Kafka messages in the last micro-batch.", registry=r
        )
        self.records_written = Counter(
            "loglake_ingest_records_written_total", "Log records written to the table.", registry=r
        )
        self.batch_records = Gauge(
            "loglake_ingest_batch_records", "Log records written by the last micro-batch.", registry=r
        )
        self.quarantined = Counter(
            "loglake_ingest_quarantined_total",
            "Rows sent to the quarantine table, by reason code: whole messages (too_large, too_many_records, "
            "bad_wire_header, not_avro, avro_trailing_bytes, not_json, missing_field, invalid_utf8 in a batch "
            "field, unknown_schema_id, incompatible_schema) or single records (bad_ts, null_record, missing_field, "
            "invalid_utf8).",
            ["reason_code"],
            registry=r,
        )
        self.batch_duration = Histogram(
            "loglake_ingest_batch_duration_seconds",
            "Wall time of a micro-batch (trigger execution).",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.last_batch_duration = Gauge(
            "loglake_ingest_last_batch_duration_seconds",
            "Wall time of the last micro-batch; alert when above the trigger interval.",
            registry=r,
        )
        self.trigger_interval = Gauge(
            "loglake_ingest_trigger_interval_seconds", "The configured trigger interval.", registry=r
        )
        self.offsets_behind = Gauge(
            "loglake_ingest_kafka_offsets_behind",
            "Messages in Kafka not yet processed, per partition: the latest offset minus the offset processed, at "
            "the end of the last batch.",
            ["topic", "partition"],
            registry=r,
        )
        self.queue_age = Gauge(
            "loglake_ingest_kafka_oldest_unconsumed_age_seconds",
            "Time in queue: age (from its Kafka timestamp) of the first message not yet processed, per partition, "
            "0 when caught up; offset lag alone misleads when traffic is uneven.",
            ["topic", "partition"],
            registry=r,
        )
        self.last_commit = Gauge(
            "loglake_ingest_last_commit_timestamp_seconds",
            "Unix time of the last successful Hudi commit; time() - x is the commit age.",
            registry=r,
        )
        self.pending_compactions = Gauge(
            "loglake_ingest_pending_compactions",
            "Compaction plans the stream scheduled that the compaction job has not executed yet.",
            registry=r,
        )
        self.oldest_pending_compaction = Gauge(
            "loglake_ingest_oldest_pending_compaction_age_seconds",
            "Age of the oldest compaction plan not yet executed (0 when none).",
            registry=r,
        )
        self.uncompacted_delta_commits = Gauge(
            "loglake_ingest_uncompacted_delta_commits",
            "Delta commits newer than the last completed compaction: the log files a snapshot query must merge.",
            registry=r,
        )
        self.oldest_uncompacted_delta_commit = Gauge(
            "loglake_ingest_oldest_uncompacted_delta_commit_age_seconds",
            "Age of the oldest delta commit no compaction has covered yet (0 when none); alert when it grows past "
            "the compaction interval.",
            registry=r,
        )
        self.failures = Counter(
            "loglake_ingest_batch_failures_total",
            "Micro-batch writes that raised (the query then stops and is restarted).",
            registry=r,
        )
        self.kafka_up = Gauge(
            "loglake_ingest_kafka_up",
            "1 when the Kafka brokers answered the last probe (a metadata request every 5 s from a thread beside "
            "the query), 0 when not. While 0, the two lag gauges read NaN: unknown, never a reassuring 0.",
            registry=r,
        )
        self.skipped_offsets = Counter(
            "loglake_ingest_kafka_skipped_offsets_total",
            "Offsets deleted from Kafka (retention, delete-records) before the stream read them, skipped "
            "because kafka.fail_on_data_loss is false; each skip is also logged with its range. With the default "
            "(true) the stream stops instead, exit code 5.",
            ["topic", "partition"],
            registry=r,
        )
        self.schema_registry_up = Gauge(
            "loglake_ingest_schema_registry_up",
            "With ingest.schema_registry.url: 1 when the registry answered the last lookup, 0 while a batch waits "
            "for it to answer (alert LoglakeSchemaRegistryUnreachable); NaN without a registry. Looked up only "
            "for schema ids this run has not met.",
            registry=r,
        )
        self.schema_registry_errors = Counter(
            "loglake_ingest_schema_registry_errors_total",
            "Schema lookups the registry did not answer (refused, timed out, HTTP 5xx); each is retried.",
            registry=r,
        )
        self.schema_ids = Gauge(
            "loglake_ingest_schema_ids", "Writer schema ids this run decodes into the table.", registry=r
        )
        self.catalog_syncs = Counter(
            "loglake_ingest_catalog_syncs_total",
            "Catalog syncs of a table (log or quarantine) after a micro-batch that succeeded: new partitions and "
            "columns registered (with catalog.metastore_uris or catalog.enabled).",
            ["table"],
            registry=r,
        )
        self.catalog_sync_failures = Counter(
            "loglake_ingest_catalog_sync_failures_total",
            "Catalog syncs that failed (metastore down or refusing); the commit stands and the sync is retried "
            "after the next micro-batch (alert LoglakeCatalogSyncFailing).",
            ["table"],
            registry=r,
        )
        self.catalog_sync_duration = Histogram(
            "loglake_ingest_catalog_sync_duration_seconds",
            "Wall time of the catalog syncs that succeeded.",
            ["table"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.catalog_unsynced_batches = Gauge(
            "loglake_ingest_catalog_unsynced_batches",
            "Micro-batches committed to the table since its last successful catalog sync: what readers by name "
            "do not see yet.",
            ["table"],
            registry=r,
        )
