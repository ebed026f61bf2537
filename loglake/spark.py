"""One way to build the SparkSession for every loglake job, locally and on a cluster."""

from __future__ import annotations

import logging
import os
import sys
from importlib import resources

from pyspark.sql import SparkSession

from loglake import config_keys, jars
from loglake.settings import Settings

log = logging.getLogger(__name__)

# Applied before the user's spark.* settings, which win.
DEFAULT_CONF = {
    # Hudi requires Kryo and its registrar; the extension and catalog enable Hudi SQL (CALL procedures).
    "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    "spark.kryo.registrator": "org.apache.spark.HoodieSparkKryoRegistrar",
    "spark.sql.extensions": "org.apache.spark.sql.hudi.HoodieSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.hudi.catalog.HoodieCatalog",
    # Timestamps are shown and parsed in UTC whatever the cluster's zone (partitioning never depends on it).
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
    # Kafka offsets are tracked by the checkpoint, so a dead driver's consumer group is harmless.
    "spark.sql.streaming.kafka.useDeprecatedOffsetFetching": "false",
}


def _under_spark_submit() -> bool:
    # spark-submit starts the Python driver with a gateway already listening.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session_conf(settings: Settings) -> dict[str, str]:
    """The full Spark configuration loglake would apply (defaults, jars, then the user's spark.*)."""
    conf = dict(DEFAULT_CONF)
    log4j = resources.files("loglake").joinpath("log4j2.properties")
    # Hudi's object-size estimator (shaded JOL) would try to attach the Serviceability Agent (slow, and
    # refused in containers); it sizes objects fine without it.
    jol = "-Djdk.attach.allowAttachSelf=true -Djol.skipHotspotSAAttach=true"
    conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={log4j} {jol}"
    conf["spark.executor.extraJavaOptions"] = jol
    bundle = None
    if settings.spark.jars == "maven":
        paths = jars.resolve(jars.SPARK_JARS)
        if any(p.startswith("s3a://") for p in settings.storage_paths):
            paths += jars.resolve(jars.S3A_JARS)
        conf["spark.jars"] = ",".join(str(p) for p in paths)
        # Hudi reads Avro-specific records (the delete records of metadata-table log blocks) on
        # ForkJoinPool threads, whose class loader does not see jars added through spark.jars: Avro
        # then falls back to generic records and the read fails with a ClassCastException (seen after
        # a clean, on every data-skipping lookup). The bundle on the JVM's own class path avoids it.
        bundle = next(str(p) for p in paths if p.name.startswith("hudi-spark"))
    elif settings.spark.jars == "packages":
        conf["spark.jars.packages"] = jars.spark_packages()
    if not _under_spark_submit():
        conf["spark.master"] = "local[*]"
    conf.update(settings.spark.conf)
    if bundle:
        # Ahead of whatever class path the user gave, which stays.
        for key in ("spark.driver.extraClassPath", "spark.executor.extraClassPath"):
            conf[key] = f"{bundle}{os.pathsep}{conf[key]}" if key in conf else bundle
    return conf


def get_spark(settings: Settings, app_name: str) -> SparkSession:
    """Return the active session, or build one named ``app_name`` from ``settings``.

    A session that already exists (tests, notebooks, spark-submit) is reused: static options such
    as jars cannot change on a running JVM, and runtime options are applied to it.
    """
    conf = session_conf(settings)
    for warning in config_keys.spark_warnings(settings.spark.conf):
        log.warning(warning)
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in settings.spark.conf.items():
            try:
                active.conf.set(key, value)
            except Exception:
                log.debug("spark option %s cannot change on a running session", key)
        return active
    if not _under_spark_submit():
        # Python workers (the GDPR verifier's file scan) need this venv's packages, not whatever
        # `python3` is first on PATH; on a cluster the launcher sets PYSPARK_PYTHON.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("LOGLAKE_SPARK_LOG_LEVEL", "WARN"))
    # Our stdout carries the JSON reports; the JVM's own prints (Hudi's shaded JOL warns there even
    # when told not to attach) belong with its logs on stderr.
    jvm = spark.sparkContext._jvm
    if jvm is not None:
        jvm.java.lang.System.setOut(jvm.java.lang.System.err)
    return spark
