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
import time
import urllib.request
from pathlib import Path

from devservers import java as java_search
from devservers import local_process as processes
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
LOG_TAIL_LINES = 25
JVM_ROOT = java_search.JVM_ROOT
# Kept under its old name: the parser moved to devservers.java with the search.
parse_java_major = java_search.parse_java_major


def default_data_dir() -> Path:
    """The data folder used when none is given: ``$LOGLAKE_HOME/registry``."""
    return jars.loglake_home() / "registry"


def start(port: int = 8081, data_dir: Path | None = None, *, wait_seconds: float = 90) -> str:
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
    if not 0 < port < 65536:
        raise RegistryError(f"port {port} is not a TCP port; expected 1-65535")
    data = _resolve_dir(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    # Two starts on one folder at once would both launch a server, and one pid file would lose.
    with _folder_lock(data):
        return _start_locked(data, port, wait_seconds)


def _start_locked(data: Path, port: int, wait_seconds: float) -> str:
    running = _running_pid(data)
    if running is not None:
        return _adopt_running(data, running, port, wait_seconds)

    if not processes.port_is_free(port, RegistryError):
        raise RegistryError(
            f"port {port} on {HOST} is already in use by another process; "
            f"pick another with --port or stop what listens there"
        )
    java = find_java()
    home = jars.resolve_archive(jars.APICURIO_REGISTRY, f"registry-{jars.APICURIO_VERSION}")
    if not (home / RUN_JAR).is_file():
        raise SetupError(f"{home} has no {RUN_JAR}; delete the folder and start again to fetch it anew")
    management_port = _management_port(data, avoid=port)
    _write_config(data, port, management_port)

    cmd = [
        java,
        *HEAP_OPTS,
        "-XX:+ExitOnOutOfMemoryError",
        # This file's settings override the defaults inside Apicurio's jar.
        f"-Dquarkus.config.locations={data / CONFIG_FILE}",
        "-jar",
        str(home / RUN_JAR),
    ]
    url = _url(port)
    processes.launch(
        cmd,
        data=data,
        log_file=data / SERVER_LOG,
        pid_file=data / PID_FILE,
        ready=lambda pid: _wait_until_answering(url, pid, data, wait_seconds),
        what="schema registry",
        where=f"at {url} with {java} (data {data})",
        error=RegistryError,
    )
    return url


def stop(data_dir: Path | None = None, *, timeout: float = 30) -> bool:
    """Stop the schema registry of ``data_dir``: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Args:
        data_dir: The folder given to :func:`start` (default ``$LOGLAKE_HOME/registry``).
        timeout: Seconds to wait for a clean shutdown before killing the process.

    Returns:
        True if a server was running and is now stopped; False if none was running (a stale pid
        file is removed).
    """
    data = _resolve_dir(data_dir)
    stopped = processes.stop(
        data,
        pid_file=data / PID_FILE,
        lock_file=data / LOCK_FILE,
        running_pid=_running_pid,
        what="schema registry",
        error=RegistryError,
        timeout=timeout,
    )
    return stopped is not None


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


# ---------------------------------------------------------------- process bookkeeping


def _resolve_dir(data_dir: Path | None) -> Path:
    return (data_dir if data_dir is not None else default_data_dir()).expanduser().resolve()


def _is_our_server(pid: int, data: Path) -> bool:
    """Whether ``pid`` is the server of ``data``, not some other process that reused the pid."""
    args = processes.command_line(pid)
    if args is None:
        return True  # no /proc (macOS): trust the pid file
    return f"-Dquarkus.config.locations={data / CONFIG_FILE}" in args


def _running_pid(data: Path) -> int | None:
    pid = processes.read_pid(data / PID_FILE)
    if pid is None or not processes.is_alive(pid) or not _is_our_server(pid, data):
        return None
    return pid


def _folder_lock(data: Path) -> contextlib.AbstractContextManager[None]:
    return processes.folder_lock(data / LOCK_FILE)


# ---------------------------------------------------------------- configuration


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


def _wait_until_answering(url: str, pid: int, data: Path, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        if not processes.is_alive(pid):
            raise RegistryError(
                f"schema registry for {data} exited during startup (pid {pid}); last lines of "
                f"{data / SERVER_LOG}:\n{processes.log_tail(data / SERVER_LOG, LOG_TAIL_LINES)}"
            )
        if _answers(url, timeout=min(5.0, max(0.5, wait_seconds))):
            return
        if time.monotonic() > deadline:
            raise RegistryError(
                f"schema registry pid {pid} did not answer at {url} within {wait_seconds:.0f} s; last lines "
                f"of {data / SERVER_LOG}:\n{processes.log_tail(data / SERVER_LOG, LOG_TAIL_LINES)}"
            )
        time.sleep(0.25)


def _adopt_running(data: Path, pid: int, port: int, wait_seconds: float) -> str:
    """Return the URL of the folder's running server, once it answers (it may still be starting)."""
    running_port = _config_port(processes.read_properties(data / CONFIG_FILE), "quarkus.http.port")
    if running_port is None:
        raise RegistryError(
            f"a schema registry (pid {pid}) runs for {data} but {data / CONFIG_FILE} names no "
            f"quarkus.http.port; stop it with `loglake registry stop --data {data}`"
        )
    url = _url(running_port)
    if running_port != port:
        log.warning("the schema registry of %s already runs on port %d, not %d; using it", data, running_port, port)
    _wait_until_answering(url, pid, data, wait_seconds)
    log.info("schema registry pid %d already running at %s (data %s)", pid, url, data)
    return url
