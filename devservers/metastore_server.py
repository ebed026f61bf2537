"""A local Hive Metastore (thrift), for catalogue clients such as Spark, Hudi's Hive sync and Trino.

The server is Apache Hive's standalone metastore 3.1.3 (fetched once from Maven Central by
:func:`loglake.jars.resolve_archive`, 27 MB), run as a detached ``java`` process so it outlives the
command that started it (``loglake metastore start``), like the schema registry of
:mod:`devservers.registry_server`. Clients connect to ``thrift://127.0.0.1:<port>`` (Spark:
``spark.hadoop.hive.metastore.uris``). Everything it owns lives in one data folder::

    metastore-site.xml  metastore-log4j2.properties  metastore.log  metastore.pid  metastore.lock
    schema-init.log  schema.initialised  derby.log  db/ (Derby database)  warehouse/

The catalogue is an embedded Derby database under ``db/``, created by Hive's schema tool on the
folder's first start (``schema.initialised`` marks it done; an interrupted creation is redone from
scratch), so databases and tables survive a stop and start. Databases created without a location
go under ``warehouse/``. A data folder has at most one server; :func:`start` on a folder whose
server is up returns its URI, and :func:`stop` ends it.

The server listens on every interface, not only on 127.0.0.1: Hive 3.1 has no setting for the
address it binds. It has no authentication either, so do not run it where its port is reachable
from a network you do not trust. Its port is checked free on every interface before it starts.

The archive brings no Hadoop. The server runs on the Hadoop 3.3.4 client jars that PySpark ships in
its ``jars/`` folder, with the few libraries Hive expected from Hadoop's classpath (see
:data:`PYSPARK_JARS`), on Java 17 (Java 23 and newer fail; see :func:`find_java`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any, BinaryIO
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from devservers import local_process as processes
from devservers.java import LOCAL_SERVER_JVM_OPTS
from devservers.server import LOG_TAIL_LINES, Launch, LocalServer
from loglake import jars
from loglake.errors import MetastoreError, SetupError

log = logging.getLogger(__name__)

HOST = processes.HOST
CONFIG_FILE = "metastore-site.xml"  # found first on the classpath, so the archive's conf/ is not read
LOG4J_FILE = "metastore-log4j2.properties"
SERVER_LOG = "metastore.log"
SCHEMA_LOG = "schema-init.log"
SCHEMA_MARKER = "schema.initialised"
PID_FILE = "metastore.pid"
LOCK_FILE = "metastore.lock"
DB_DIR = "db"
WAREHOUSE_DIR = "warehouse"
ARCHIVE_HOME = f"apache-hive-metastore-{jars.HIVE_METASTORE_VERSION}-bin"  # the archive's one top folder
MAIN_CLASS = "org.apache.hadoop.hive.metastore.HiveMetaStore"
SCHEMA_TOOL = "org.apache.hadoop.hive.metastore.tools.MetastoreSchemaTool"
# 190-220 MB resident with this heap, as measured (after serving a Spark session); the archive's own
# scripts use the same 256 MB. Without it the JVM would take a quarter of the RAM.
HEAP_OPTS = ("-Xmx256m",)
# Hadoop 3.3's login (UserGroupInformation) calls Subject.getSubject, which Java 23 and newer refuse:
# on Java 25 the server starts, then fails every call. Java 17 is what loglake runs on.
MAX_JAVA = 22
# What the server's main thread logs when it gives up (a port already taken, a handler that could
# not start). The JVM does not exit then: its other threads keep it alive, serving nothing.
STARTUP_FAILED = "Metastore Thrift Server threw an exception"
BIND_FAILED = "Could not create ServerSocket"

# The archive has no Hadoop: these come from PySpark's jars/ folder (found by name, version aside).
# The shaded Hadoop client, and the unshaded libraries that Hive took from Hadoop's classpath and
# calls itself (option parsing, ObjectStore, the JSON of notification events).
PYSPARK_JARS = (
    "hadoop-client-api",
    "hadoop-client-runtime",
    "commons-cli",
    "commons-codec",
    "commons-collections",
    "commons-io",
    "commons-logging",
    "jackson-core-asl",
    "jackson-mapper-asl",
    # Logging: slf4j 2 with its log4j 2.20 binding. The archive's log4j 2.17 jars (left out) bind
    # slf4j 1, which slf4j 2 ignores: Hive would log nothing at all.
    "slf4j-api",
    "log4j-slf4j2-impl",
    "log4j-api",
    "log4j-core",
    "log4j-1.2-api",
)
ARCHIVE_JARS_LEFT_OUT = "log4j-"

# The default also runs replication's DumpDirCleanerTask, a class of hive-exec that the standalone
# archive lacks: the server would log a fatal error and serve nothing.
TASK_THREADS = (
    "org.apache.hadoop.hive.metastore.events.EventCleanerTask",
    "org.apache.hadoop.hive.metastore.RuntimeStatsCleanerTask",
    "org.apache.hadoop.hive.metastore.MaterializationsRebuildLockCleanerTask",
)

# Root at INFO keeps startup and failures; DataNucleus warns about its own metadata on every start,
# and the audit logger writes a line per call.
_LOG4J = """\
status = WARN
name = loglake-metastore
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_OUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{ISO8601} %5p [%t] %c{2}: %m%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = console
logger.datanucleus.name = DataNucleus
logger.datanucleus.level = ERROR
logger.datastore.name = Datastore
logger.datastore.level = ERROR
logger.audit.name = org.apache.hadoop.hive.metastore.HiveMetaStore.audit
logger.audit.level = WARN
"""


def list_databases(uri: str, *, timeout: float = 10) -> list[str]:
    """The names of the databases the metastore at ``uri`` knows (its ``get_all_databases`` call).

    Args:
        uri: ``thrift://host:port``, as :func:`start` returned.
        timeout: Seconds to wait for the connection and for the answer.

    Raises:
        MetastoreError: ``uri`` is not a thrift URI, nothing answers there, or the call failed.
    """
    return _names(uri, "get_all_databases", (), timeout)


def list_tables(uri: str, database: str, *, timeout: float = 10) -> list[str]:
    """The names of the tables in ``database`` at the metastore ``uri`` (its ``get_all_tables`` call).

    Raises:
        MetastoreError: ``uri`` is not a thrift URI, nothing answers there, or the call failed (an
            unknown database gives an empty list, as Hive answers).
    """
    return _names(uri, "get_all_tables", (database,), timeout)


def _names(uri: str, method: str, args: tuple[str, ...], timeout: float) -> list[str]:
    host, port = _host_port(uri)
    try:
        result = _call(host, port, method, args, timeout)
    except (OSError, EOFError, ValueError) as exc:
        raise MetastoreError(
            f"no Hive metastore answers at {uri} ({exc}); start one with `loglake metastore start`"
        ) from exc
    if 0 not in result:
        raise MetastoreError(f"the Hive metastore at {uri} failed {method}{args}: {_meta_exception(result)}")
    return [name.decode() for name in result[0]]


# ---------------------------------------------------------------- Java


def find_java() -> str:
    """The ``java`` to run the metastore with: ``$JAVA_HOME/bin/java`` if set, else ``java`` on PATH.

    Raises:
        SetupError: None found, it does not run, or it is newer than Java 22.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = str(Path(java_home) / "bin" / "java")
        where = f"JAVA_HOME={java_home}"
    else:
        found = shutil.which("java")
        if found is None:
            raise SetupError("java is not on PATH and JAVA_HOME is not set; install Java 17 (`make system`)")
        java, where = found, f"java on PATH ({found})"
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"{where} does not run ({exc}); point JAVA_HOME at a Java 17") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if proc.returncode != 0 or match is None:
        raise SetupError(f"{where} does not run as java; point JAVA_HOME at a Java 17")
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        major = int(match.group(2))  # "1.8.0_392"
    if major > MAX_JAVA:
        raise SetupError(
            f"{where} is Java {major}; the Hive metastore runs on Java 8 to {MAX_JAVA} (Hadoop's login fails "
            f"on newer ones): point JAVA_HOME at a Java 17"
        )
    return java


def _java_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The schema tool finds its SQL scripts under $METASTORE_HOME/scripts. A developer's own Hive
    # configuration folders must not add settings to ours.
    env["METASTORE_HOME"] = str(home)
    for key in ("METASTORE_CONF_DIR", "HIVE_CONF_DIR", "HIVE_HOME"):
        env.pop(key, None)
    return env


# ---------------------------------------------------------------- jars


def _metastore_home() -> Path:
    root = jars.resolve_archive(jars.HIVE_METASTORE, f"hive-metastore-{jars.HIVE_METASTORE_VERSION}")
    home = root / ARCHIVE_HOME
    if not (home / "lib" / f"hive-standalone-metastore-{jars.HIVE_METASTORE_VERSION}.jar").is_file():
        raise SetupError(f"{root} has no {ARCHIVE_HOME}/lib with the metastore jar; delete it and start again")
    return home


def _pyspark_jars_dir() -> Path:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise SetupError("pyspark is not installed; the Hive metastore runs on its Hadoop jars (`make setup`)")
    return Path(spec.origin).parent / "jars"


def _classpath(data: Path, home: Path) -> str:
    entries = [data]  # metastore-site.xml
    entries += [p for p in sorted((home / "lib").glob("*.jar")) if not p.name.startswith(ARCHIVE_JARS_LEFT_OUT)]
    pyspark_jars = _pyspark_jars_dir()
    for artifact in PYSPARK_JARS:
        found = sorted(pyspark_jars.glob(f"{artifact}-[0-9]*.jar"))
        if len(found) != 1:
            raise SetupError(
                f"expected one {artifact} jar in {pyspark_jars}, found {len(found)}; reinstall pyspark (`make setup`)"
            )
        entries.append(found[0])
    return os.pathsep.join(str(entry) for entry in entries)


# ---------------------------------------------------------------- configuration


def _prepare(data: Path, port: int) -> Launch:
    """Write the folder's configuration for ``port``, create its schema once, and say how to run the server."""
    java = find_java()
    home = _metastore_home()
    classpath = _classpath(data, home)
    _write_config(data, port)
    _init_schema(data, java, classpath, home)
    argv = [
        java,
        *HEAP_OPTS,
        *LOCAL_SERVER_JVM_OPTS,
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configurationFile={data / LOG4J_FILE}",
        f"-Dderby.stream.error.file={data / 'derby.log'}",
        "-cp",
        classpath,
        MAIN_CLASS,
    ]
    return Launch(argv, env=_java_env(home), java=java)


def _write_config(data: Path, port: int) -> None:
    props = {
        "metastore.thrift.port": str(port),
        "javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={data / DB_DIR};create=true",
        "javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.EmbeddedDriver",
        "metastore.warehouse.dir": (data / WAREHOUSE_DIR).as_uri(),
        # The default proxy (partition pruning by Hive expressions) is a class of hive-exec, which
        # the standalone archive lacks.
        "metastore.expression.proxy": "org.apache.hadoop.hive.metastore.DefaultPartitionExpressionProxy",
        "metastore.task.threads.always": ",".join(TASK_THREADS),
        # The schema tool creates the tables; the server only checks their version.
        "metastore.schema.verification": "true",
        # Unset, DataNucleus warns on every start that it sets this value itself.
        "datanucleus.autoStartMechanismMode": "ignored",
        # A thread per connection; the default keeps 200 of them once that many clients came by.
        "metastore.server.min.threads": "4",
    }
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- Written by devservers.metastore_server on every start; edits are overwritten. -->",
        "<configuration>",
    ]
    lines += [
        f"  <property><name>{key}</name><value>{escape(value)}</value></property>" for key, value in props.items()
    ]
    lines.append("</configuration>")
    (data / CONFIG_FILE).write_text("\n".join(lines) + "\n")
    (data / LOG4J_FILE).write_text(_LOG4J)


def _config_port(data: Path) -> int | None:
    """The thrift port in the folder's ``metastore-site.xml``, or None if it has none."""
    with contextlib.suppress(OSError, ElementTree.ParseError, ValueError):
        root = ElementTree.parse(data / CONFIG_FILE).getroot()  # noqa: S314 - our own file
        for prop in root.iter("property"):
            if prop.findtext("name") == "metastore.thrift.port":
                return int(prop.findtext("value") or "")
    return None


def _init_schema(data: Path, java: str, classpath: str, home: Path) -> None:
    """Create the metastore's tables in the folder's Derby database, once per folder."""
    marker = data / SCHEMA_MARKER
    if marker.exists():
        return
    # No marker: never created, or the creation was interrupted. Half a schema cannot be completed
    # (the tool stops at the first table that exists), so the database starts over.
    shutil.rmtree(data / DB_DIR, ignore_errors=True)
    cmd = [
        java,
        f"-Dlog4j.configurationFile={data / LOG4J_FILE}",
        f"-Dderby.stream.error.file={data / 'derby.log'}",
        "-cp",
        classpath,
        SCHEMA_TOOL,
        "-initSchema",
        "-dbType",
        "derby",
    ]
    started = time.monotonic()
    with (data / SCHEMA_LOG).open("wb") as out:
        try:
            proc = subprocess.run(
                cmd,
                cwd=data,
                env=_java_env(home),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=300,
            )
        except subprocess.TimeoutExpired as exc:
            raise MetastoreError(f"creating the Hive metastore schema in {data / DB_DIR} took over 300 s") from exc
    if proc.returncode != 0:
        raise MetastoreError(
            f"creating the Hive metastore schema in {data / DB_DIR} failed (exit {proc.returncode}); last lines of "
            f"{data / SCHEMA_LOG}:\n{processes.log_tail(data / SCHEMA_LOG, LOG_TAIL_LINES)}"
        )
    marker.write_text(f"hive-standalone-metastore {jars.HIVE_METASTORE_VERSION}\n")
    log.info("created the Hive metastore schema in %s in %.1f s", data / DB_DIR, time.monotonic() - started)


def _uri(port: int) -> str:
    return f"thrift://{HOST}:{port}"


def _host_port(uri: str) -> tuple[str, int]:
    match = re.fullmatch(r"thrift://([^:/]+|\[[^\]]+\]):(\d+)/?", uri)
    if match is None:
        raise MetastoreError(f"{uri!r} is not a metastore URI; expected thrift://HOST:PORT")
    return match.group(1).strip("[]"), int(match.group(2))


# ---------------------------------------------------------------- thrift
#
# The metastore speaks thrift's binary protocol over a plain socket (no framing, no SASL, as
# configured here). Readiness, list_databases and list_tables need calls with string arguments and
# list results, so the little of the protocol they use is written out here rather than adding a
# thrift library for it.

_VERSION_1 = 0x80010000
_CALL, _REPLY, _EXCEPTION = 1, 2, 3
_T_STOP, _T_BOOL, _T_BYTE, _T_DOUBLE, _T_I16, _T_I32, _T_I64 = 0, 2, 3, 4, 6, 8, 10
_T_STRING, _T_STRUCT, _T_MAP, _T_SET, _T_LIST = 11, 12, 13, 14, 15
_FIXED = {_T_BOOL: ">?", _T_BYTE: ">b", _T_DOUBLE: ">d", _T_I16: ">h", _T_I32: ">i", _T_I64: ">q"}


def _call(host: str, port: int, method: str, args: tuple[str, ...], timeout: float) -> dict[int, Any]:
    """Call ``method`` with string ``args`` (fields 1, 2, ...) and return its result struct as {field id: value}.

    Raises:
        OSError: No connection, or no answer within ``timeout``.
        EOFError: The server closed the connection before answering in full.
        ValueError: The answer is not a thrift reply to this call.
        MetastoreError: The server answered with a thrift application exception.
    """
    name = method.encode()
    request = struct.pack(">Ii", _VERSION_1 | _CALL, len(name)) + name + struct.pack(">i", 1)
    for field_id, arg in enumerate(args, start=1):
        value = arg.encode()
        request += struct.pack(">Bhi", _T_STRING, field_id, len(value)) + value
    request += bytes([_T_STOP])
    with socket.create_connection((host, port), timeout=timeout) as sock, sock.makefile("rb") as stream:
        sock.sendall(request)
        reader = _Reader(stream)
        header = reader.unpack(">I")
        if header & 0xFFFF0000 != _VERSION_1:
            raise ValueError(f"not a thrift binary-protocol reply (header {header:#010x})")
        answered = reader.string().decode(errors="replace")
        reader.unpack(">i")  # sequence id
        body = reader.struct()
    if answered != method:
        raise ValueError(f"the reply is to {answered!r}, not {method!r}")
    if header & 0xFF == _EXCEPTION:
        message = body.get(1)  # TApplicationException: 1 message, 2 type
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(body)
        raise MetastoreError(f"the Hive metastore at {host}:{port} refused {method}: {text}")
    if header & 0xFF != _REPLY:
        raise ValueError(f"thrift message type {header & 0xFF} is not a reply")
    return body


def _meta_exception(result: dict[int, Any]) -> str:
    """The message of the exception struct in a result without a value (MetaException's field 1)."""
    for value in result.values():
        if isinstance(value, dict) and isinstance(value.get(1), bytes):
            return str(value[1].decode(errors="replace"))
    return f"no result ({result})"


class _Reader:
    """Reads thrift binary-protocol values; strings stay bytes, structs become {field id: value}."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read(self, size: int) -> bytes:
        data = self._stream.read(size)
        if len(data) != size:
            raise EOFError("the metastore closed the connection in the middle of its answer")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> bytes:
        size = self.unpack(">i")
        if size < 0:
            raise ValueError(f"negative string length {size}")
        return self.read(size)

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        while True:
            ttype = self.unpack(">B")
            if ttype == _T_STOP:
                return fields
            field_id = self.unpack(">h")
            fields[field_id] = self.value(ttype)

    def value(self, ttype: int) -> Any:
        if ttype in _FIXED:
            return self.unpack(_FIXED[ttype])
        if ttype == _T_STRING:
            return self.string()
        if ttype == _T_STRUCT:
            return self.struct()
        if ttype in (_T_LIST, _T_SET):
            element, size = self.unpack(">B"), self.unpack(">i")
            return [self.value(element) for _ in range(size)]
        if ttype == _T_MAP:
            key, val, size = self.unpack(">B"), self.unpack(">B"), self.unpack(">i")
            return {self.value(key): self.value(val) for _ in range(size)}
        raise ValueError(f"unknown thrift type {ttype}")


# ---------------------------------------------------------------- readiness


def _answers(port: int, timeout: float) -> bool:
    """Whether the server answers ``get_all_databases``: it accepts connections before it serves them."""
    try:
        return 0 in _call(HOST, port, "get_all_databases", (), timeout)
    except (OSError, EOFError, ValueError, MetastoreError):
        return False


def _answers_at(port: int, timeout: float) -> bool:
    # A plain connect first: no thrift call while the JVM is still starting.
    return processes.accepts_connections(port) and _answers(port, timeout)


def _startup_failure(data: Path, port: int) -> str | None:
    """Why the server gave up starting, from its log; None while it has not."""
    with contextlib.suppress(FileNotFoundError):
        text = (data / SERVER_LOG).read_text(errors="replace")
        if STARTUP_FAILED in text:
            if BIND_FAILED in text:
                return f"could not listen on port {port}: it is already in use on some interface"
            return "failed to start"
    return None


# ---------------------------------------------------------------- the server

METASTORE = LocalServer(
    name="Hive metastore",
    command="metastore",
    home="metastore",
    error=MetastoreError,
    pid_file=PID_FILE,
    lock_file=LOCK_FILE,
    log_file=SERVER_LOG,
    config_file=CONFIG_FILE,
    port_setting="metastore.thrift.port",
    configured_port=_config_port,
    marks=lambda data: (MAIN_CLASS, f"-Dlog4j.configurationFile={data / LOG4J_FILE}"),
    prepare=_prepare,
    address=_uri,
    answers=_answers_at,
    startup_failure=_startup_failure,
    listens_everywhere=True,
)


def start(port: int = 9083, data_dir: Path | None = None, *, wait_seconds: float = METASTORE.wait_seconds) -> str:
    """Start a Hive Metastore for ``data_dir`` on ``port`` and wait until it answers a thrift call.

    Idempotent: if the folder's server is already running and answering, its URI is returned (with
    a warning when it listens on another port than ``port``). The first start of the machine fetches
    the standalone metastore (27 MB) with Maven; the first start of a folder creates its Derby
    database (a few seconds more). Databases and tables survive a stop and start.

    The server listens on every interface (Hive 3.1 cannot be told otherwise), so ``port`` must be
    free on all of them; the URI names 127.0.0.1.

    Args:
        port: The thrift port clients connect to.
        data_dir: Folder for configuration, logs, database and warehouse (default
            ``$LOGLAKE_HOME/metastore``).
        wait_seconds: How long to wait for the server to answer (it takes 5-10 s to start).

    Returns:
        The metastore URI, ``"thrift://127.0.0.1:<port>"``.

    Raises:
        MetastoreError: The port is taken, the schema could not be created, or the server failed,
            exited or did not answer in time; the message carries the last lines of its log.
        SetupError: No suitable Java, no PySpark jars, or the server could not be fetched.
    """
    data = METASTORE.data_folder(data_dir)
    # The folder goes on java's classpath (':'-separated) and into Derby's URL (';'-separated).
    if any(sep in str(data) for sep in (os.pathsep, ";")):
        raise MetastoreError(f"data folder {data} contains '{os.pathsep}' or ';'; pick a folder without them")
    return METASTORE.start(port, data, wait_seconds)


def stop(data_dir: Path | None = None, *, timeout: float = METASTORE.stop_seconds) -> bool:
    """Stop the Hive metastore of ``data_dir``: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Args:
        data_dir: The folder given to :func:`start` (default ``$LOGLAKE_HOME/metastore``).
        timeout: Seconds to wait for a clean shutdown before killing the process.

    Returns:
        True if a server was running and is now stopped; False if none was running (a stale pid
        file is removed).
    """
    return METASTORE.stop(data_dir, timeout)
