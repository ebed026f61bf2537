"""File-system access through Spark's Hadoop client, so local paths, s3:// and s3a:// behave alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class FileInfo:
    path: str  # fully qualified (file:/..., s3://...)
    size: int

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def exists(spark: SparkSession, path: str) -> bool:
    fs, hpath = _fs(spark, path)
    return bool(fs.exists(hpath))


def list_files(spark: SparkSession, root: str) -> list[FileInfo]:
    """Every file under ``root``, hidden ones included (Hudi log files start with a dot)."""
    fs, hpath = _fs(spark, root)
    if not fs.exists(hpath):
        return []
    found: list[FileInfo] = []
    it = fs.listFiles(hpath, True)
    while it.hasNext():
        status = it.next()
        found.append(FileInfo(str(status.getPath().toString()), int(status.getLen())))
    return found


def list_dirs(spark: SparkSession, root: str) -> list[str]:
    """Names of the folders directly under ``root``."""
    fs, hpath = _fs(spark, root)
    if not fs.exists(hpath):
        return []
    return [str(s.getPath().getName()) for s in fs.listStatus(hpath) if s.isDirectory()]


def read_text(spark: SparkSession, path: str) -> str | None:
    fs, hpath = _fs(spark, path)
    if not fs.exists(hpath):
        return None
    stream = fs.open(hpath)
    try:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def create_text(spark: SparkSession, path: str, text: str) -> bool:
    """Write ``text`` to a new file; False (and nothing written) when the file already exists."""
    fs, hpath = _fs(spark, path)
    if fs.exists(hpath):
        return False
    out = fs.create(hpath, False)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()
    return True
