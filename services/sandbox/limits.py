"""Plan, credit accounting and rate limits, by the real rules.

Credits are counted per UTC day and calendar month (the free plan resets at UTC midnight and month start);
requests per clock minute (the window resets every 60 s). Errors cost nothing; /v1/key/info costs nothing but
counts toward the minute. All windows follow the sandbox clock, so a simulated month ends when its clock says so.
Usage can be kept in a file so that a restart does not hand out a fresh month of credits.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptolake.services.sandbox.api import ApiError
from cryptolake.services.sandbox.clock import iso


@dataclass(frozen=True)
class Plan:
    """Defaults are the free Basic plan."""

    credit_limit_monthly: int = 10_000
    rate_limit_minute: int = 30
    credit_limit_daily: int | None = None   # the free plan has no daily cap
    max_convert: int = 1


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def _month(ts: float) -> str:
    return _day(ts)[:7]


def _next_day(ts: float) -> float:
    d = datetime.fromtimestamp(ts, timezone.utc)
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp() + 86400


def _next_month(ts: float) -> float:
    d = datetime.fromtimestamp(ts, timezone.utc)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return datetime(year, month, 1, tzinfo=timezone.utc).timestamp()


def _humanize(seconds: float) -> str:
    """"In 2 days, 13 hours, 38 minutes", as /v1/key/info words the time to a reset."""
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in ((days, "day"), (hours, "hour"), (mins, "minute"))
             if n]
    return "In " + ", ".join(parts or ["0 minutes"])


class Usage:
    """Per-key counters: requests in the current minute, credits per day and per month."""

    def __init__(self, plan: Plan, path: Path | None = None):
        self.plan = plan
        self.path = path
        self._lock = threading.Lock()
        self._minute: dict[str, tuple[int, int]] = {}
        self._days: dict[str, dict[str, int]] = {}
        self._months: dict[str, dict[str, int]] = {}
        if path and path.exists():
            saved = json.loads(path.read_text())
            self._days, self._months = saved.get("days", {}), saved.get("months", {})

    def admit(self, key: str, now: float, quota_exempt: bool = False) -> None:
        """Count one request against the minute window; raise the 429 the real API would answer instead."""
        minute = int(now // 60)
        with self._lock:
            window, count = self._minute.get(key, (minute, 0))
            if window != minute:
                count = 0
            if count >= self.plan.rate_limit_minute:
                raise ApiError(1008)
            self._minute[key] = (minute, count + 1)
            if quota_exempt:
                return
            if self.plan.credit_limit_daily is not None and \
                    self._days.get(key, {}).get(_day(now), 0) >= self.plan.credit_limit_daily:
                raise ApiError(1009)
            if self._months.get(key, {}).get(_month(now), 0) >= self.plan.credit_limit_monthly:
                raise ApiError(1010)

    def charge(self, key: str, now: float, credits: int) -> None:
        if credits <= 0:
            return
        with self._lock:
            days = self._days.setdefault(key, {})
            days[_day(now)] = days.get(_day(now), 0) + credits
            months = self._months.setdefault(key, {})
            months[_month(now)] = months.get(_month(now), 0) + credits
            self._save()

    def retry_after(self, now: float) -> int:
        """Seconds until the minute window resets."""
        return max(1, 60 - int(now % 60))

    def reset(self) -> None:
        with self._lock:
            self._minute.clear(), self._days.clear(), self._months.clear()
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"days": self._days, "months": self._months}))
        os.replace(tmp, self.path)

    def key_info(self, key: str, now: float) -> dict:
        """The data of /v1/key/info; the minute counters leave out the call being answered."""
        plan = self.plan
        with self._lock:
            window, count = self._minute.get(key, (int(now // 60), 0))
            made = max(0, count - 1) if window == int(now // 60) else 0
            day_used = self._days.get(key, {}).get(_day(now), 0)
            month_used = self._months.get(key, {}).get(_month(now), 0)
        info_plan: dict = {}
        current_day: dict = {"credits_used": day_used}
        if plan.credit_limit_daily is not None:
            info_plan = {"credit_limit_daily": plan.credit_limit_daily,
                         "credit_limit_daily_reset": _humanize(_next_day(now) - now),
                         "credit_limit_daily_reset_timestamp": iso(_next_day(now))}
            current_day["credits_left"] = max(0, plan.credit_limit_daily - day_used)
        info_plan.update({"credit_limit_monthly": plan.credit_limit_monthly,
                          "credit_limit_monthly_reset": _humanize(_next_month(now) - now),
                          "credit_limit_monthly_reset_timestamp": iso(_next_month(now)),
                          "rate_limit_minute": plan.rate_limit_minute})
        return {"plan": info_plan, "usage": {
            "current_minute": {"requests_made": made, "requests_left": max(0, plan.rate_limit_minute - made)},
            "current_day": current_day,
            "current_month": {"credits_used": month_used,
                              "credits_left": max(0, plan.credit_limit_monthly - month_used)}}}
