"""The archive cache: concurrent callers wait for one fetch instead of downloading beside it."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import pytest

from loglake import jars


def test_a_second_caller_waits_for_the_fetch_under_way_and_does_not_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGLAKE_HOME", str(tmp_path))
    name = "absent-1"
    # No such artifact anywhere: a caller that did not wait would run Maven and fail.
    coordinate = "loglake.test:absent:1:tar.gz"
    results: list[object] = []

    def call() -> None:
        try:
            results.append(jars.resolve_archive(coordinate, name))
        except Exception as exc:
            results.append(exc)

    with (tmp_path / f".{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a fetch under way, as another process holds it
        waiting = threading.Thread(target=call)
        waiting.start()
        waiting.join(timeout=2)
        assert waiting.is_alive() and results == []
        (tmp_path / name).mkdir()
        (tmp_path / name / ".complete").write_text(coordinate)  # that fetch finishes
    waiting.join(timeout=30)

    assert results == [tmp_path / name]
