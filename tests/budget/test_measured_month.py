"""The measured month: one month of the default schedule's extractions against the sandbox, credits counted by
the sandbox beside the budget's prediction (issue "Orchestration": they must agree within 5 %).

A sandbox process serves the default universe (10,000 coins, 800 exchanges, 300 categories: the size the spec's
credits were measured on) on a frozen simulated clock, with a per-minute limit and a monthly quota so high that
neither throttles nor stops anything. The `init` group bootstraps an empty file lake on Monday 2026-11-30 (its
credits fall in November, the sandbox's calendar month). Then every scheduled firing of every group in December
2026, computed from the spec's schedules and merged in time order, runs the group's extractors in process with the
sandbox clock set to that instant and `run_many(..., clock=...)` stamping the snapshots with it. Groups firing in
the same minute run one after another, each a second after the previous one (distinct snapshot stamps).

At the end the sandbox's December usage (`GET /sandbox/usage`, current month at 2026-12-31) is compared with
`budget.plan(spec, 2026, 12, ...).total`; per job (extractor, group), the credits of the ledger's records are
printed beside the plan and written to `.local/measured-month.json` (MEASURED_MONTH_REPORT overrides the path).

    make measured-month      # .venv/bin/pytest -s tests/budget/test_measured_month.py
"""

from __future__ import annotations

import calendar
import json
import os
import statistics
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from cryptolake import budget, pipeline
from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.services.sandbox import DEFAULT_API_KEY
from tests.conftest import REPO, settings_for
from tests.sandbox_process import launch

YEAR, MONTH = 2026, 12
INIT_AT = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)  # a Monday, before the month measured
MONTH_END = datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)
TOLERANCE = 0.05
QUOTA = 10_000_000  # the sandbox's and the governor's: far above a month, so no job is skipped or stopped
REPORT = Path(os.environ.get("MEASURED_MONTH_REPORT", REPO / ".local" / "measured-month.json"))


def firings(spec: pipeline.Pipeline, year: int, month: int) -> list[tuple[datetime, str]]:
    """Every scheduled group run of the month, in time order (same minute: the spec's group order)."""
    order = list(spec.groups)
    runs = []
    for day in range(1, calendar.monthrange(year, month)[1] + 1):
        d = date(year, month, day)
        for name, group in spec.groups.items():
            schedule = group.schedule
            if schedule is None or pipeline.DAY_NAMES[d.weekday()] not in schedule.days:
                continue
            runs += [(datetime(year, month, day, at.hour, at.minute, tzinfo=timezone.utc), name)
                     for at in schedule.at]
    runs.sort(key=lambda run: (run[0], order.index(run[1])))
    staggered, previous = [], None
    for at, name in runs:  # a group firing in the minute another one did starts after it
        if previous is not None and at <= previous:
            at = previous + timedelta(seconds=1)
        staggered.append((at, name))
        previous = at
    return staggered


def test_firings_follow_the_schedules():
    """The simulation's calendar agrees with the spec's run counts (what the budget multiplies)."""
    spec = pipeline.default()
    runs = firings(spec, YEAR, MONTH)
    counts = defaultdict(int)
    for _, name in runs:
        counts[name] += 1
    expected = {name: g.schedule.runs_in(YEAR, MONTH) for name, g in spec.groups.items() if g.schedule}
    assert dict(counts) == expected
    assert [at for at, _ in runs] == sorted(at for at, _ in runs)
    assert len({at for at, _ in runs}) == len(runs)
    assert all(at.weekday() < 5 for at, _ in runs if _ != "weekly")


class Sandbox:
    def __init__(self, start: datetime):
        self.process, self.url, self.log = launch(
            "--clock", "simulated", "--start", start.isoformat(), "--rate", "0", "--rate-limit", "1000000",
            "--monthly-credits", str(QUOTA))

    def set_clock(self, ts: datetime) -> None:
        requests.post(f"{self.url}/sandbox/clock", json={"set": ts.isoformat()}, timeout=10).raise_for_status()

    def month_credits(self, at: datetime) -> int:
        """Credits the sandbox counted for our key in the calendar month of `at` (the clock is moved there)."""
        self.set_clock(at)
        usage = requests.get(f"{self.url}/sandbox/usage", timeout=10).json()
        return int(usage["keys"][DEFAULT_API_KEY]["usage"]["current_month"]["credits_used"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def sandbox():
    server = Sandbox(INIT_AT)
    yield server
    server.stop()


def per_job_credits(lake: Lake, since: datetime, until: datetime) -> dict[tuple[str, str], list[dict]]:
    """(extractor, group) -> its runs in [since, until): credits, status, full scan or not (from the ledger)."""
    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in Ledger(lake).records():
        if record.step != "extract" or not since <= record.started_at < until:
            continue
        group = record.details["job"]["group"]
        runs[(record.name, group)].append({"at": record.started_at.isoformat(), "credits": record.credits,
                                           "status": record.status,
                                           "full_scan": bool(record.details.get("full_scan"))})
    return runs


def table(plan: budget.Plan, measured: dict[tuple[str, str], list[dict]]) -> list[dict]:
    rows = []
    for line in plan.lines:
        runs = measured.get((line.extractor, line.group), [])
        regular = [r["credits"] for r in runs if not r["full_scan"]]
        full = [r["credits"] for r in runs if r["full_scan"]]
        rows.append({
            "extractor": line.extractor, "group": line.group,
            "runs_predicted": line.runs, "runs_measured": len(runs),
            "full_scans_predicted": line.full_scans, "full_scans_measured": len(full),
            "credits_per_run_spec": line.credits_per_run, "full_scan_credits_spec": line.full_scan_credits,
            "credits_per_run_measured": {"min": min(regular), "median": statistics.median(regular),
                                         "mean": round(statistics.mean(regular), 2), "max": max(regular)}
            if regular else None,
            "full_scan_credits_measured": full,
            "credits_predicted": line.credits, "credits_measured": sum(r["credits"] for r in runs),
        })
    return rows


def render(rows: list[dict], plan_total: int, sandbox_total: int, ledger_total: int) -> str:
    head = (f"{'extractor':<24}{'group':<8}{'runs':>9}{'spec/run':>10}{'meas/run (min-med-max)':>24}"
            f"{'full scans':>22}{'predicted':>11}{'measured':>10}{'diff':>8}")
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: -r["credits_predicted"]):
        per = r["credits_per_run_measured"]
        per_text = f"{per['min']}-{per['median']:g}-{per['max']}" if per else "-"
        spec_run = str(r["credits_per_run_spec"])
        full = (f"{r['full_scans_measured']}x{r['full_scan_credits_measured']} (spec "
                f"{r['full_scans_predicted']}x{r['full_scan_credits_spec']})" if r["full_scan_credits_spec"] is not None
                else "")
        diff = (f"{(r['credits_measured'] - r['credits_predicted']) / r['credits_predicted']:+.0%}"
                if r["credits_predicted"] else "")
        lines.append(f"{r['extractor']:<24}{r['group']:<8}{r['runs_measured']:>4}/{r['runs_predicted']:<4}"
                     f"{spec_run:>10}{per_text:>24}{full:>22}{r['credits_predicted']:>11}{r['credits_measured']:>10}"
                     f"{diff:>8}")
    lines.append("-" * len(head))
    lines.append(f"{'total':<32}{'':>9}{'':>10}{'':>24}{'':>22}{plan_total:>11}{ledger_total:>10}"
                 f"{(ledger_total - plan_total) / plan_total:>+8.1%}")
    lines.append(f"sandbox counted {sandbox_total} credits in {YEAR}-{MONTH:02d}; the ledger's records add up to "
                 f"{ledger_total}; the budget predicts {plan_total}")
    return "\n".join(lines)


def test_a_month_of_the_default_schedule_costs_what_the_budget_predicts(sandbox, tmp_path):
    from cryptolake.services.extract.registry import group as jobs_of
    from cryptolake.services.extract.runner import run_many

    started = time.monotonic()
    spec = pipeline.default()
    settings = settings_for((tmp_path / "lake").as_uri(), {
        "CMC_API_KEY": DEFAULT_API_KEY, "CMC_BASE_URL": sandbox.url, "CMC_RATE_LIMIT": "1000000",
        "CMC_MONTHLY_CREDITS": str(QUOTA)})
    lake = Lake.from_settings(settings)
    plan = budget.plan(spec, YEAR, MONTH, settings.cmc_monthly_credits, settings.cmc_credit_margin)

    code = run_many(jobs_of("init"), settings, clock=lambda: INIT_AT)
    assert code == 0, f"init at {INIT_AT} exited {code}"
    init_seconds = time.monotonic() - started
    month_start = datetime(YEAR, MONTH, 1, tzinfo=timezone.utc)
    init_ledger = sum(r["credits"] for runs in per_job_credits(lake, INIT_AT, month_start).values() for r in runs)
    assert sandbox.month_credits(INIT_AT) == init_ledger  # init's credits are November's, to the credit

    seconds_per_group: dict[str, list[float]] = defaultdict(list)
    for at, name in firings(spec, YEAR, MONTH):
        sandbox.set_clock(at)
        began = time.monotonic()
        code = run_many(jobs_of(name), settings, clock=lambda at=at: at)
        seconds_per_group[name].append(time.monotonic() - began)
        assert code == 0, f"group {name} at {at.isoformat()} exited {code}"

    sandbox_total = sandbox.month_credits(MONTH_END)
    measured = per_job_credits(lake, month_start, MONTH_END)
    ledger_total = sum(r["credits"] for runs in measured.values() for r in runs)
    rows = table(plan, measured)
    unplanned = sorted(set(measured) - {(line.extractor, line.group) for line in plan.lines})

    report = {
        "month": plan.label, "budget_total": plan.total, "sandbox_credits": sandbox_total,
        "ledger_credits": ledger_total, "relative_difference": round((sandbox_total - plan.total) / plan.total, 4),
        "init": {"credits": init_ledger, "spec_init_credits": budget.init_credits(spec),
                 "seconds": round(init_seconds, 1)},
        "seconds": {"total": round(time.monotonic() - started, 1),
                    "per_group": {g: {"runs": len(s), "total": round(sum(s), 1),
                                      "median": round(statistics.median(s), 3)} for g, s in seconds_per_group.items()}},
        "jobs": rows, "runs": {f"{e}/{g}": runs for (e, g), runs in sorted(measured.items())},
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    print()
    print(render(rows, plan.total, sandbox_total, ledger_total))
    groups = ", ".join(f"{g} {v['total']}s for {v['runs']} runs" for g, v in report["seconds"]["per_group"].items())
    print(f"init: {init_ledger} credits (spec: {budget.init_credits(spec)}) in {report['init']['seconds']}s; "
          f"run time {report['seconds']['total']}s ({groups}); report in {REPORT}")

    assert not unplanned, f"jobs ran that the plan does not price: {unplanned}"
    assert all(r["runs_measured"] == r["runs_predicted"] for r in rows), "a job ran a different number of times"
    assert ledger_total == sandbox_total, "the ledger's credits must be what the sandbox counted"
    assert abs(sandbox_total - plan.total) <= TOLERANCE * plan.total, (
        f"the sandbox counted {sandbox_total} credits in {plan.label}, the budget predicts {plan.total} "
        f"({(sandbox_total - plan.total) / plan.total:+.1%}; tolerance {TOLERANCE:.0%})")
