"""What a local server is, and the start and stop every one of them shares.

The Kafka broker, the schema registry and the Hive metastore differ in what they run, how their
data folder is configured and how one asks whether they answer. A :class:`LocalServer` holds those
differences; its :meth:`~LocalServer.start` and :meth:`~LocalServer.stop` do the rest the same way
for all: one server per data folder, under the folder's lock, a running one adopted, a new one
launched detached and awaited, and one that never answered stopped again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devservers import local_process as processes
from loglake import jars

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class Launch:
    """How to run a server whose data folder is ready for it."""

    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    # Named in the start log line by a server that searches for a Java of its own, so a developer
    # sees which one it found.
    java: str | None = None


@dataclass(frozen=True)
class LocalServer:
    """One kind of local server: what the shared start and stop need to know about it.

    Attributes:
        name: What it is called in messages, e.g. ``"Kafka broker"``.
        command: The ``loglake`` command that manages it, for the fixes messages suggest.
        home: Its default data folder, under ``$LOGLAKE_HOME``.
        error: The exception its module raises.
        pid_file: Name of its pid file in the data folder (likewise ``lock_file``, ``log_file``).
        config_file: The file in the data folder that names its port.
        port_setting: What names the port in ``config_file``, for messages.
        configured_port: The port ``config_file`` names, or None if it names none.
        marks: Arguments that only the data folder's server has on its command line.
        prepare: Writes the data folder's configuration for a port and says how to run the server.
        address: What clients connect to at a port: what :meth:`start` returns.
        answers: Whether the server at a port answers a request, waiting at most the given seconds.
        startup_failure: Why the server gave up starting, read from its log, or None while it has
            not: for a server that stays alive, serving nothing, when it fails.
        listens_everywhere: It binds the wildcard address, so its port must be free on every interface.
        wait_seconds: How long a start waits for it to answer, unless told.
        stop_seconds: How long a stop waits for it to shut down before SIGKILL, unless told.
    """

    name: str
    command: str
    home: str
    error: type[Exception]
    pid_file: str
    lock_file: str
    log_file: str
    config_file: str
    port_setting: str
    configured_port: Callable[[Path], int | None]
    marks: Callable[[Path], Sequence[str]]
    prepare: Callable[[Path, int], Launch]
    address: Callable[[int], str]
    answers: Callable[[int, float], bool]
    startup_failure: Callable[[Path, int], str | None] | None = None
    listens_everywhere: bool = False
    wait_seconds: float = 60
    stop_seconds: float = 30

    def data_folder(self, data_dir: Path | None) -> Path:
        """``data_dir`` as an absolute path; ``$LOGLAKE_HOME/<home>`` if None."""
        return (data_dir if data_dir is not None else jars.loglake_home() / self.home).expanduser().resolve()

    def start(self, port: int, data_dir: Path | None, wait_seconds: float) -> str:
        """Start the server of ``data_dir`` on ``port``, or adopt the one running; return its address."""
        if not 0 < port < 65536:
            raise self.error(f"port {port} is not a TCP port; expected 1-65535")
        data = self.data_folder(data_dir)
        data.mkdir(parents=True, exist_ok=True)
        # Two starts on one folder at once would both prepare it and launch, and one pid file would lose.
        with processes.folder_lock(data / self.lock_file):
            running = self.running_pid(data)
            if running is not None:
                return self._adopt(data, running, port, wait_seconds)
            self._check_port_is_free(port)
            return self._launch(data, port, wait_seconds)

    def stop(self, data_dir: Path | None, timeout: float) -> bool:
        """Stop the server of ``data_dir`` (SIGTERM, then SIGKILL after ``timeout`` s) under its folder lock.

        Returns whether one was running; a stale pid file is removed either way.
        """
        data = self.data_folder(data_dir)
        if not data.is_dir():
            return False
        pid_file = data / self.pid_file
        with processes.folder_lock(data / self.lock_file):
            pid = self.running_pid(data)
            if pid is None:
                pid_file.unlink(missing_ok=True)
                return False
            processes.terminate(pid, timeout, self.name, self.error)
            pid_file.unlink(missing_ok=True)
        log.info("stopped %s pid %d (data %s)", self.name, pid, data)
        return True

    def running_pid(self, data: Path) -> int | None:
        """The pid of the folder's server if it runs, and not some other process that reused the pid."""
        pid = processes.read_pid(data / self.pid_file)
        if pid is None or not processes.is_alive(pid):
            return None
        args = processes.command_line(pid)
        # None: no /proc (macOS), so the pid file is all there is to go by.
        if args is not None and not all(mark in args for mark in self.marks(data)):
            return None
        return pid

    def _check_port_is_free(self, port: int) -> None:
        if self.listens_everywhere:
            if not processes.port_is_free_everywhere(port, self.error):
                raise self.error(
                    f"port {port} is already in use on this machine (the {self.name} listens on every "
                    f"interface, so a listener on any address takes it); pick another with --port or stop "
                    f"what listens there"
                )
        elif not processes.port_is_free(port, self.error):
            raise self.error(
                f"port {port} on {processes.HOST} is already in use by another process; "
                f"pick another with --port or stop what listens there"
            )

    def _launch(self, data: Path, port: int, wait_seconds: float) -> str:
        launch = self.prepare(data, port)
        address = self.address(port)
        pid_file = data / self.pid_file
        pid = processes.spawn(launch.argv, cwd=data, log_file=data / self.log_file, env=launch.env)
        pid_file.write_text(f"{pid}\n")
        runs_on = f" with {launch.java}" if launch.java else ""
        log.info("started %s pid %d at %s%s (data %s)", self.name, pid, address, runs_on, data)
        try:
            self._wait_until_answering(data, pid, port, wait_seconds)
        except self.error:
            # A server that never answered is of no use to anyone.
            processes.terminate(pid, 10, self.name, self.error)
            pid_file.unlink(missing_ok=True)
            raise
        return address

    def _adopt(self, data: Path, pid: int, port: int, wait_seconds: float) -> str:
        """The address of the folder's running server, once it answers (it may still be starting)."""
        running_port = self.configured_port(data)
        if running_port is None:
            raise self.error(
                f"a {self.name} (pid {pid}) runs for {data} but {data / self.config_file} names no "
                f"{self.port_setting}; stop it with `loglake {self.command} stop --data {data}`"
            )
        if running_port != port:
            log.warning("the %s of %s already runs on port %d, not %d; using it", self.name, data, running_port, port)
        self._wait_until_answering(data, pid, running_port, wait_seconds)
        address = self.address(running_port)
        log.info("%s pid %d already running at %s (data %s)", self.name, pid, address, data)
        return address

    def _wait_until_answering(self, data: Path, pid: int, port: int, wait_seconds: float) -> None:
        log_file = data / self.log_file
        deadline = time.monotonic() + wait_seconds
        while True:
            if not processes.is_alive(pid):
                raise self.error(
                    f"{self.name} for {data} exited during startup (pid {pid}); last lines of "
                    f"{log_file}:\n{processes.log_tail(log_file, LOG_TAIL_LINES)}"
                )
            failure = self.startup_failure(data, port) if self.startup_failure is not None else None
            if failure is not None:
                raise self.error(
                    f"{self.name} for {data} (pid {pid}) {failure}; last lines of "
                    f"{log_file}:\n{processes.log_tail(log_file, LOG_TAIL_LINES)}"
                )
            if self.answers(port, min(5.0, max(0.5, wait_seconds))):
                return
            if time.monotonic() > deadline:
                raise self.error(
                    f"{self.name} pid {pid} did not answer at {self.address(port)} within {wait_seconds:.0f} s; "
                    f"last lines of {log_file}:\n{processes.log_tail(log_file, LOG_TAIL_LINES)}"
                )
            time.sleep(0.25)
