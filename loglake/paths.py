"""Checks of the folders a job will write, made before Spark starts, so a bad path is one clear line.

Spark and Hudi report a table path that is a file, lies under a file, or sits on a read-only volume
only deep inside a failed micro-batch, as a page of Java stack trace. Local paths (no scheme, or
``file:``) are checked here by creating and removing a probe file in the nearest existing folder;
remote stores (``s3a://``, ``hdfs://``) are left to the job, which cannot check them without Spark.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from loglake.errors import ConfigError


def local_path(path: str) -> Path | None:
    """The local file-system path of ``path``, or None for a remote store."""
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
        return Path(path)
    if "://" in path:
        return None
    return Path(path)


def check_writable(folders: Iterable[tuple[str, str]]) -> None:
    """Raise :class:`ConfigError` naming the setting whose folder cannot be written.

    ``folders`` are (setting name, path) pairs; a folder that does not exist yet must be creatable.
    """
    for setting, path in folders:
        local = local_path(path)
        if local is None:
            continue
        if local.exists() and not local.is_dir():
            raise ConfigError(f"setting {setting}={path} is a file, not a folder; give a folder path")
        existing = local
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"setting {setting}={path} lies under {existing}, which is a file; give a folder path")
        try:
            fd, probe = tempfile.mkstemp(prefix=".loglake-write-check-", dir=existing)
        except OSError as exc:
            reason = {
                errno.EROFS: "is on a read-only file system",
                errno.EACCES: "is not writable (permission denied)",
                errno.EPERM: "is not writable (operation not permitted)",
                errno.ENOSPC: "has no space left on its device",
                errno.EDQUOT: "is over its disk quota",
            }.get(exc.errno or 0, f"cannot be written ({exc.strerror})")
            where = "" if existing == local else f" (its nearest existing folder {existing} {reason})"
            raise ConfigError(
                f"setting {setting}={path} {reason if not where else 'cannot be created'}{where}"
            ) from None
        os.close(fd)
        os.unlink(probe)
