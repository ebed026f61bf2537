"""The table contract shared by every writer: columns, record key, partition path, Hudi options.

One function per writer role builds that role's Hudi options from one common base, so the ingest
stream, the GDPR job and compaction cannot drift apart on key, partitioning or merge semantics.
User ``hoodie.*`` settings are applied last and win.

Record key: ``<service>:<batch_id>:<record_index>``, with ``%`` and ``:`` in the service
percent-escaped. It is deterministic (a replayed or re-sent batch maps onto the same keys, so an
upsert overwrites rather than duplicates), unambiguous (the service cannot contain a raw ``:``, and
the record index is the digits after the last ``:``), and carries no personal data: keys live on in
indexes, bloom filters and commit metadata, where an erasure could not reach them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from loglake import shape
from loglake.errors import ConfigError
from loglake.settings import Settings
from loglake.shape import PARTITION_FIELD, RECORD_KEY

TABLE_TYPE = "MERGE_ON_READ"
KEY_SEPARATOR = ":"

QUARANTINE_KEY = "quarantine_key"
QUARANTINE_PARTITION_FIELD = "quarantine_date"
QUARANTINE_COLUMNS = (
    QUARANTINE_KEY,
    "reason_code",
    "reason",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "kafka_key",
    "raw_value",
    "record_index",
    "record_json",
    "batch_id",
    "quarantined_at",
    QUARANTINE_PARTITION_FIELD,
)

MS_PER_DAY = 86_400_000
# Hudi's commit metadata carries these (prefix + name) so a commit can be traced to its micro-batch.
COMMIT_META_PREFIX = "loglake."


def _escape(value: Column) -> Column:
    return F.replace(F.replace(value, F.lit("%"), F.lit("%25")), F.lit(":"), F.lit("%3A"))


def record_key_of(key_fields: list[Column], record_index: Column) -> Column:
    """The record key of a batch's key fields and a record index: every field but the last escaped,
    so the key splits back unambiguously (the index is the digits after the last separator)."""
    parts = [_escape(f) for f in key_fields[:-1]] + [key_fields[-1]]
    return F.concat_ws(KEY_SEPARATOR, *parts, record_index.cast("string"))


def record_key(service: Column, batch_id: Column, record_index: Column) -> Column:
    """The record key column of a LogBatch record (see module docstring for its form)."""
    return record_key_of([service, batch_id], record_index)


def record_key_py(service: str, batch_id: str, record_index: int) -> str:
    """The same key built in Python (tests, erasure requests by key)."""
    escaped = service.replace("%", "%25").replace(":", "%3A")
    return KEY_SEPARATOR.join((escaped, batch_id, str(record_index)))


def utc_date(epoch_millis: Column) -> Column:
    """UTC calendar date of an epoch-millis column as ``yyyy-MM-dd``.

    Computed by integer division, not ``to_date``: the result must not depend on the session time
    zone of whichever cluster writes. A date cast to string is ``yyyy-MM-dd`` for years 1000-9999 and
    costs less than ``date_format``, which formats through a timestamp (1.5% of the ingest's CPU).
    """
    days = F.floor(epoch_millis / F.lit(MS_PER_DAY)).cast("int")
    return F.date_add(F.lit("1970-01-01").cast("date"), days).cast("string")


def _base_options(*, name: str, key: str, partition: str) -> dict[str, str]:
    return {
        "hoodie.table.name": name,
        "hoodie.datasource.write.recordkey.field": key,
        "hoodie.datasource.write.partitionpath.field": partition,
        "hoodie.datasource.write.keygenerator.class": "org.apache.hudi.keygen.SimpleKeyGenerator",
        "hoodie.datasource.write.hive_style_partitioning": "true",
        # Latest write wins. Log records are immutable, so a replay writes the same values; and a
        # delete must always beat an older insert, which event-time ordering does not promise.
        "hoodie.record.merge.mode": "COMMIT_TIME_ORDERING",
        "hoodie.datasource.meta.sync.enable": "false",
        # Never let a failed micro-batch be skipped (apache/hudi #7002 lost data that way).
        "hoodie.datasource.write.streaming.ignore.failed.batch": "false",
        "hoodie.datasource.write.commitmeta.key.prefix": COMMIT_META_PREFIX,
    }


# The log table's physical layout, shared by every writer of it. Chosen by measurement (docs/performance.md,
# "Why these defaults"; 1.6M records, local[2]): against SIMPLE index + Hudi defaults at ~38k
# records/s written, these reach ~120k on the first write of a day and ~85k on appends.
LOG_TABLE_LAYOUT = {
    # Bucket index: a key's file group is hash(key) mod buckets, so writes and deletes need no index
    # lookup (SIMPLE re-reads every key of the partition per batch; RECORD_INDEX was slower still),
    # and every file group can take log files, which non-blocking concurrency needs. The count is
    # fixed per partition when the table is created: size it to a day's data / ~1 GiB.
    "hoodie.index.type": "BUCKET",
    "hoodie.index.bucket.engine": "SIMPLE",
    "hoodie.bucket.index.num.buckets": "4",
    # Keys are unique within a batch (the writer checks and dedupes itself when they are not), so
    # Hudi's pre-combine shuffle is pure cost: 40% of write time, and it scattered rows of one Kafka
    # message across files, which doubled the Parquet size.
    "hoodie.combine.before.upsert": "false",
    "hoodie.combine.before.insert": "false",
    # Spark-native records and Parquet log blocks: no Avro round trip per record, and logs ~6x
    # smaller than Avro blocks. hudi-rs and Spark read them.
    "hoodie.write.record.merge.custom.implementation.classes": "org.apache.hudi.OverwriteWithLatestSparkRecordMerger",
    "hoodie.logfile.data.block.format": "parquet",
    # zstd: as fast as snappy here, and gzip (Hudi's default) cost a third of the write time.
    "hoodie.parquet.compression.codec": "zstd",
    # Hudi builds column and partition statistics of every column into the metadata table: the
    # min and max of user_id or email are personal data, compressed inside HFiles where an erasure
    # cannot see or reach them. Index only columns that identify no one (ts serves time filters).
    # The list itself comes from the log shape (loglake.shape.stats_columns): LogBatch's by default.
    # Hudi 1.2 rolls these statistics up per partition too (partition stats, no longer a setting of their
    # own), over the same columns: no identifier reaches them either.
    # Each write task registers a marker with the timeline server, which batches requests every 50 ms
    # by default: a commit touching 120 file groups spent 1.7 of its 5.7 s waiting for markers.
    "hoodie.markers.timeline_server_based.batch.interval_ms": "5",
    # Hudi's bloom filter of record keys in every Parquet footer serves the BLOOM index only: with the
    # bucket index nothing reads it, and building it took 5% of the ingest's CPU (860 KB per file).
    "hoodie.parquet.bloom.filter.enabled": "false",
}

# Several writers share the log table: the stream, the GDPR job, the compaction job. Optimistic
# concurrency: each commit checks, under a lock, that no commit completed since it started touched
# the same file groups; the loser fails with HoodieWriteConflictException and its writer retries
# (loglake.retry). Non-blocking concurrency (NBCC) was tried too and ran 8 ingest and 5 delete commits
# interleaved with no conflict, but it writes log files only, which hudi-rs 0.5 (the independent
# reader) sees as an empty table, and it rules out clustering: set it through hoodie.* if neither
# matters to you.
MULTI_WRITER = {
    "hoodie.table.type": TABLE_TYPE,
    "hoodie.write.concurrency.mode": "OPTIMISTIC_CONCURRENCY_CONTROL",
    # A lock file beside the timeline: right for one machine or HDFS. On S3 (EMR) set the DynamoDB
    # provider (deploy/emr); S3 has no atomic create-if-absent for this provider to rely on.
    "hoodie.write.lock.provider": "org.apache.hudi.client.transaction.lock.FileSystemBasedLockProvider",
    # Minutes after which a lock left by a killed writer is broken (commits hold it for seconds), and
    # a wait longer than that: a writer restarted after a SIGKILL waited in vain with Hudi's defaults.
    "hoodie.write.lock.filesystem.expire": "1",
    "hoodie.write.lock.client.num_retries": "60",
    "hoodie.write.lock.client.wait_time_ms_between_retry": "2000",
    # A failed writer's files are rolled back by the cleaner once its heartbeat expires, never by
    # another writer that would mistake a live commit for a failed one.
    "hoodie.clean.failed.writes.policy": "LAZY",
    # Table services run in one place (the compaction job, or a purge for its own file groups): two
    # writers compacting inline executed the same plan twice in a trial, which corrupts the table.
    "hoodie.compact.inline": "false",
    "hoodie.datasource.compaction.async.enable": "false",
}


# Table services (docs/compaction.md): the stream only plans compactions, the compaction job runs
# them, cleans and archives. Hudi's own defaults where they serve, written out so the job and the
# docs name them.
TABLE_SERVICES = {
    # Plan a compaction after every 5 delta commits (25 minutes at the default trigger) without
    # executing it in the stream: a micro-batch never waits for a compaction.
    "hoodie.compact.schedule.inline": "true",
    "hoodie.compact.inline.trigger.strategy": "NUM_COMMITS",
    "hoodie.compact.inline.max.delta.commits": "5",
    # Largest logs first, at most this many MB of IO per plan (Hudi's default, 500 GB).
    "hoodie.compaction.strategy": "org.apache.hudi.table.action.compact.strategy.LogFileSizeBasedCompactionStrategy",
    "hoodie.compaction.target.io": "512000",
    # Keep the file slices the last 10 commits' readers may still use; archive the timeline beyond 30.
    "hoodie.clean.policy": "KEEP_LATEST_COMMITS",
    "hoodie.clean.commits.retained": "10",
    "hoodie.keep.min.commits": "20",
    "hoodie.keep.max.commits": "30",
}


# What a new table is created at: Hudi 1.2's own version. hudi-rs 0.5 reads it; Athena and Trino 476
# need 6 (table.version), EMR's own Hudi 1.0.2 needs 8.
CURRENT_VERSION = 9
VERSION_NAMES = {6: "SIX", 8: "EIGHT", 9: "NINE"}


def version_options(settings: Settings) -> dict[str, str]:
    """The table version every writer writes (``table.version``, resolved by :func:`resolve_version`).

    Hudi's automatic upgrade stays off for every version: a writer that upgraded the table on its
    first commit would take it from the other writers still configured for the old version (and a
    version-6 table from the readers it was kept for). ``loglake table upgrade`` moves it, once.
    """
    version = settings.table.version or CURRENT_VERSION
    return {"hoodie.write.table.version": str(version), "hoodie.write.auto.upgrade": "false"}


def table_version(spark: SparkSession, path: str) -> int | None:
    """The version in the table's ``hoodie.properties``; None where there is no table yet."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    props_path = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/.hoodie/hoodie.properties")
    fs = props_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(props_path):
        return None
    props = jvm.java.util.Properties()
    stream = fs.open(props_path)
    try:
        props.load(stream)
    finally:
        stream.close()
    value = props.getProperty("hoodie.table.version")
    return int(value) if value is not None else None


def resolve_version(spark: SparkSession, settings: Settings, *paths: str) -> Settings:
    """``settings`` with ``table.version`` set to the version its tables are written at.

    Unset, that is the version the log table (the first path) has, or :data:`CURRENT_VERSION` for a
    table yet to be created, except a version-8 table, which is refused with the step that moves it
    to 9; set, it must be the version of every table that exists. Every table of the paths must
    agree: one writer configuration serves them all.
    """
    found = {p: v for p in paths if (v := table_version(spark, p)) is not None}
    pinned = settings.table.version
    version: int = pinned if pinned is not None else next(iter(found.values()), CURRENT_VERSION)
    if pinned is None and version == 8:
        # Hudi 1.2 writes its metadata table's records in a newer schema than 1.0 left in a version-8
        # table's metadata files; hudi-rs 0.5 then fails on every read of the table. The upgrade rebuilds
        # the metadata table in one schema.
        raise ConfigError(
            f"the table at {next(iter(found))} is version 8 (Hudi 1.0's): with every writer stopped, run "
            "`loglake table upgrade` once to move it to 9, or set table.version=8 to keep writing 8 "
            "(hudi-rs 0.5 cannot read a version-8 table after Hudi 1.2 wrote to it)"
        )
    for path, have in found.items():
        if have not in VERSION_NAMES:
            raise ConfigError(
                f"the table at {path} is version {have}, which loglake does not write (it writes "
                f"{', '.join(map(str, VERSION_NAMES))}); upgrade it with Hudi's CALL upgrade_table first"
            )
        if have == version:
            continue
        if pinned is None:
            fix = f"run `loglake table upgrade --to {max(found.values())}` to bring every table to one version"
            raise ConfigError(f"the table at {path} is version {have}, beside a version-{version} table; {fix}")
        fix = (
            f"set table.version={have}, or upgrade it once with `loglake table upgrade --to {version}`"
            if have < version
            else f"set table.version={have}, or downgrade it first with Hudi's CALL downgrade_table(table => "
            f"'<name>', to_version => '{VERSION_NAMES[version]}')"
        )
        raise ConfigError(f"setting table.version={pinned}: the table at {path} is version {have}; {fix}")
    if version == settings.table.version:
        return settings
    return settings.model_copy(update={"table": settings.table.model_copy(update={"version": version})})


def lock_options(settings: Settings) -> dict[str, str]:
    """Concurrency, lock and failed-write settings every writer of any loglake table shares.

    The user's ``hoodie.write.lock.*`` (DynamoDB on EMR) apply to the quarantine table, the ledger
    and table services too: one lock service for all, and never a lock file on S3.
    """
    opts = {k: v for k, v in MULTI_WRITER.items() if k.startswith(("hoodie.write.", "hoodie.clean."))}
    opts.update({k: v for k, v in settings.hoodie.items() if k.startswith("hoodie.write.lock.")})
    return opts


def hudi_metrics_options(settings: Settings, role: str) -> dict[str, str]:
    """Hudi's own metrics, pushed beside ours when a Pushgateway is configured.

    They add what loglake's lack: per-commit durations and sizes, write-conflict resolutions and lock
    waits, pending table services as Hudi counts them. Job ``loglake_hudi_<role>``, names prefixed by
    the table name (``logs_deltacommit_duration``).
    """
    gateway = settings.metrics.pushgateway
    if not gateway:
        return {}
    host, _, port = gateway.removeprefix("http://").rpartition(":")
    return {
        "hoodie.metrics.on": "true",
        "hoodie.metrics.reporter.type": "PROMETHEUS_PUSHGATEWAY",
        "hoodie.metrics.pushgateway.host": host,
        "hoodie.metrics.pushgateway.port": port,
        "hoodie.metrics.pushgateway.job.name": f"loglake_hudi_{role}",
        # One stable job per role, kept after the process ends (transient jobs are gone by the next scrape).
        "hoodie.metrics.pushgateway.random.job.name.suffix": "false",
        "hoodie.metrics.pushgateway.delete.on.shutdown": "false",
        "hoodie.metrics.pushgateway.report.period.seconds": "15",
        "hoodie.metrics.lock.enable": "true",
    }


def indexed_columns(settings: Settings) -> str:
    """The columns Hudi keeps statistics of, as the log shape derives them (never a subject column,
    see LOG_TABLE_LAYOUT); a column the table lacks would fail every commit."""
    return ",".join(shape.stats_columns(settings.log_schema))


def log_table_options(settings: Settings) -> dict[str, str]:
    """Options every writer of the log table shares (key, partitioning, merge mode, layout)."""
    opts = _base_options(
        name=settings.table.name,
        key=RECORD_KEY,
        partition=PARTITION_FIELD,
    )
    opts["hoodie.datasource.write.table.type"] = TABLE_TYPE
    opts.update(LOG_TABLE_LAYOUT)
    opts["hoodie.metadata.index.column.stats.column.list"] = indexed_columns(settings)
    opts.update(MULTI_WRITER)
    opts.update(TABLE_SERVICES)
    opts.update(version_options(settings))
    return opts


def service_options(settings: Settings) -> dict[str, str]:
    """Options of the table-services job (compaction, clustering, cleaning, archiving) on the log table."""
    opts = log_table_options(settings)
    # The job executes what the stream plans; a plan of its own only on --schedule.
    opts["hoodie.compact.schedule.inline"] = "false"
    opts.update(hudi_metrics_options(settings, "compaction"))
    opts.update(settings.hoodie)
    return opts


def ingest_options(settings: Settings) -> dict[str, str]:
    """Hudi options of the streaming ingest writer (one micro-batch per commit)."""
    opts = log_table_options(settings)
    opts.update(
        {
            # Always upsert: a replayed or re-sent batch must overwrite its own keys (exactly once), and
            # with the bucket index an upsert costs no index lookup, so insert would gain nothing.
            "hoodie.datasource.write.operation": "upsert",
            # Hudi caches its input serialized so that its two passes (workload profile, write) build
            # the records once. The writer's input is staged from Kafka's rows, which costs less to
            # redo than to serialize and read back: 13 s instead of 21 s of a 1.6M-record batch on 2 cores.
            "hoodie.write.tagged.record.storage.level": "NONE",
            # What the stream writes (a file group's first base file, then Parquet log blocks) lives
            # until the next compaction of its file group rewrites it; those base files keep Parquet's
            # dictionary encoding (the compaction job does not set this). Dictionary-encoding the
            # stream's files looked up every string value in a hash map: a quarter of the write's CPU
            # (1.6M records: 63 s -> 49 s of task time) for files 20% smaller.
            "hoodie.parquet.dictionary.enabled": "false",
        }
    )
    opts.update(hudi_metrics_options(settings, "ingest"))
    opts.update(settings.hoodie)
    return opts


def delete_options(settings: Settings) -> dict[str, str]:
    """Hudi options of the GDPR job's deletes: by key and partition, so the bucket index needs no lookup."""
    opts = log_table_options(settings)
    opts.update(
        {
            "hoodie.datasource.write.operation": "delete",
            # The resolver hands over distinct keys; Hudi's own de-duplication would be a second shuffle.
            "hoodie.combine.before.delete": "false",
            # Cleaning is the purge's explicit step (with its own retention), never a side effect.
            "hoodie.clean.automatic": "false",
        }
    )
    opts.update(hudi_metrics_options(settings, "gdpr"))
    opts.update(settings.hoodie)
    return opts


def quarantine_options(settings: Settings) -> dict[str, str]:
    """Hudi options of the quarantine table: copy-on-write, keyed by Kafka coordinates."""
    opts = _base_options(
        name=f"{settings.table.name}_quarantine",
        key=QUARANTINE_KEY,
        partition=QUARANTINE_PARTITION_FIELD,
    )
    opts.update(
        {
            # Rare, small writes that people read raw: copy-on-write keeps them in plain Parquet.
            "hoodie.datasource.write.table.type": "COPY_ON_WRITE",
            "hoodie.table.type": "COPY_ON_WRITE",
            "hoodie.datasource.write.operation": "upsert",
            # Raw bytes and record text are personal data: keep their min/max out of the metadata table.
            "hoodie.metadata.index.column.stats.column.list": "reason_code,kafka_topic,kafka_partition,kafka_offset",
            # The stream and the GDPR purge both write it, with the log table's concurrency control.
            **lock_options(settings),
            # Registered in the catalog beside the log table, for the same readers.
            **version_options(settings),
        }
    )
    # The user's hoodie.* settings target the log table; only pass on the ones that are not about
    # its layout (key, partitioning, table type or name, index, concurrency mode). Lock provider
    # settings do pass: both tables must lock through the same service.
    layout = (
        "hoodie.table.",
        # The quarantine's own column statistics keep raw bytes and record text out of the metadata table.
        "hoodie.metadata.index.column.stats.column.list",
        "hoodie.index.",
        "hoodie.bucket.",
        "hoodie.write.concurrency.mode",
        "hoodie.datasource.write.recordkey",
        "hoodie.datasource.write.partitionpath",
        "hoodie.datasource.write.table.type",
        "hoodie.datasource.write.operation",
    )
    opts.update({k: v for k, v in settings.hoodie.items() if not k.startswith(layout)})
    return opts


def file_group_of(name: str) -> str:
    """File group of a data file's name, within its partition.

    Base files are ``<id>_<token>_<instant>.parquet``, log files ``.<id>_<instant>.log.<n>_<token>``.
    With the bucket index the id starts with the 8-digit bucket number, which is what identifies the
    group: bulk_insert and upsert spell the rest of the id differently for the same bucket.
    """
    bare = name.lstrip(".")
    if len(bare) > 9 and bare[:8].isdigit() and bare[8] == "-":
        return bare[:8]
    return bare.split("_", 1)[0]


@dataclass(frozen=True)
class DataFile:
    """A base or log file of the table, as its name and folder describe it."""

    partition: str  # folder under the table, e.g. event_date=2026-11-24
    file_group: str
    name: str
    size: int


def data_files(spark: SparkSession, path: str) -> list[DataFile]:
    """Every base and log file of the table, from a listing (no data read, nothing under .hoodie)."""
    from loglake import storage

    root = path.rstrip("/") + "/"
    out = []
    # Partition folders only: .hoodie holds the timeline, markers and lock files, which come and go.
    files = [f for d in storage.list_dirs(spark, path) if d != ".hoodie" for f in storage.list_files(spark, root + d)]
    for f in files:
        rel = f.path.split(root, 1)[-1]
        if f.name.endswith(".crc"):
            continue
        if f.name.startswith(".hoodie_partition_metadata") or not (f.name.endswith(".parquet") or ".log." in f.name):
            continue
        out.append(DataFile(rel.rsplit("/", 1)[0], file_group_of(f.name), f.name, f.size))
    return out


def table_exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` holds a Hudi table, on any file system Hadoop reaches (local, s3://, s3a://)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    props = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/.hoodie/hoodie.properties")
    fs = props.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return bool(fs.exists(props))
