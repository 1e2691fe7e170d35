"""The sandbox's notion of "now": wall time, or a simulated clock that tests and demos can set, advance or speed up.

Everything time-dependent (market state, credit windows, the status timestamp and `elapsed`) reads this clock,
so a month of snapshots can be produced in minutes and a frozen clock (rate 0) gives byte-identical answers.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


def parse_time(value: str) -> float:
    """ISO-8601 (a missing zone means UTC, as in the API's own conventions) or unix seconds."""
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def iso(ts: float) -> str:
    """The API's timestamp format: UTC with milliseconds, e.g. 2022-12-24T00:50:32.600Z."""
    ms = int(round(ts * 1000))
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


class Clock:
    """Wall time, or simulated time = anchor + elapsed wall time x rate (rate 0 freezes it)."""

    def __init__(self, mode: str = "wall", start: float | None = None, rate: float = 1.0):
        if mode not in ("wall", "simulated"):
            raise ValueError(f"clock mode must be wall or simulated, not {mode!r}")
        if rate < 0:
            raise ValueError("clock rate must not be negative")
        self.mode = mode
        self._lock = threading.Lock()
        self._anchor_sim = time.time() if start is None else start
        self._anchor_wall = time.monotonic()
        self._rate = rate if mode == "simulated" else 1.0

    @property
    def rate(self) -> float:
        return self._rate

    def now(self) -> float:
        if self.mode == "wall":
            return time.time()
        with self._lock:
            return self._anchor_sim + (time.monotonic() - self._anchor_wall) * self._rate

    def elapsed_ms(self, wall_seconds: float) -> int:
        """A duration measured on the wall, as this clock sees it (what `status.elapsed` reports)."""
        return int(round(wall_seconds * 1000 * self._rate))

    def _require_simulated(self) -> None:
        if self.mode != "simulated":
            raise ValueError("the clock is wall time; start the sandbox with --clock simulated to control it")

    def set(self, ts: float) -> None:
        self._require_simulated()
        with self._lock:
            self._anchor_sim, self._anchor_wall = ts, time.monotonic()

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)

    def set_rate(self, rate: float) -> None:
        self._require_simulated()
        if rate < 0:
            raise ValueError("clock rate must not be negative")
        now = self.now()
        with self._lock:
            self._anchor_sim, self._anchor_wall, self._rate = now, time.monotonic(), rate

    def describe(self) -> dict:
        return {"mode": self.mode, "now": iso(self.now()), "rate": self._rate}
