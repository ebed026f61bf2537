"""A local Apicurio Registry on 127.0.0.1, serving the Confluent Schema Registry API.

The server is Apicurio Registry (a Quarkus application, fetched once from Maven Central by
:func:`loglake.jars.resolve_archive`), run as a detached ``java`` process so it outlives the command
that started it (``loglake registry start``), like the local Kafka broker of
:mod:`devservers.kafka_broker`. Clients use its Confluent-compatible API at
``http://127.0.0.1:<port>/apis/ccompat/v7``. Everything it owns lives in one data folder::

    registry.properties  registry.log  registry.pid  registry.lock  db/ (H2 database files)

Apicurio keeps schemas in an in-memory database by default, which a restart empties (and with it
the schema ids that messages already carry); here they go to an H2 database file under ``db/``, so
they survive a stop and start. A data folder has at most one server; :func:`start` on a folder
whose server is up returns its URL, and :func:`stop` ends it.

Apicurio 3 needs Java 21 or newer while the rest of loglake runs on Java 17: see :func:`find_java`.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.request
from pathlib import Path

from devservers import java as java_search
from devservers import local_process as processes
from devservers.server import Launch, LocalServer
from loglake import jars
from loglake.errors import RegistryError, SetupError

log = logging.getLogger(__name__)

HOST = processes.HOST
API_PATH = "/apis/ccompat/v7"
CONFIG_FILE = "registry.properties"
SERVER_LOG = "registry.log"
PID_FILE = "registry.pid"
LOCK_FILE = "registry.lock"
DB_DIR = "db"
RUN_JAR = "quarkus-run.jar"
JAVA_ENV = "LOGLAKE_REGISTRY_JAVA"
MIN_JAVA = 21
# 230-310 MB resident with this heap, as measured; without it the JVM would take a quarter of the RAM.
HEAP_OPTS = ("-Xmx256m",)
JVM_ROOT = java_search.JVM_ROOT
# Kept under its old name: the parser moved to devservers.java with the search.
parse_java_major = java_search.parse_java_major


def register(url: str, subject: str, schema_json: str, compatibility: str = "BACKWARD") -> int:
    """Set ``subject``'s compatibility level, register an Avro schema under it and return its id.

    The level is set on every call because Apicurio's global default is NONE (Confluent's is
    BACKWARD): without it any change would be accepted. Registering a schema the subject already
    has returns its existing id.

    Args:
        url: The base URL :func:`start` returned (any Confluent-compatible registry works).
        subject: E.g. ``logs-value`` for the values of topic ``logs``.
        schema_json: The Avro schema as JSON text.
        compatibility: BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FULL, NONE, ...

    Raises:
        RegistryError: Nothing answers at ``url``, or the registry refused the level or the schema
            (an incompatible change names the incompatible field).
    """
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    # The client retries refused connections with backoff and then raises its HTTP library's
    # error; one plain request first turns a stopped server into a message that says so.
    if not _answers(url, timeout=5):
        raise RegistryError(f"no schema registry answers at {url}; start one with `loglake registry start`")
    with SchemaRegistryClient({"url": url}) as client:
        try:
            client.set_compatibility(subject, compatibility)
        except SchemaRegistryError as exc:
            raise RegistryError(
                f"schema registry at {url} refused compatibility {compatibility!r} for subject {subject!r}: "
                f"{exc.error_message}"
            ) from exc
        try:
            schema_id = client.register_schema(subject, Schema(schema_json, "AVRO"))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                raise RegistryError(
                    f"schema registry at {url} refused the schema for subject {subject!r}: it is not "
                    f"{compatibility}-compatible with the registered versions ({exc.error_message}); "
                    f"give new fields defaults, or register it under a new subject"
                ) from exc
            raise RegistryError(
                f"schema registry at {url} refused the schema for subject {subject!r}: {exc.error_message}"
            ) from exc
    return int(schema_id)


# ---------------------------------------------------------------- Java 21+


def find_java() -> str:
    """The ``java`` to run the registry with: Java 21 or newer (Apicurio 3 is built for 21).

    ``$LOGLAKE_REGISTRY_JAVA`` if set, else the search of :func:`devservers.java.find_java`.

    Raises:
        SetupError: None found, or ``$LOGLAKE_REGISTRY_JAVA`` is not a Java 21+.
    """
    # JVM_ROOT is read here, not bound at import, so tests can point it at an empty folder.
    return java_search.find_java(MIN_JAVA, JAVA_ENV, "the schema registry", jvm_root=JVM_ROOT)


# ---------------------------------------------------------------- configuration


def _prepare(data: Path, port: int) -> Launch:
    """Write the folder's configuration for ``port`` and say how to run the server."""
    java = find_java()
    home = jars.resolve_archive(jars.APICURIO_REGISTRY, f"registry-{jars.APICURIO_VERSION}")
    if not (home / RUN_JAR).is_file():
        raise SetupError(f"{home} has no {RUN_JAR}; delete the folder and start again to fetch it anew")
    management_port = _management_port(data, avoid=port)
    _write_config(data, port, management_port)
    argv = [
        java,
        *HEAP_OPTS,
        *java_search.LOCAL_SERVER_JVM_OPTS,
        "-XX:+ExitOnOutOfMemoryError",
        # This file's settings override the defaults inside Apicurio's jar.
        f"-Dquarkus.config.locations={data / CONFIG_FILE}",
        "-jar",
        str(home / RUN_JAR),
    ]
    return Launch(argv, java=java)


def _config_port(props: dict[str, str], key: str) -> int | None:
    with contextlib.suppress(KeyError, ValueError):
        return int(props[key])
    return None


def _management_port(data: Path, avoid: int) -> int:
    """The management port stored in the folder's config if it is still free, else a new free one."""
    previous = _config_port(processes.read_properties(data / CONFIG_FILE), "quarkus.management.port")
    return processes.other_free_port(previous, avoid, RegistryError)


def _write_config(data: Path, port: int, management_port: int) -> None:
    props = {
        "quarkus.http.host": HOST,
        "quarkus.http.port": str(port),
        # Health and metrics are served on a port of their own, on every interface unless told.
        "quarkus.management.host": HOST,
        "quarkus.management.port": str(management_port),
        # The default keeps schemas in memory: a restart would lose them and the ids in messages.
        "apicurio.datasource.url": f"jdbc:h2:file:{data / DB_DIR / 'registry'}",
        # A line per request and an ASCII-art banner bury startup errors in registry.log.
        "quarkus.http.access-log.enabled": "false",
        "quarkus.banner.enabled": "false",
    }
    lines = ["# Written by devservers.registry_server on every start; edits are overwritten."]
    for key, value in props.items():
        # A backslash is an escape in a .properties file; a path must reach Quarkus as it is.
        escaped = value.replace("\\", "\\\\")
        lines.append(f"{key}={escaped}")
    (data / CONFIG_FILE).write_text("\n".join(lines) + "\n")


def _url(port: int) -> str:
    return f"http://{HOST}:{port}{API_PATH}"


# ---------------------------------------------------------------- readiness


def _answers(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout) as response:  # noqa: S310 - our own URL
            return bool(response.status == 200)
    except OSError:  # refused, timed out, or an HTTP error status
        return False


# ---------------------------------------------------------------- the server

REGISTRY = LocalServer(
    name="schema registry",
    command="registry",
    home="registry",
    error=RegistryError,
    pid_file=PID_FILE,
    lock_file=LOCK_FILE,
    log_file=SERVER_LOG,
    config_file=CONFIG_FILE,
    port_setting="quarkus.http.port",
    configured_port=lambda data: _config_port(processes.read_properties(data / CONFIG_FILE), "quarkus.http.port"),
    marks=lambda data: (f"-Dquarkus.config.locations={data / CONFIG_FILE}",),
    prepare=_prepare,
    address=_url,
    answers=lambda port, timeout: _answers(_url(port), timeout),
    wait_seconds=90,
)


def start(port: int = 8081, data_dir: Path | None = None, *, wait_seconds: float = REGISTRY.wait_seconds) -> str:
    """Start a schema registry for ``data_dir`` on ``127.0.0.1:port`` and wait until it answers.

    Idempotent: if the folder's server is already running and answering, its URL is returned (with
    a warning when it listens on another port than ``port``). The first start of the machine fetches
    Apicurio Registry (158 MB) with Maven. Schemas are stored in the data folder and survive a stop
    and start.

    Args:
        port: The HTTP port clients connect to. The management interface (health, metrics) gets a
            second, free port, also on 127.0.0.1.
        data_dir: Folder for configuration, log and database (default ``$LOGLAKE_HOME/registry``).
        wait_seconds: How long to wait for the server to answer (it takes 5-15 s to start).

    Returns:
        The Confluent-compatible base URL, ``"http://127.0.0.1:<port>/apis/ccompat/v7"``.

    Raises:
        RegistryError: The port is taken, or the server exited or did not answer in time; the
            message carries the last lines of ``registry.log``.
        SetupError: No Java 21+ was found, or the server could not be fetched.
    """
    return REGISTRY.start(port, data_dir, wait_seconds)


def stop(data_dir: Path | None = None, *, timeout: float = REGISTRY.stop_seconds) -> bool:
    """Stop the schema registry of ``data_dir``: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Args:
        data_dir: The folder given to :func:`start` (default ``$LOGLAKE_HOME/registry``).
        timeout: Seconds to wait for a clean shutdown before killing the process.

    Returns:
        True if a server was running and is now stopped; False if none was running (a stale pid
        file is removed).
    """
    return REGISTRY.stop(data_dir, timeout)
