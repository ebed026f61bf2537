"""A single-node Trino on 127.0.0.1 for tests: the stand-in for Amazon Athena.

Athena's engine derives from Trino and, like Trino's ``hudi`` connector, finds a Hudi table and its
partitions in a Hive metastore (Glue, for Athena) that Hudi's hive sync filled, then reads the
files under the table's base path. Athena's Hudi reader is its own (Hudi 0.14/0.15, which read
table version 6), so Trino is a stand-in, not a copy: a table it reads through the metastore is
one Athena should read, not a proof. This is test support, not part of the product: loglake itself
never runs Trino.

The server (``io.trino:trino-server``, 820 MB) is fetched once with Maven by
:func:`loglake.jars.resolve_archive`. It runs as a plain ``java`` process, not through
``bin/launcher``: the launcher would pick ``java`` from ``JAVA_HOME`` or PATH, which is loglake's
Java 17, while Trino 476 refuses anything older than 24.0.1. The ``etc/`` folder written here is
still laid out as the launcher expects (``bin/launcher run --etc-dir <data>/etc``, with a Java 24
first on PATH, starts the same server by hand).

Everything the server owns lives in one data folder::

    etc/ (node.properties, jvm.config, config.properties, log.properties, catalog/hudi.properties)
    plugin/hudi -> <trino>/plugin/hudi    var/    trino.log
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devservers import local_process as processes
from devservers.java import find_java
from loglake import jars
from loglake.errors import SetupError

log = logging.getLogger(__name__)

HOST = processes.HOST
JAVA_ENV = "LOGLAKE_TRINO_JAVA"
# TrinoSystemRequirements in trino-main 476 refuses to start on a Java older than 24.0.1.
MIN_JAVA = 24
CATALOG = "hudi"
# Only the plugins a test uses are loaded: all 61 of the distribution take most of the start time.
PLUGINS = ("hudi",)
MAIN_CLASS = "io.trino.server.TrinoServer"
SERVER_LOG = "trino.log"
LOG_TAIL_LINES = 40

# Trino's recommended JVM flags (core/docker/default/etc/jvm.config) with a test-sized heap. Trino
# reserves 30% of the heap as headroom and gives a query at most 30% by default: 300 MB of 1 GB is
# plenty for the few-thousand-row tables tests write.
JVM_CONFIG = (
    "-server",
    "-Xmx1G",
    "-XX:+UseG1GC",
    "-XX:G1HeapRegionSize=32M",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-OmitStackTraceInFastThrow",
    # 256M is Trino's default; a test server compiles far less.
    "-XX:ReservedCodeCacheSize=128M",
    "-XX:PerMethodRecompilationCutoff=10000",
    "-XX:PerBytecodeRecompilationCutoff=10000",
    "-Djdk.attach.allowAttachSelf=true",
    "-Djdk.nio.maxCachedBufferSize=2000000",
    # Trino loads an agent (JOL) into itself to size objects.
    "-XX:+EnableDynamicAgentLoading",
    "-Dfile.encoding=UTF-8",
    # The quick compiler only: starts 2 s sooner (16 s instead of 18 on 2 cores) and holds ~100 MB
    # less; the queries of tests are too small for the optimising compiler to pay off.
    "-XX:TieredStopAtLevel=1",
)


@dataclass
class TrinoServer:
    """A running Trino: its base URL, process and data folder."""

    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def query(self, sql: str, catalog: str = CATALOG, schema: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and return all its rows as tuples.

        Raises:
            trino.exceptions.TrinoQueryError: Trino refused or failed the query; its ``message``
                and ``error_name`` say why.
        """
        import trino

        conn = trino.dbapi.connect(
            host=HOST, port=self.port, user="loglake-tests", catalog=catalog, schema=schema, http_scheme="http"
        )
        try:
            cur = conn.cursor()
            cur.execute(sql)
            return [tuple(row) for row in cur.fetchall()]
        finally:
            conn.close()

    def rss_bytes(self) -> int:
        """The server's resident memory now (from /proc), 0 if it cannot be read."""
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return processes.log_tail(self.data_dir / SERVER_LOG, lines)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (Trino shuts down gracefully), then SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def trino_home() -> Path:
    """The unpacked server, fetched with Maven the first time (820 MB, 30-60 s on a fast link)."""
    root = jars.resolve_archive(jars.TRINO_SERVER, f"trino-server-{jars.TRINO_VERSION}")
    home = root / f"trino-server-{jars.TRINO_VERSION}"
    if not (home / "lib").is_dir():
        raise SetupError(f"{root} has no trino-server-{jars.TRINO_VERSION}/lib; delete it to fetch it anew")
    return home


def write_etc(
    data_dir: Path, home: Path, port: int, metastore_uri: str, catalog: Mapping[str, str] | None = None
) -> Path:
    """Write ``<data_dir>/etc`` for a one-node coordinator on ``127.0.0.1:port``; return the folder.

    ``catalog`` adds to or overrides the ``hudi`` catalog's properties (``fs.native-s3.enabled``,
    ``s3.endpoint`` and the like for tables on an S3-compatible store).
    """
    etc = data_dir / "etc"
    (etc / "catalog").mkdir(parents=True, exist_ok=True)
    plugins = data_dir / "plugin"
    plugins.mkdir(exist_ok=True)
    for name in PLUGINS:
        link = plugins / name
        if not link.is_symlink():
            link.symlink_to(home / "plugin" / name, target_is_directory=True)
    _write_properties(etc / "node.properties", _node_properties(data_dir))
    (etc / "jvm.config").write_text("\n".join(JVM_CONFIG) + "\n")
    _write_properties(
        etc / "config.properties",
        {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": str(port),
            "discovery.uri": f"http://{HOST}:{port}",
            # Absolute: the default "etc/catalog" and "plugin" are relative to the working directory.
            "catalog.config-dir": str(etc / "catalog"),
            "plugin.dir": str(plugins),
            # One line per HTTP request otherwise, in var/log/http-request.log.
            "http-server.log.enabled": "false",
        },
    )
    _write_properties(etc / "log.properties", {"io.trino": "INFO", "org.apache.hudi": "WARN"})
    _write_properties(
        etc / "catalog" / f"{CATALOG}.properties",
        {
            "connector.name": "hudi",
            "hive.metastore.uri": metastore_uri,
            # Hive sync registers local tables at file:/... locations, which only Trino's Hadoop
            # file system serves (the native ones are S3, GCS and Azure).
            "fs.hadoop.enabled": "true",
            **(catalog or {}),
        },
    )
    return etc


def start(
    data_dir: Path,
    metastore_uri: str,
    *,
    port: int = 0,
    catalog: Mapping[str, str] | None = None,
    wait_seconds: float = 180,
) -> TrinoServer:
    """Start Trino with a ``hudi`` catalog over ``metastore_uri`` and wait until it takes queries.

    Args:
        data_dir: Folder for etc/, var/ and the log; created if missing.
        metastore_uri: ``thrift://host:port`` of the Hive metastore Hudi's hive sync writes to.
        port: HTTP port on 127.0.0.1 (0: a free one).
        catalog: Extra properties of the ``hudi`` catalog (see :func:`write_etc`).
        wait_seconds: How long to wait until ``/v1/info`` says the server is no longer starting.

    Raises:
        SetupError: No Java 24+, or the server exited or did not finish starting in time (the
            message carries the end of ``trino.log``).
    """
    java = find_java(MIN_JAVA, JAVA_ENV, "Trino")
    home = trino_home()
    data_dir = data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or processes.free_port()
    etc = write_etc(data_dir, home, port, metastore_uri, catalog)
    # What bin/launcher would run: jvm.config, node.properties as system properties, the config file.
    command = [
        java,
        *JVM_CONFIG,
        *(f"-D{key}={value}" for key, value in _node_properties(data_dir).items()),
        f"-Dconfig={etc / 'config.properties'}",
        f"-Dlog.levels-file={etc / 'log.properties'}",
        "-cp",
        str(home / "lib" / "*"),
        MAIN_CLASS,
    ]
    with (data_dir / SERVER_LOG).open("wb") as out:
        process = subprocess.Popen(
            command, cwd=data_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_env()
        )
    server = TrinoServer(url=f"http://{HOST}:{port}", port=port, data_dir=data_dir, process=process)
    try:
        _wait_until_started(server, wait_seconds)
    except BaseException:
        server.stop(timeout=10)
        raise
    log.info("Trino %s pid %d ready at %s (java %s)", jars.TRINO_VERSION, process.pid, server.url, java)
    return server


def _node_properties(data_dir: Path) -> dict[str, str]:
    return {
        "node.environment": "loglake_tests",
        "node.id": "loglake-tests",
        "node.data-dir": str(data_dir / "var"),
        # Listen on loopback only; the default binds every interface.
        "node.bind-ip": HOST,
        "node.internal-address": HOST,
    }


def _write_properties(path: Path, props: dict[str, str]) -> None:
    lines = [f"{key}={value}" for key, value in props.items()]
    path.write_text("# Written by tests/trino_server.py on every start.\n" + "\n".join(lines) + "\n")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # A JAVA_TOOL_OPTIONS meant for Spark's Java 17 could break, or just clutter, Trino's start.
    env.pop("JAVA_TOOL_OPTIONS", None)
    return env


def _info(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/v1/info", timeout=2) as response:  # noqa: S310 - 127.0.0.1 only
            info: dict[str, Any] = json.load(response)
            return info
    except (OSError, ValueError):
        return None


def _wait_until_started(server: TrinoServer, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        if server.process.poll() is not None:
            raise SetupError(
                f"Trino exited during startup (code {server.process.returncode}); last lines of "
                f"{server.data_dir / SERVER_LOG}:\n{server.log_tail()}"
            )
        info = _info(server.url)
        # /v1/info answers while plugins and catalogs still load; queries fail until starting=false.
        if info is not None and info.get("starting") is False:
            return
        if time.monotonic() > deadline:
            raise SetupError(
                f"Trino at {server.url} was still starting after {wait_seconds:.0f} s; last lines of "
                f"{server.data_dir / SERVER_LOG}:\n{server.log_tail()}"
            )
        time.sleep(0.5)
