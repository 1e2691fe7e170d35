"""`cryptolake budget`: the month's credit plan of the pipeline spec, its margin against the quota, and the
freshness it buys.

A month is a calendar month, like the API's quota. Runs are counted from each group's schedule; a job with
`full_scan_credits` pays that on every `runs_per_full_scan`-th run (rounded up: the plan never under-counts).
Without `--month`, the plan is for the busiest of the next twelve months, so a margin that holds there holds
in every month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from cryptolake.pipeline import ExtractJob, Pipeline


@dataclass(frozen=True)
class JobLine:
    extractor: str
    group: str
    runs: int
    full_scans: int
    credits_per_run: int
    full_scan_credits: int | None
    credits: int


@dataclass(frozen=True)
class Plan:
    year: int
    month: int
    quota: int
    min_margin: float
    lines: tuple[JobLine, ...]

    @property
    def total(self) -> int:
        return sum(line.credits for line in self.lines)

    @property
    def margin(self) -> float:
        """The share of the quota left unused."""
        return 1 - self.total / self.quota

    @property
    def ok(self) -> bool:
        return self.margin >= self.min_margin

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def job_line(spec: Pipeline, job: ExtractJob, year: int, month: int) -> JobLine:
    schedule = spec.groups[job.group].schedule
    runs = schedule.runs_in(year, month) if schedule else 0
    full_scans = math.ceil(runs / job.runs_per_full_scan(schedule)) if job.full_scan_credits is not None else 0
    credits = (runs - full_scans) * job.credits + full_scans * (job.full_scan_credits or 0)
    return JobLine(job.extractor, job.group, runs, full_scans, job.credits, job.full_scan_credits, credits)


def plan(spec: Pipeline, year: int, month: int, quota: int, min_margin: float) -> Plan:
    """Every scheduled job's credits in that month (init runs on demand and is priced apart: `init_credits`)."""
    lines = tuple(job_line(spec, job, year, month) for job in spec.jobs if spec.groups[job.group].schedule)
    return Plan(year, month, quota, min_margin, lines)


def busiest_month(spec: Pipeline, today: date, quota: int, min_margin: float) -> Plan:
    months = [((today.year * 12 + today.month - 1 + k) // 12, (today.month - 1 + k) % 12 + 1) for k in range(12)]
    return max((plan(spec, y, m, quota, min_margin) for y, m in months), key=lambda p: (p.total, -p.year, -p.month))


def init_credits(spec: Pipeline) -> int:
    return sum(job.credits for job in spec.extract_jobs("init"))


def freshness(spec: Pipeline) -> dict[str, str]:
    """How often each silver/warehouse table is refreshed: the scheduled groups that rebuild it."""
    from cryptolake.spark_apps.transform.tables import TABLE_LIST

    result = {}
    for table in TABLE_LIST:
        parts = []
        for name in table.groups:
            group = spec.groups.get(name)
            if group is None or group.schedule is None:
                continue
            schedule = group.schedule
            days = "weekday" if schedule.days == ("mon", "tue", "wed", "thu", "fri") else "/".join(schedule.days)
            times = ", ".join(t.strftime("%H:%M") for t in schedule.at)
            parts.append(f"{len(schedule.at)}x per {days} ({name}: {times} UTC)")
        result[table.name] = "; ".join(parts) or "on demand only (init)"
    return result


def as_dict(result: Plan, spec: Pipeline) -> dict:
    return {
        "month": result.label, "quota": result.quota, "total": result.total, "margin": round(result.margin, 4),
        "min_margin": result.min_margin, "ok": result.ok, "init_credits": init_credits(spec),
        "jobs": [line.__dict__ for line in result.lines], "freshness": freshness(spec),
    }


def render(result: Plan, spec: Pipeline, busiest: bool) -> list[str]:
    which = " (the busiest of the next twelve months)" if busiest else ""
    lines = [f"Monthly credit plan for {result.label}{which}, from {spec.source}", "",
             f"{'job':<24} {'group':<7} {'runs':>5} {'credits/run':>14} {'credits':>8}"]
    for line in sorted(result.lines, key=lambda item: -item.credits):
        per_run = (f"{line.credits_per_run}+{line.full_scans}x{line.full_scan_credits}" if line.full_scans
                   else str(line.credits_per_run))
        lines.append(f"{line.extractor:<24} {line.group:<7} {line.runs:>5} {per_run:>14} {line.credits:>8}")
    lines.append(f"{'total':<24} {'':<7} {sum(l.runs for l in result.lines):>5} {'':>14} {result.total:>8}")
    verdict = "ok" if result.ok else "BELOW THE MINIMUM"
    lines += ["", f"quota {result.quota} credits (CMC_MONTHLY_CREDITS); margin {result.quota - result.total} "
                  f"credits = {result.margin:.1%} of the quota, minimum {result.min_margin:.0%} "
                  f"(CMC_CREDIT_MARGIN): {verdict}",
              f"init (on demand, once to bootstrap) costs about {init_credits(spec)} credits more",
              "", "freshness (warehouse table: refreshes)"]
    lines += [f"  {table:<22} {text}" for table, text in freshness(spec).items()]
    return lines
