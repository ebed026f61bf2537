"""Pure DataFrame transforms: erasure requests -> the record keys, partitions and file groups they hit.

Resolution reads only the columns it needs (record key, partition, file name and the identifier
columns); Parquet hands Spark just those column chunks, so a subject lookup costs a fraction of a
full read (README, "Resolving subjects" for the measured comparison). Each identifier kind is an
equality join against a broadcast of the (small) request list: no Python per row, no cross join.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from gdpr.requests import IDENTIFIER_KINDS, ErasureRequest
from loglake.table import PARTITION_FIELD, RECORD_KEY

FILE_NAME = "_hoodie_file_name"
# Columns a lookup reads: the key and partition the delete needs, the file name for reporting, and
# the identifier columns.
LOOKUP_COLUMNS = (RECORD_KEY, PARTITION_FIELD, FILE_NAME, *IDENTIFIER_KINDS[:3])

SUBJECT_SCHEMA = T.StructType(
    [
        T.StructField("request_id", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("value", T.StringType(), False),
    ]
)


def subjects_frame(spark: SparkSession, requests: Sequence[ErasureRequest]) -> DataFrame:
    """The requests as a small DataFrame (request_id, kind, value)."""
    return spark.createDataFrame([(r.request_id, r.kind, r.value) for r in requests], SUBJECT_SCHEMA)


def file_group(file_name: F.Column) -> F.Column:
    """File group of a data file's name, as :func:`file_group_of` (in the JVM)."""
    bucket = F.regexp_extract(file_name, r"^\.?(\d{8})-", 1)
    return F.when(bucket != "", bucket).otherwise(F.regexp_extract(file_name, r"^\.?(.+?)_", 1))


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


def match_records(table: DataFrame, subjects: DataFrame) -> DataFrame:
    """One row per (request, record) the request identifies: request_id, kind, record_key, event_date, file_group.

    ``table`` is the log table's snapshot (only :data:`LOOKUP_COLUMNS` are read).
    """
    pruned = table.select(*LOOKUP_COLUMNS)
    matches = []
    for kind in IDENTIFIER_KINDS:
        wanted = F.broadcast(subjects.where(F.col("kind") == kind).select("request_id", "kind", "value"))
        matches.append(
            pruned.join(wanted, pruned[kind] == wanted["value"]).select(
                "request_id",
                "kind",
                RECORD_KEY,
                PARTITION_FIELD,
                file_group(F.col(FILE_NAME)).alias("file_group"),
            )
        )
    result = matches[0]
    for more in matches[1:]:
        result = result.unionByName(more)
    return result


def delete_keys(matches: DataFrame) -> DataFrame:
    """The distinct (record_key, event_date) pairs to delete: what Hudi's delete needs with the bucket index."""
    return matches.select(RECORD_KEY, PARTITION_FIELD).distinct()
