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


# Writers create and delete files while we list (the lock file beside the timeline, markers, files a
# clean removes): a recursive listing that meets a file which vanished since its folder was read fails.
_VANISHED = ("No such file", "FileNotFoundException", "cannot access")
LIST_ATTEMPTS = 5


def list_files(spark: SparkSession, root: str) -> list[FileInfo]:
    """Every file under ``root``, hidden ones included (Hudi log files start with a dot).

    A listing that tripped over a file deleted under it by a concurrent writer is started again.
    """
    from py4j.protocol import Py4JJavaError

    fs, hpath = _fs(spark, root)
    for attempt in range(1, LIST_ATTEMPTS + 1):
        if not fs.exists(hpath):
            return []
        found: list[FileInfo] = []
        try:
            it = fs.listFiles(hpath, True)
            while it.hasNext():
                status = it.next()
                found.append(FileInfo(str(status.getPath().toString()), int(status.getLen())))
            return found
        except Py4JJavaError as exc:
            if attempt == LIST_ATTEMPTS or not any(m in str(exc.java_exception) for m in _VANISHED):
                raise
    raise AssertionError("unreachable")


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
