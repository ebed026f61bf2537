"""Retrying a Hudi commit that lost an optimistic-concurrency conflict to another writer."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from loglake.errors import WriteConflictError

log = logging.getLogger(__name__)

T = TypeVar("T")

# The Java exception Hudi raises when a commit overlaps one that completed since it started.
CONFLICT_MARKERS = ("HoodieWriteConflictException", "Cannot resolve conflicts for overlapping writes")


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (usually a Py4JJavaError) is Hudi's write-conflict failure."""
    text = str(exc)
    return any(marker in text for marker in CONFLICT_MARKERS)


def on_conflict(
    action: Callable[[], T],
    *,
    what: str,
    attempts: int,
    base_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; when it loses a write conflict, wait and run it again, ``attempts`` times in all.

    A conflicting commit is left inflight and rolled back by the cleaner (lazy failed-writes
    policy), so running the same write again under a new instant is safe. Other errors propagate.

    Raises:
        WriteConflictError: every attempt lost a conflict (names ``what`` and the count).
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if not is_conflict(exc):
                raise
            if attempt == attempts:
                raise WriteConflictError(
                    f"{what}: lost a write conflict {attempts} times in a row; raise table.conflict_retries "
                    "or look for a writer that rewrites the same file groups continuously"
                ) from None
            # Jitter keeps two writers that conflicted from colliding again in lock-step.
            delay = base_delay * attempt * (0.5 + random.random())  # noqa: S311 - not cryptographic
            log.warning(
                "%s: write conflict with another writer (attempt %d/%d), retrying in %.1f s",
                what,
                attempt,
                attempts,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")
