"""The plain Spark + Hudi job a user writes from Hudi's docs: the peer ``bench.peers`` measures against.

    python -m bench.plain_job --bootstrap HOST:PORT --topic T --table PATH [--layout hudi|loglake]

readStream kafka -> from_avro -> posexplode -> writeStream.format("hudi"), MERGE_ON_READ, one
available-now run. No quarantine, no exactly-once across a re-sent batch, no metrics, no lock: what
loglake adds is what this job lacks. ``--layout hudi`` keeps Hudi's defaults (SIMPLE index,
pre-combine on ts, Avro log blocks, gzip); ``--layout loglake`` adds loglake's ``LOG_TABLE_LAYOUT``,
so the comparison isolates the pipeline around the write. Same jars, same Spark as loglake.
"""

from __future__ import annotations

import argparse
from importlib import resources

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro

from loglake import jars
from loglake.settings import LogSchemaSettings
from loglake.shape import stats_columns
from loglake.table import LOG_TABLE_LAYOUT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--layout", choices=["hudi", "loglake"], default="hudi")
    parser.add_argument("--driver-memory", default=None, help="spark.driver.memory (Spark's default if unset)")
    args = parser.parse_args()

    paths = jars.resolve(jars.SPARK_JARS)
    builder = (
        SparkSession.builder.appName(f"plain-hudi-{args.layout}")
        .master("local[*]")
        .config("spark.jars", ",".join(str(p) for p in paths))
        .config("spark.serializer", "org.apache.spark.serializer.KryoSerializer")
        .config("spark.kryo.registrator", "org.apache.spark.HoodieSparkKryoRegistrar")
        .config("spark.sql.extensions", "org.apache.spark.sql.hudi.HoodieSparkSessionExtension")
        .config("spark.ui.enabled", "false")
    )
    if args.driver_memory:
        builder = builder.config("spark.driver.memory", args.driver_memory)
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
