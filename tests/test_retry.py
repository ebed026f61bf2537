"""Retry of a commit that lost a write conflict (pure Python; the real conflict is in test_gdpr_concurrency)."""

from __future__ import annotations

import pytest

from loglake.errors import WriteConflictError
from loglake.retry import is_conflict, on_conflict

CONFLICT = RuntimeError(
    "An error occurred while calling o123.save.\n: org.apache.hudi.exception.HoodieWriteConflictException: "
    "java.util.ConcurrentModificationException: Cannot resolve conflicts for overlapping writes"
)


def test_conflict_is_retried_until_the_write_succeeds() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def write() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise CONFLICT
        return "committed"

    assert on_conflict(write, what="batch 7", attempts=5, sleep=waits.append) == "committed"
    assert len(calls) == 3
    assert len(waits) == 2 and all(w > 0 for w in waits)


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def write() -> None:
        calls.append(1)
        raise RuntimeError("java.io.FileNotFoundException: /lake/logs/.hoodie")

    with pytest.raises(RuntimeError, match="FileNotFound"):
        on_conflict(write, what="batch 7", attempts=5, sleep=lambda _: None)
    assert len(calls) == 1


def test_giving_up_names_the_write_and_the_setting() -> None:
    def write() -> None:
        raise CONFLICT

    with pytest.raises(WriteConflictError, match=r"batch 7.*3 times.*table\.conflict_retries"):
        on_conflict(write, what="batch 7", attempts=3, sleep=lambda _: None)
    assert is_conflict(CONFLICT) and not is_conflict(ValueError("x"))
