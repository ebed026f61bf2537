"""The plain Spark + Hudi job a user writes from Hudi's docs: the peer ``bench.peers`` measures against.

    python -m bench.plain_job --bootstrap HOST:PORT --topic T --table PATH [--layout hudi|loglake]

readStream kafka -> from_avro -> posexplode -> writeStream.format("hudi"), MERGE_ON_READ, one
available-now run. No quarantine, no exactly-once across a re-sent batch, no metrics, no lock: what
loglake adds is what this job lacks. ``--layout hudi`` keeps Hudi's defaults (SIMPLE index,
pre-combine on ts, Avro log blocks, gzip) in a session of Spark's defaults and Hudi's required
settings, as Hudi's quick start writes it. ``--layout loglake`` is the fastest plain job with
loglake's table (``LOG_TABLE_LAYOUT``): the session loglake builds (the bundle on the JVM's class
path, Hudi's object-size estimator kept from attaching the Serviceability Agent, warnings-only
logging), the write settings loglake's stream found by measurement (no serialized input cache, no
dictionary encoding), and no in-process compaction service, so the comparison isolates the
pipeline around the write. ``--session plain`` or ``--tuning none`` take either half back, to
measure what each is worth. Same jars, same Spark as loglake.
"""

from __future__ import annotations

import argparse
from importlib import resources

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro

from loglake import jars
from loglake.settings import LogSchemaSettings, Settings, load_settings
from loglake.shape import stats_columns
from loglake.spark import get_spark
from loglake.table import LOG_TABLE_LAYOUT, ingest_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--layout", choices=["hudi", "loglake"], default="hudi")
    parser.add_argument("--session", choices=["plain", "loglake"], default=None, help="default: as the layout")
    parser.add_argument("--tuning", choices=["none", "ingest"], default=None, help="default: as the layout")
    parser.add_argument("--driver-memory", default=None, help="spark.driver.memory (Spark's default if unset)")
    args = parser.parse_args()
    tuned = args.layout == "loglake"
    session = args.session or ("loglake" if tuned else "plain")
    tuning = args.tuning or ("ingest" if tuned else "none")

    conf = {"spark.ui.enabled": "false"}
    if args.driver_memory:
        conf["spark.driver.memory"] = args.driver_memory
    app = f"plain-hudi-{args.layout}"
    if session == "loglake":
        spark = get_spark(load_settings(assignments=[f"{k}={v}" for k, v in conf.items()]), app_name=app)
    else:
        conf.update(
            {
                "spark.jars": ",".join(str(p) for p in jars.resolve(jars.SPARK_JARS)),
                "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
                "spark.kryo.registrator": "org.apache.spark.HoodieSparkKryoRegistrar",
                "spark.sql.extensions": "org.apache.spark.sql.hudi.HoodieSparkSessionExtension",
            }
        )
        builder = SparkSession.builder.appName(app).master("local[*]")
        for key, value in conf.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
    schema = resources.files("loglake").joinpath("schemas/log_batch.avsc").read_text()

    batches = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.bootstrap)
        .option("subscribe", args.topic)
        .option("startingOffsets", "earliest")
        .load()
        .select(from_avro("value", schema).alias("b"))
    )
    rows = batches.select("b.*").select(
        "batch_id", "service", "host", "region", "sent_at", F.posexplode("records").alias("record_index", "r")
    )
    table = rows.select(
        F.concat_ws(":", "service", "batch_id", F.col("record_index").cast("string")).alias("record_key"),
        "r.*",
        "batch_id",
        "service",
        "host",
        "region",
        "sent_at",
        "record_index",
        F.date_format("r.ts", "yyyy-MM-dd").alias("event_date"),
    )
    options = {
        "hoodie.table.name": "logs",
        "hoodie.datasource.write.table.type": "MERGE_ON_READ",
        "hoodie.datasource.write.recordkey.field": "record_key",
        "hoodie.datasource.write.partitionpath.field": "event_date",
        "hoodie.datasource.write.precombine.field": "ts",
        "hoodie.datasource.write.hive_style_partitioning": "true",
    }
    if args.layout == "loglake":
        options.update(LOG_TABLE_LAYOUT)
        # loglake's own column statistics (LogBatch's list), which the layout leaves to the log shape.
        options["hoodie.metadata.index.column.stats.column.list"] = ",".join(stats_columns(LogSchemaSettings()))
        # Keys are unique by construction: commit-time ordering needs no ordering field to compare.
        del options["hoodie.datasource.write.precombine.field"]
        options["hoodie.record.merge.mode"] = "COMMIT_TIME_ORDERING"
    if tuning == "ingest":
        ingest = ingest_options(Settings())
        for key in ("hoodie.write.tagged.record.storage.level", "hoodie.parquet.dictionary.enabled"):
            options[key] = ingest[key]
        # One run to its end: the in-process async compaction service has nothing to do but start.
        options["hoodie.datasource.compaction.async.enable"] = "false"
    query = (
        table.writeStream.format("hudi")
        .options(**options)
        .option("checkpointLocation", f"{args.table}_checkpoint")
        .trigger(availableNow=True)
        .start(args.table)
    )
    query.awaitTermination()
    spark.stop()


if __name__ == "__main__":
    main()
