"""Bronze for the transform tests: several simulated days extracted from the real sandbox API.

A sandbox process on a simulated clock serves a small market; the real extraction runner (`run_many`) fetches
it group by group on the schedule of the original DAGs (init, then daily 09:00, 5x at 09/13/17h, 10x at
09/13h, weekly on Mondays), with weekend gaps. The runner is given the simulated time as its clock, so each
snapshot is stamped with the sandbox's time.

The bronze is built once per session into a master lake; tests copy the days they need into their own lake
(`copy_bronze`), so each test starts from bronze exactly as the extraction wrote it, with no silver.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from cryptolake.lake import Lake
from cryptolake.services.sandbox import DEFAULT_API_KEY
from tests.conftest import settings_for
from tests.sandbox_process import launch

FIRST_DAY = date(2026, 11, 2)  # a Monday
# Mon..Fri, then Mon, Tue: a weekend gap, like the weekday-only DAGs
DAYS = [FIRST_DAY + timedelta(days=n) for n in (0, 1, 2, 3, 4, 7, 8)]
SANDBOX_FLAGS = ("--seed", "11", "--coins", "60", "--exchanges", "12", "--categories", "19")
EXTRACT_ENV = {"CMC_API_KEY": DEFAULT_API_KEY, "CMC_RATE_LIMIT": "100000", "CMC_LISTINGS_LIMIT": "30",
               "CMC_CATEGORY_SLICE": "3"}


@dataclass
class Sandbox:
    url: str
    process: subprocess.Popen

    def set_clock(self, ts: datetime) -> None:
        requests.post(f"{self.url}/sandbox/clock", json={"set": ts.isoformat()}, timeout=10).raise_for_status()

    def now(self) -> datetime:
        answer = requests.get(f"{self.url}/sandbox/clock", timeout=10).json()
        return datetime.fromisoformat(answer["now"].replace("Z", "+00:00"))


def start_sandbox(start: datetime) -> Sandbox:
    process, url, _ = launch(*SANDBOX_FLAGS, "--clock", "simulated", "--start", start.isoformat(), "--rate", "0",
                             "--rate-limit", "100000", "--monthly-credits", "1000000")
    return Sandbox(url, process)


def schedule(day: date) -> list[tuple[datetime, tuple[str, ...]]]:
    """(time, groups) of one day, as the original DAGs ran them (init once, on the first day)."""
    at = lambda h: datetime(day.year, day.month, day.day, h, tzinfo=timezone.utc)  # noqa: E731
    runs = []
    if day == FIRST_DAY:
        runs.append((at(8), ("init",)))
    elif day.weekday() == 0:
        runs.append((at(8), ("weekly",)))
    runs += [(at(9), ("daily", "5x", "10x")), (at(13), ("5x", "10x")), (at(17), ("5x",))]
    return runs


def extract_days(sandbox: Sandbox, lake_uri: str, days: list[date]) -> None:
    from cryptolake.services.extract.registry import group
    from cryptolake.services.extract.runner import run_many

    settings = settings_for(lake_uri, {**EXTRACT_ENV, "CMC_BASE_URL": sandbox.url})
    for day in days:
        for at, groups in schedule(day):
            chosen = list({j.extractor.name: j for g in groups for j in group(g)}.values())
            sandbox.set_clock(at)
            code = run_many(chosen, settings, clock=lambda at=at: at)  # snapshots stamped with simulated time
            assert code == 0, f"extraction of {groups} at {at} exited {code}"


def copy_bronze(master: Path, target: Path, until: date) -> None:
    """Bronze files and extract ledger records of the days up to `until` (inclusive)."""
    for root in ("bronze", "_meta/extract"):
        for path in sorted((master / root).rglob("*")):
            if not path.is_file():
                continue
            day = (date.fromisoformat(path.parent.name.split("=")[1]) if root == "bronze"
                   else datetime.strptime(path.name[:8], "%Y%m%d").date())
            if day <= until:
                dest = target / path.relative_to(master)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)


@pytest.fixture(scope="session")
def sandbox_bronze(tmp_path_factory) -> Path:
    """A master file lake with DAYS of sandbox bronze (built once per test session)."""
    root = tmp_path_factory.mktemp("sandbox-bronze") / "lake"
    sandbox = start_sandbox(datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, 8, tzinfo=timezone.utc))
    try:
        extract_days(sandbox, root.as_uri(), DAYS)
    finally:
        sandbox.process.terminate()
        sandbox.process.wait(10)
    return root


def file_lake_at(path: Path) -> Lake:
    return Lake.from_settings(settings_for(path.as_uri(), {}))
