"""Seconds per stage of a job run, for its JSON report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class StageTimer:
    """``lap(name)`` records the seconds since the previous lap (or since creation) under ``name``."""

    seconds: dict[str, float] = field(default_factory=dict)
    _start: float = field(default_factory=time.monotonic)

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._start, 3)
        self._start = now
