"""Registration of loglake's tables in a Hive Metastore (or AWS Glue), so that they are queried by name.

Hudi's own hive sync (``org.apache.hudi.hive.HiveSyncTool`` in ``hms`` mode) does the work: it
creates the database and the tables, adds the partitions the timeline wrote since the last sync,
drops the partitions a ``delete_partition`` commit removed, and follows schema changes. The
merge-on-read log table becomes ``<table>_ro`` (compacted Parquet only: cheap, minutes behind) and
``<table>_rt`` (merges the delta logs: current); the copy-on-write quarantine table becomes one table.

The writers do not sync inside their Hudi commits (``hoodie.datasource.meta.sync.enable`` stays
false). Hudi's in-commit sync throws after the commit has completed when the metastore is down: the
stream's micro-batch would fail and replay a batch that is already written, over and over, for a
catalog it does not need. Instead the caller runs :func:`sync` after its commit and decides what a
failure means: the stream counts it and retries after its next batch, a one-off job reports it.
Either way the commit stands, and the next sync catches up from the timeline (Hudi keeps the last
synced instant in the table's properties in the metastore).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from pyspark.sql import SparkSession

from loglake import jvm_errors, table
from loglake.errors import CatalogSyncError, ConfigError, TableError
from loglake.settings import Settings

log = logging.getLogger(__name__)

TableKind = Literal["log", "quarantine"]
TABLE_KINDS: tuple[TableKind, ...] = ("log", "quarantine")
RO_SUFFIX = "_ro"
RT_SUFFIX = "_rt"

# Hive client settings applied before the user's catalog.hive_conf. Hive's own socket timeout is
# 600 s: a metastore that accepts connections and never answers would hold a micro-batch for ten
# minutes. Three connection attempts a second apart ride out a metastore restart.
HIVE_CLIENT_DEFAULTS = {
    "hive.metastore.client.socket.timeout": "60s",
    "hive.metastore.connect.retries": "3",
    "hive.metastore.client.connect.retry.delay": "1s",
}

# What users may pass through as hoodie.* settings to the sync.
_SYNC_PREFIXES = ("hoodie.datasource.hive_sync.", "hoodie.datasource.meta.sync.", "hoodie.meta.sync.")


@dataclass(frozen=True)
class SyncResult:
    """One table's sync: where its data is, what it is called in the catalog, and what that took."""

    kind: TableKind
    table_path: str
    database: str
    tables: tuple[str, ...]
    full: bool
    seconds: float
    # Partitions of the (first) table in the catalog after the sync, as the metastore lists them
    # (None unless asked for: listing them costs the stream's sync another client and round trip).
    partitions: int | None = None


def base_name(settings: Settings, kind: TableKind) -> str:
    """The catalog name of a table before Hudi's ``_ro``/``_rt`` suffixes, in Hive's lower case."""
    cat = settings.catalog
    if kind == "log":
        name = cat.table or settings.table.name
    else:
        name = cat.quarantine_table or f"{cat.table or settings.table.name}_quarantine"
    return name.lower()


def table_names(settings: Settings, kind: TableKind) -> tuple[str, ...]:
    """The names a sync registers: ``<t>_ro`` and ``<t>_rt`` for the log table, ``<t>`` for the quarantine."""
    name = base_name(settings, kind)
    return (name + RO_SUFFIX, name + RT_SUFFIX) if kind == "log" else (name,)


def _path(settings: Settings, kind: TableKind) -> str:
    return settings.table.require_path() if kind == "log" else settings.table.effective_quarantine_path


def sync_properties(settings: Settings, kind: TableKind, *, full: bool = False) -> dict[str, str]:
    """The properties of Hudi's HiveSyncTool for one table; the user's hoodie.* sync settings win."""
    cat = settings.catalog
    partition = table.PARTITION_FIELD if kind == "log" else table.QUARANTINE_PARTITION_FIELD
    props = {
        "hoodie.datasource.meta.sync.base.path": _path(settings, kind),
        "hoodie.datasource.hive_sync.database": cat.database.lower(),
        "hoodie.datasource.hive_sync.table": base_name(settings, kind),
        "hoodie.datasource.hive_sync.mode": "hms",
        "hoodie.datasource.hive_sync.partition_fields": partition,
        # event_date=2026-11-27 -> partition value 2026-11-27 (hive-style folders).
        "hoodie.datasource.hive_sync.partition_extractor_class": "org.apache.hudi.hive.MultiPartKeysValueExtractor",
        "hoodie.datasource.hive_sync.base_file_format": "PARQUET",
        "hoodie.datasource.hive_sync.auto_create_database": "true",
        # External tables: dropping one in the catalog never deletes the data.
        "hoodie.datasource.hive_sync.create_managed_table": "false",
        # Spark reads the tables through Hudi's data source (merging logs for _rt), not Hive's SerDe.
        "hoodie.datasource.hive_sync.sync_as_datasource": "true",
        "hoodie.datasource.hive_sync.support_timestamp": "true",
        # Only <t>_ro and <t>_rt: a third name for the snapshot (<t>) would be one more table to keep
        # in step and to explain, for a query <t>_rt already answers.
        "hoodie.meta.sync.sync_snapshot_with_table_name": "false",
        # Incremental: partitions written since the last synced instant. Full: every partition on
        # storage against every partition in the catalog, adding and dropping (the repair).
        "hoodie.meta.sync.incremental": "false" if full else "true",
    }
    if cat.metastore_uris:
        props["hoodie.datasource.hive_sync.metastore.uris"] = cat.metastore_uris
    props.update({k: v for k, v in settings.hoodie.items() if k.startswith(_SYNC_PREFIXES)})
    return props


def hive_conf(settings: Settings) -> dict[str, str]:
    """Hive client settings for the sync: loglake's defaults, the metastore URI, the user's ``catalog.hive_conf``."""
    conf = dict(HIVE_CLIENT_DEFAULTS)
    if settings.catalog.metastore_uris:
        conf["hive.metastore.uris"] = settings.catalog.metastore_uris
    conf.update(settings.catalog.hive_conf)
    return conf


def sync(
    spark: SparkSession, settings: Settings, kind: TableKind, *, full: bool = False, count: bool = False
) -> SyncResult:
    """Register ``kind``'s table and the partitions it gained or lost since the last sync.

    Args:
        spark: The job's session (its Hadoop configuration reaches the table's storage).
        settings: ``catalog.*`` names the metastore, database and tables.
        kind: ``log`` or ``quarantine``.
        full: Compare every partition on storage with the catalog instead of the timeline since the
            last sync: repairs partitions added or dropped by hand, or by commits already archived.
        count: Also list the table's partitions in the catalog afterwards (``SyncResult.partitions``).

    Raises:
        ConfigError: The catalog is not configured (``catalog.enabled``/``catalog.metastore_uris``).
        TableError: There is no Hudi table at the path.
        CatalogSyncError: The metastore did not answer or refused the change; the message names the
            metastore setting and the cause. Nothing in the table changes: its commits stand.
    """
    cat = settings.catalog
    if not cat.active:
        raise ConfigError(
            "the catalog is off: set catalog.metastore_uris (thrift://host:9083), or catalog.enabled=true "
            "where the cluster's hive-site.xml names the metastore (Glue on EMR)"
        )
    path = _path(settings, kind)
    if not table.table_exists(spark, path):
        raise TableError(f"{path} is not a Hudi table (no .hoodie/hoodie.properties there); nothing to register")
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    props = jvm.java.util.Properties()
    for key, value in sync_properties(settings, kind, full=full).items():
        props.setProperty(key, value)
    conf = jvm.org.apache.hadoop.conf.Configuration(spark.sparkContext._jsc.hadoopConfiguration())
    for key, value in hive_conf(settings).items():
        conf.set(key, value)
    started = time.monotonic()
    tool: Any = None
    try:
        tool = jvm.org.apache.hudi.hive.HiveSyncTool(props, conf)
        tool.syncHoodieTable()
    except Exception as exc:
        raise CatalogSyncError(_failure(settings, kind, path, exc, jvm)) from None
    finally:
        if tool is not None:
            try:
                tool.close()
            except Exception as exc:  # closing a client whose server is gone must not hide the cause
                log.debug("closing the hive sync client: %s", exc)
    seconds = round(time.monotonic() - started, 3)
    names = table_names(settings, kind)
    listed = None
    if count:
        try:
            listed = len(partitions(spark, settings, names[0]))
        except CatalogSyncError as exc:
            raise CatalogSyncError(f"{exc} (after a sync that succeeded)") from None
    result = SyncResult(kind, path, cat.database.lower(), names, full, seconds, listed)
    log.info(
        "catalog: synced %s to %s.{%s} in %.2f s%s",
        path,
        result.database,
        ",".join(names),
        seconds,
        " (full)" if full else "",
    )
    return result


def _hive_client(spark: SparkSession, settings: Settings) -> tuple[Any, Any]:
    """Hive's own metastore client (what Hudi's sync uses too; on EMR, Glue's), and its Hive handle."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = jvm.org.apache.hadoop.hive.conf.HiveConf(
        spark.sparkContext._jsc.hadoopConfiguration(), jvm.org.apache.hadoop.hive.conf.HiveConf().getClass()
    )
    for key, value in hive_conf(settings).items():
        conf.set(key, value)
    hive = jvm.org.apache.hadoop.hive.ql.metadata.Hive
    return hive.get(conf).getMSC(), hive


def _ask(spark: SparkSession, settings: Settings, what: str, call: Any) -> Any:
    jvm = spark.sparkContext._jvm
    hive = None
    try:
        client, hive = _hive_client(spark, settings)
        return call(client)
    except Exception as exc:
        cause = jvm_errors.deepest_error(jvm_errors.chain_text(exc, jvm))
        raise CatalogSyncError(f"could not list {what} in the metastore ({_where(settings)}): {cause}") from None
    finally:
        if hive is not None:
            hive.closeCurrent()


def tables(spark: SparkSession, settings: Settings) -> list[str]:
    """The tables of ``catalog.database`` as the metastore lists them."""
    database = settings.catalog.database.lower()
    return sorted(
        str(t) for t in _ask(spark, settings, f"the tables of {database}", lambda c: c.getAllTables(database))
    )


def partitions(spark: SparkSession, settings: Settings, name: str) -> list[str]:
    """The partitions of table ``name`` in ``catalog.database`` (``event_date=2026-11-27``), sorted."""
    database = settings.catalog.database.lower()
    listed = _ask(
        spark, settings, f"the partitions of {database}.{name}", lambda c: c.listPartitionNames(database, name, -1)
    )
    return sorted(str(p) for p in listed)


def sync_all(spark: SparkSession, settings: Settings, *, full: bool = False) -> list[SyncResult]:
    """Sync the log table and, where it exists, the quarantine table (a stream that never quarantined
    has none), and count what the catalog lists after it."""
    results = [sync(spark, settings, "log", full=full, count=True)]
    with contextlib.suppress(TableError):
        results.append(sync(spark, settings, "quarantine", full=full, count=True))
    return results


def _where(settings: Settings) -> str:
    if settings.catalog.metastore_uris:
        return f"catalog.metastore_uris={settings.catalog.metastore_uris}"
    return "the metastore of the cluster's hive-site.xml, as catalog.metastore_uris is unset"


def _failure(settings: Settings, kind: TableKind, path: str, exc: BaseException, jvm: Any) -> str:
    cause = jvm_errors.deepest_error(jvm_errors.chain_text(exc, jvm))
    return (
        f"catalog sync of the {kind} table {path} to {settings.catalog.database.lower()}.{base_name(settings, kind)} "
        f"failed at {_where(settings)}: {cause}; the table's commits stand, and the next sync (or `loglake catalog "
        f"sync`) catches up"
    )
