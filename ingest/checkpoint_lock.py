"""One stream per checkpoint: a lock file beside the checkpoint folder, held while the stream runs.

Two streams on one checkpoint interleave their offset and commit logs and corrupt it; Spark only
notices late, with a ``ConcurrentModificationException`` deep in a batch. The lock is taken before
Spark starts and names its holder (process, host, start time), so the second stream is refused at
once with that name. It is an OS file lock (``flock``): the kernel releases it when the holder
dies, even by SIGKILL, so a crash never leaves a stale lock behind.

Checkpoints on a remote store (``s3a://``) are not locked here: there the stream runs as one
cluster application, and a store without atomic create-if-absent cannot hold a lock for it.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from loglake.errors import CheckpointInUseError
from loglake.paths import local_path

LOCK_SUFFIX = ".lock"


def lock_file(checkpoint_dir: str) -> str | None:
    """Where the lock of ``checkpoint_dir`` lives (beside it: Spark owns the folder), None if remote."""
    local = local_path(checkpoint_dir.rstrip("/"))
    return None if local is None else str(local.parent / f"{local.name}{LOCK_SUFFIX}")


@contextmanager
def hold(checkpoint_dir: str) -> Iterator[None]:
    """Hold the checkpoint's lock for the duration of the block.

    Raises:
        CheckpointInUseError: another live process holds it; the message names that process.
    """
    path = lock_file(checkpoint_dir)
    if path is None:
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip() or "a process"
            raise CheckpointInUseError(
                f"ingest.checkpoint_dir={checkpoint_dir} is in use by another stream ({holder}, lock {path}); "
                "stop that stream first, or give this one its own ingest.checkpoint_dir: two streams on "
                "one checkpoint corrupt it"
            ) from None
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
