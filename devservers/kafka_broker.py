"""A local single-node Apache Kafka broker (KRaft, combined broker and controller) on 127.0.0.1.

The broker runs from the Maven jars that :mod:`loglake.jars` caches, as a detached ``java``
process, so it outlives the command that started it (``loglake kafka start``) and serves tests,
the demo and the benchmark alike. Everything it owns lives in one data folder::

    server.properties  log4j.properties  broker.log  broker.pid  broker.lock  logs/ (log.dirs)

A data folder has at most one broker; :func:`start` on a folder whose broker is up returns its
address, and :func:`stop` ends it.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from devservers import local_process as processes
from devservers.java import LOCAL_SERVER_JVM_OPTS
from devservers.server import LOG_TAIL_LINES, Launch, LocalServer
from loglake import jars
from loglake.errors import BrokerError, SetupError

log = logging.getLogger(__name__)

HOST = processes.HOST
DEFAULT_PARTITIONS = 4
SERVER_PROPERTIES = "server.properties"
LOG4J_PROPERTIES = "log4j.properties"
BROKER_LOG = "broker.log"
PID_FILE = "broker.pid"
LOCK_FILE = "broker.lock"
LOG_DIRS = "logs"
MAIN_CLASS = "kafka.Kafka"
HEAP_OPTS = ("-Xms256m", "-Xmx512m")

# Kafka's own loggers write a line per partition, segment and metadata record at INFO, which buries
# startup and errors in tests that make many topics: they go to WARN, except the two that log
# "Kafka Server started" and fatal exits.
_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=WARN
log4j.logger.org.apache.kafka=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.Kafka$=INFO
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.org.apache.zookeeper=WARN
"""


def create_topic(bootstrap: str, topic: str, partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create ``topic`` with ``partitions`` partitions and replication factor 1.

    Idempotent: an existing topic is left as it is, whatever its partition count. Returns once the
    topic's partitions are visible in the broker's metadata, so producers can start at once.

    Raises:
        BrokerError: The broker did not answer or refused the topic.
    """
    if partitions < 1:
        raise BrokerError(f"topic {topic!r}: partitions {partitions} must be at least 1")
    admin = AdminClient(_client_config(bootstrap))
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
    try:
        future.result(timeout=30)
    except KafkaException as exc:
        error = exc.args[0]
        if not (isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise BrokerError(f"could not create topic {topic!r} at {bootstrap}: {error}") from exc
        log.debug("topic %s already exists at %s", topic, bootstrap)
    except TimeoutError as exc:
        raise BrokerError(f"could not create topic {topic!r}: no answer from {bootstrap} within 30 s") from exc

    deadline = time.monotonic() + 30
    while True:
        try:
            meta = admin.list_topics(topic, timeout=5).topics.get(topic)
        except KafkaException:
            meta = None
        if meta is not None and meta.error is None and meta.partitions:
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topic {topic!r} was created at {bootstrap} but its partitions never showed up")
        time.sleep(0.1)


# ---------------------------------------------------------------- configuration


def _prepare(data: Path, port: int) -> Launch:
    """Write the folder's configuration for ``port``, format its storage once, and say how to run the broker."""
    java = _java()
    classpath = _classpath()
    controller_port = _controller_port(data, avoid=port)
    _write_config(data, port, controller_port)
    _format_storage(data, java, classpath)
    return Launch(
        [
            java,
            *HEAP_OPTS,
            *LOCAL_SERVER_JVM_OPTS,
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{data / LOG4J_PROPERTIES}",
            "-cp",
            classpath,
            MAIN_CLASS,
            str(data / SERVER_PROPERTIES),
        ]
    )


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise SetupError(f"JAVA_HOME={java_home} has no bin/java; fix JAVA_HOME or unset it to use java on PATH")
    found = shutil.which("java")
    if found is None:
        raise SetupError("java is not on PATH and JAVA_HOME is not set; install Java 17 (`make system`)")
    return found


def _classpath() -> str:
    paths = jars.resolve(jars.KAFKA_JARS)
    if not paths:
        raise SetupError("the Kafka jar folder is empty; run `loglake setup`")
    # A "dir/*" entry is expanded by java itself and keeps the command line (and ps output) short.
    return str(paths[0].parent / "*")


def _listener_port(props: Mapping[str, str], name: str) -> int | None:
    for listener in props.get("listeners", "").split(","):
        prefix = f"{name}://"
        if listener.startswith(prefix):
            with contextlib.suppress(ValueError):
                return int(listener.rsplit(":", 1)[1])
    return None


def _controller_port(data: Path, avoid: int) -> int:
    """The controller port stored in the folder's config if it is still free, else a new free one."""
    previous = _listener_port(processes.read_properties(data / SERVER_PROPERTIES), "CONTROLLER")
    return processes.other_free_port(previous, avoid, BrokerError)


def _write_config(data: Path, port: int, controller_port: int) -> None:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data / LOG_DIRS),
        "num.partitions": str(DEFAULT_PARTITIONS),
        "auto.create.topics.enable": "true",
        # One broker: internal topics cannot have more than one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # The default 50 partitions make the first consumer group wait while they are all created.
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.num.partitions": "4",
        # Tests start consumer groups one after another; the 3 s default delays each of them.
        "group.initial.rebalance.delay.ms": "0",
    }
    text = "# Written by devservers.kafka_broker on every start; edits are overwritten.\n"
    text += "".join(f"{key}={value}\n" for key, value in props.items())
    (data / SERVER_PROPERTIES).write_text(text)
    (data / LOG4J_PROPERTIES).write_text(_LOG4J)


def _cluster_id() -> str:
    """A random cluster id in Kafka's format: a UUID as 22 characters of URL-safe base64."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's own Uuid.randomUuid() skips these: a leading dash reads as a command-line flag.
        if not text.startswith("-"):
            return text


def _format_storage(data: Path, java: str, classpath: str) -> None:
    if (data / LOG_DIRS / "meta.properties").exists():
        return
    cluster_id = _cluster_id()
    cmd = [
        java,
        *LOCAL_SERVER_JVM_OPTS,
        f"-Dlog4j.configuration=file:{data / LOG4J_PROPERTIES}",
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(data / SERVER_PROPERTIES),
    ]
    proc = subprocess.run(cmd, cwd=data, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-LOG_TAIL_LINES:])
        raise BrokerError(f"formatting Kafka storage in {data / LOG_DIRS} failed:\n{tail}")
    log.info("formatted Kafka storage in %s (cluster id %s)", data / LOG_DIRS, cluster_id)


# ---------------------------------------------------------------- readiness


def _client_config(bootstrap: str) -> dict[str, Any]:
    # librdkafka logs connection failures to stderr by default; a Python logger keeps them in the
    # logging system (they are served only when the client polls, which these short-lived clients
    # barely do, so refused connections while the broker starts stay quiet).
    return {"bootstrap.servers": bootstrap, "logger": logging.getLogger("loglake.librdkafka")}


def answers(bootstrap: str, timeout: float) -> bool:
    """Whether a broker at ``bootstrap`` returns metadata within ``timeout`` seconds."""
    try:
        meta = AdminClient(_client_config(bootstrap)).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return bool(meta.brokers)


def _bootstrap(port: int) -> str:
    return f"{HOST}:{port}"


def _answers_at(port: int, timeout: float) -> bool:
    # A plain connect first: the admin client would log every refused attempt while the JVM starts.
    return processes.accepts_connections(port) and answers(_bootstrap(port), timeout)


# ---------------------------------------------------------------- the broker

BROKER = LocalServer(
    name="Kafka broker",
    command="kafka",
    home="kafka",
    error=BrokerError,
    pid_file=PID_FILE,
    lock_file=LOCK_FILE,
    log_file=BROKER_LOG,
    config_file=SERVER_PROPERTIES,
    port_setting="PLAINTEXT listener",
    configured_port=lambda data: _listener_port(processes.read_properties(data / SERVER_PROPERTIES), "PLAINTEXT"),
    marks=lambda data: (MAIN_CLASS, str(data / SERVER_PROPERTIES)),
    prepare=_prepare,
    address=_bootstrap,
    answers=_answers_at,
)


def start(port: int = 9092, data_dir: Path | None = None, *, wait_seconds: float = BROKER.wait_seconds) -> str:
    """Start a broker for ``data_dir`` on ``127.0.0.1:port`` and wait until it answers.

    Idempotent: if the folder's broker is already running and answering, its address is returned
    (with a warning when it listens on another port than ``port``). Storage is formatted on the
    first start only, so topics survive a stop and start.

    Args:
        port: The PLAINTEXT port clients connect to. The controller gets a second, free port.
        data_dir: Folder for configuration, logs and topic data (default ``$LOGLAKE_HOME/kafka``).
        wait_seconds: How long to wait for the broker to answer a metadata request.

    Returns:
        The bootstrap address, ``"127.0.0.1:<port>"``.

    Raises:
        BrokerError: The port is taken, formatting failed, or the broker exited or did not answer
            in time; the message carries the last lines of ``broker.log``.
        SetupError: ``java`` is missing or the Kafka jars cannot be resolved.
    """
    return BROKER.start(port, data_dir, wait_seconds)


def stop(data_dir: Path | None = None, *, timeout: float = BROKER.stop_seconds) -> bool:
    """Stop the broker of ``data_dir``: SIGTERM, then SIGKILL after ``timeout`` seconds.

    Args:
        data_dir: The folder given to :func:`start` (default ``$LOGLAKE_HOME/kafka``).
        timeout: Seconds to wait for a clean shutdown before killing the process.

    Returns:
        True if a broker was running and is now stopped; False if none was running (a stale pid
        file is removed).
    """
    return BROKER.stop(data_dir, timeout)
