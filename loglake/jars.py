"""JVM artifacts from Maven Central, resolved once with Maven and cached.

Spark's own ``spark.jars.packages`` resolves through Ivy at every session start (several seconds,
and it wants the network to re-check metadata). We resolve the same coordinates once with Maven
into a versioned folder under the loglake home and hand Spark plain ``spark.jars``; a later run
needs no network. On EMR the same coordinates can go to ``spark.jars.packages`` instead.

Whole applications published as archives (the Apicurio schema registry) are fetched the same way
and unpacked into a versioned folder of their own (:func:`resolve_archive`).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loglake.errors import SetupError

SPARK_VERSION = "3.5.7"
SCALA_BINARY = "2.12"
# Hudi 1.0.2 is what Amazon EMR 7.11+ ships with Spark 3.5: tables stay readable and writable by
# the Hudi that EMR users already run. 1.0.0 had a MOR writer regression (HUDI-8819).
HUDI_VERSION = "1.2.0"
KAFKA_VERSION = "3.9.1"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
# The local schema registry (devservers.registry_server). Apicurio publishes it as a Quarkus application
# archive (quarkus-run.jar, lib/, app/, quarkus/ at the top, 158 MB); 3.x needs Java 21.
APICURIO_VERSION = "3.3.3"
APICURIO_REGISTRY = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
# The local Hive Metastore (devservers.metastore_server): the standalone metastore, a thrift server
# with its schema tool (bin/, conf/, lib/ and scripts/ under apache-hive-metastore-3.1.3-bin/, 27 MB).
# It runs on the Hadoop client jars of PySpark's own jars/ folder, which the archive lacks.
HIVE_METASTORE_VERSION = "3.1.3"
HIVE_METASTORE = f"org.apache.hive:hive-standalone-metastore:{HIVE_METASTORE_VERSION}:tar.gz:bin"
# Trino, the tests' stand-in for Amazon Athena (whose engine derives from Trino): its hudi connector
# reads the tables through a Hive metastore as Athena reads them through Glue. The server archive
# (bin/, lib/, plugin/ under trino-server-476/) is 820 MB, fetched only by the tests that use it.
TRINO_VERSION = "476"
TRINO_SERVER = f"io.trino:trino-server:{TRINO_VERSION}:tar.gz"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JarSet:
    """A named list of Maven coordinates (group:artifact:version) resolved with their runtime deps."""

    name: str
    coordinates: tuple[str, ...]
    # Jars whose artifact is already on PySpark's classpath are dropped: two copies of Hadoop or
    # Scala on one classpath fail in ways that are slow to diagnose.
    drop_pyspark_duplicates: bool = False

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.coordinates).encode()).hexdigest()[:12]


SPARK_JARS = JarSet(
    name="spark",
    coordinates=(
        f"org.apache.hudi:hudi-spark3.5-bundle_{SCALA_BINARY}:{HUDI_VERSION}",
        f"org.apache.spark:spark-sql-kafka-0-10_{SCALA_BINARY}:{SPARK_VERSION}",
        f"org.apache.spark:spark-avro_{SCALA_BINARY}:{SPARK_VERSION}",
    ),
    drop_pyspark_duplicates=True,
)

# s3a:// (S3 and S3-compatible stores outside EMR): hadoop-aws of PySpark's Hadoop (3.3.4) and the AWS
# SDK bundle it names. Resolved only when a configured path is s3a://, since the bundle is 280 MB.
HADOOP_VERSION = "3.3.4"
S3A_JARS = JarSet(
    name="s3a",
    coordinates=(f"org.apache.hadoop:hadoop-aws:{HADOOP_VERSION}",),
    drop_pyspark_duplicates=True,
)

KAFKA_JARS = JarSet(
    name="kafka",
    coordinates=(
        f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
        # The admin commands (TopicCommand behind kafka-topics.sh), which the broker jar no longer holds:
        # the broker image's health check and an operator's shell use them.
        f"org.apache.kafka:kafka-tools:{KAFKA_VERSION}",
        # The Kafka distribution ships this binding; the bare artifact has none and logs nothing.
        "org.slf4j:slf4j-reload4j:1.7.36",
    ),
)


def loglake_home() -> Path:
    """Folder for caches and local runtime state (``$LOGLAKE_HOME``, default ``~/.cache/loglake``)."""
    return Path(os.environ.get("LOGLAKE_HOME", Path.home() / ".cache" / "loglake")).expanduser()


def spark_packages() -> str:
    """The same Spark jars as a ``spark.jars.packages`` value, for clusters that resolve with Ivy."""
    return ",".join(SPARK_JARS.coordinates)


def _pom(jar_set: JarSet) -> str:
    deps = []
    for coord in jar_set.coordinates:
        group, artifact, version = coord.split(":")
        deps.append(
            f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version></dependency>"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        f"<groupId>loglake</groupId><artifactId>{jar_set.name}-jars</artifactId><version>0</version>"
        f"<packaging>pom</packaging><dependencies>{''.join(deps)}</dependencies></project>"
    )


def _artifact_name(jar: str) -> str:
    """``hadoop-client-api-3.3.4.jar`` -> ``hadoop-client-api``."""
    stem = jar.removesuffix(".jar")
    parts = stem.split("-")
    while parts and parts[-1][:1].isdigit():
        parts.pop()
    return "-".join(parts)


def _pyspark_artifacts() -> set[str]:
    import pyspark

    jars_dir = Path(pyspark.__file__).parent / "jars"
    return {_artifact_name(p.name) for p in jars_dir.glob("*.jar")}


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SetupError("Maven (mvn) is not on PATH; it is needed once to fetch the jars: run `make setup`")
    return mvn


def resolve(jar_set: JarSet) -> list[Path]:
    """Return the jars of ``jar_set``, resolving them with Maven the first time.

    Raises:
        SetupError: Maven is missing or could not resolve the coordinates.
    """
    target = loglake_home() / "jars" / f"{jar_set.name}-{jar_set.digest}"
    marker = target / ".complete"
    if marker.exists():
        return sorted(target.glob("*.jar"))
    mvn = _mvn()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(_pom(jar_set))
        out = work / "out"
        proc = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(work / "pom.xml"),
                f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={out}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
            raise SetupError(f"Maven could not resolve {', '.join(jar_set.coordinates)}:\n{tail}")
        if jar_set.drop_pyspark_duplicates:
            have = _pyspark_artifacts()
            for jar in out.glob("*.jar"):
                if _artifact_name(jar.name) in have:
                    jar.unlink()
        (out / ".complete").write_text("\n".join(jar_set.coordinates) + "\n")
        if marker.exists():
            return sorted(target.glob("*.jar"))  # another process resolved it meanwhile and may be using it
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    return sorted(target.glob("*.jar"))


def _maven_failure(output: str) -> str:
    """The lines of Maven's output that say what failed (its last lines are advice about -e and -X)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip() for line in output.strip().splitlines()]
    errors: list[str] = []
    for line in lines:
        if line == "[ERROR]" and errors:
            break
        if line.startswith("[ERROR] "):
            errors.append(line)
    return "\n".join(errors or lines[-5:])


def resolve_archive(coordinate: str, name: str) -> Path:
    """Return ``$LOGLAKE_HOME/<name>``, the unpacked tar.gz at ``coordinate``, fetching it the first time.

    The archive is fetched with Maven (so ``~/.m2`` and any mirror settings apply) and unpacked in a
    temporary folder that is renamed into place with its ``.complete`` marker: an interrupted
    download or unpack never looks complete, and the next call starts over. Concurrent callers
    (processes too) wait for one fetch under a lock file beside the folder.

    Args:
        coordinate: ``group:artifact:version:tar.gz[:classifier]``.
        name: Folder name under the loglake home; put the version in it.

    Raises:
        SetupError: Maven is missing, could not fetch the artifact, or the archive does not unpack.
    """
    target = loglake_home() / name
    if (target / ".complete").exists():
        return target
    mvn = _mvn()
    target.parent.mkdir(parents=True, exist_ok=True)
    # One fetch at a time per archive: a second caller (another command, another test worker, a
    # prefetch) waits for the first instead of downloading the same hundreds of MB beside it.
    with (target.parent / f".{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        return _fetch_archive(mvn, coordinate, name, target)


def _fetch_archive(mvn: str, coordinate: str, name: str, target: Path) -> Path:
    log.info("fetching %s with Maven into %s (once; later starts need no network)", coordinate, target)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        work = Path(tmp)
        download = work / "download"
        proc = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                f"{MAVEN_DEPENDENCY_PLUGIN}:copy",
                f"-Dartifact={coordinate}",
                f"-DoutputDirectory={download}",
            ],
            # No pom.xml here: Maven must not pick up a project from the caller's folder.
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SetupError(f"Maven could not fetch {coordinate}:\n{_maven_failure(proc.stdout + proc.stderr)}")
        archives = sorted(download.glob("*.tar.gz"))
        if len(archives) != 1:
            raise SetupError(f"Maven fetched {coordinate} but left no single .tar.gz in {download}")
        out = work / "out"
        try:
            with tarfile.open(archives[0]) as tar:
                # The "data" filter refuses absolute paths, links out of the folder and device files.
                tar.extractall(out, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise SetupError(f"could not unpack {archives[0].name} ({coordinate}): {exc}") from exc
        (out / ".complete").write_text(coordinate + "\n")
        if target.exists():  # an interrupted unpack of an earlier run
            shutil.rmtree(target)
        out.rename(target)
    return target
