"""Bookkeeping for the local servers loglake runs detached (Kafka broker, schema registry, Hive metastore).

Each server owns a data folder with a pid file, a lock file and a log. These helpers are what they all
need: a folder lock across processes, pids that survive the starting command, a stop that escalates
from SIGTERM to SIGKILL, and free ports on 127.0.0.1. ``what`` names the server in messages and
``error`` is the exception its module raises. The start and stop built on them are
:class:`devservers.server.LocalServer`'s.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

# Servers started by this Python process. Their exit has to be reaped through Popen, or a stopped
# server lingers as a zombie and still looks alive to os.kill(pid, 0).
children: dict[int, subprocess.Popen[bytes]] = {}


@contextlib.contextmanager
def folder_lock(lock_file: Path) -> Iterator[None]:
    """An exclusive lock on a server's data folder, across processes (the server does not inherit it)."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def spawn(argv: Sequence[str], *, cwd: Path, log_file: Path, env: Mapping[str, str] | None = None) -> int:
    """Start a server detached, its output going to ``log_file``; return its pid.

    A new session keeps the server alive after the starting command exits and out of the terminal's
    Ctrl-C; stdout goes to a file so no caller waits on an inherited pipe.
    """
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    children[proc.pid] = proc
    return proc.pid


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        log.warning("ignoring %s: %r is not a pid", pid_file, text)
        return None


def is_alive(pid: int) -> bool:
    child = children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # "pid (comm) S ...": a zombie has exited and only waits for its parent to reap it.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def command_line(pid: int) -> list[str] | None:
    """The arguments ``pid`` runs with; [] if it is gone, None where /proc cannot tell (macOS)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return []
    except OSError:
        return None
    return [part.decode(errors="replace") for part in cmdline]


def terminate(pid: int, timeout: float, what: str, error: type[Exception]) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; ``error`` if even that does not end it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_for_exit(pid, timeout):
        return
    log.warning("%s pid %d did not stop within %.0f s; killing it", what, pid, timeout)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_for_exit(pid, 10):
        raise error(f"{what} pid {pid} is still running after SIGKILL")


def wait_for_exit(pid: int, timeout: float) -> bool:
    child = children.get(pid)
    if child is not None:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        del children[pid]
        return True
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def port_is_free(port: int, error: type[Exception]) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return _can_listen(s, HOST, port, error)


def port_is_free_everywhere(port: int, error: type[Exception]) -> bool:
    """Whether ``port`` is free on every interface, for a server that cannot be told to listen on
    127.0.0.1 only and binds the wildcard address: a listener on any one address (127.0.0.1, ::1, a
    LAN address) would make its bind fail."""
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        s = None  # no IPv6 in this kernel
    if s is not None:
        with s:
            # Dual-stack "::" collides with IPv4 and IPv6 listeners alike, as Java's wildcard bind does.
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                return _can_listen(s, "::", port, error, unavailable=(errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT))
            except _Unavailable:
                pass  # IPv6 switched off: the IPv4 wildcard is all a server can bind
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return _can_listen(s, "0.0.0.0", port, error)  # noqa: S104 - a bind test, closed at once


class _Unavailable(Exception):
    """The address family cannot be bound on this machine."""


def _can_listen(
    s: socket.socket, host: str, port: int, error: type[Exception], unavailable: tuple[int, ...] = ()
) -> bool:
    # The servers bind with SO_REUSEADDR too: a port held only by TIME_WAIT connections is usable.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except PermissionError as exc:
        raise error(f"port {port} needs privileges to listen on; use a port above 1023") from exc
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        if exc.errno in unavailable:
            raise _Unavailable from exc
        raise error(f"cannot listen on {host}:{port}: {exc}") from exc
    return True


def accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex((HOST, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def other_free_port(previous: int | None, avoid: int, error: type[Exception]) -> int:
    """``previous`` if it is still free and not ``avoid``, else a new free port other than ``avoid``."""
    if previous is not None and previous != avoid and port_is_free(previous, error):
        return previous
    while True:
        port = free_port()
        if port != avoid:
            return port


def read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "!")) and "=" in line:
                key, _, value = line.partition("=")
                props[key.strip()] = value.strip()
    return props


def log_tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no {path.name})"
    return "\n".join(text[-lines:]) or f"({path.name} is empty)"
