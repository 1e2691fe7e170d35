"""`cryptolake status`: per warehouse table, its freshness against the schedule, the outcome of the latest
extract, transform and load runs, rejected and quarantined rows; and the credits used this month against the
plan. A probe: `healthy` is false (exit status 3) when any table is stale, failing or never loaded.

Rules (docs/status.md):
- A table's due time is the latest scheduled run (pipeline spec, UTC) of any group that refreshes it, at or
  before now - GRACE (a run needs time to land). The table is STALE when it was last refreshed before that
  time. Refreshed = the newest of its load watermark (meta.load_watermark.loaded_at) and its newest load run
  that succeeded or found nothing new (skipped: the table was checked up to date). Tables refreshed by init
  only are never stale once loaded.
- FAILING: the latest run of one of its steps failed: an extract of one of its sources (failed or partial:
  something could not be fetched), its transform or its load.
- NEVER: no watermark and no row in its dw table.
A shown run whose ledger record came late (spooled while the lake could not take it, written by a later run)
is listed under "recorded late".
Credits and quarantined rows count the ledger's runs started in the current calendar month (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptolake import budget
from cryptolake.errors import CryptolakeError
from cryptolake.ledger import STATUSES, Ledger, RunRecord
from cryptolake.pipeline import DAY_NAMES, Pipeline, Schedule

GRACE = timedelta(hours=2)  # how long after a scheduled run its data may take to reach the warehouse
UNHEALTHY_EXIT = 3
OK, STALE, FAILING, NEVER = "OK", "STALE", "FAILING", "NEVER"
REFRESHED = ("success", "skipped")  # load outcomes that leave the table up to date
FAILED = {"extract": ("failed", "partial"), "transform": ("failed", "partial"), "load": ("failed", "partial")}
_WORST = ("failed", "partial", "skipped", "success")  # the order a step's several runs are summarised in


def latest_scheduled(schedule: Schedule, at_or_before: datetime) -> datetime | None:
    """The latest run time of the schedule at or before the given moment (UTC); None if it has none within a
    week (a schedule has at least one run a week)."""
    at_or_before = at_or_before.astimezone(timezone.utc)
    for back in range(8):
        day = at_or_before.date() - timedelta(days=back)
        if DAY_NAMES[day.weekday()] not in schedule.days:
            continue
        for at in reversed(schedule.at):
            moment = datetime.combine(day, at, tzinfo=timezone.utc)
            if moment <= at_or_before:
                return moment
    return None


def due_since(spec: Pipeline, groups: tuple[str, ...], now: datetime) -> datetime | None:
    """The scheduled run a table must reflect by now: the latest of its refreshing groups' runs at or before
    now - GRACE. None: only init (on demand) refreshes it."""
    times = [latest_scheduled(spec.groups[g].schedule, now - GRACE) for g in groups
             if g in spec.groups and spec.groups[g].schedule is not None]
    times = [t for t in times if t is not None]
    return max(times) if times else None


@dataclass
class StepRun:
    name: str
    status: str
    run_id: str
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    late: dict[str, str] | None = None  # the record came late: spooled {at, reason} (ledger.Ledger._spool)

    @classmethod
    def of(cls, record: RunRecord) -> "StepRun":
        error = record.error or record.details.get("stopped") or record.details.get("skip_reason")
        return cls(record.name, record.status, record.run_id, record.started_at, record.ended_at, error,
                   record.details.get("spooled"))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "run_id": self.run_id,
                "started_at": _iso(self.started_at), "ended_at": _iso(self.ended_at), "error": self.error,
                "recorded_late": self.late}


@dataclass
class TableStatus:
    table: str
    groups: tuple[str, ...]
    state: str
    refreshed_at: datetime | None
    latest_snapshot: datetime | None
    due_since: datetime | None
    runs: dict[str, list[StepRun]]  # step -> latest run of each job (extract: one per source)
    rejected: int
    quarantined: int
    problems: list[str] = field(default_factory=list)

    def outcome(self, step: str) -> str:
        statuses = [r.status for r in self.runs[step]]
        return next((s for s in _WORST if s in statuses), "-")

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {"table": self.table, "state": self.state, "groups": list(self.groups),
                "refreshed_at": _iso(self.refreshed_at), "latest_snapshot": _iso(self.latest_snapshot),
                "age_hours": (None if self.refreshed_at is None
                              else round((now - self.refreshed_at) / timedelta(hours=1), 2)),
                "due_since": _iso(self.due_since),
                "runs": {step: [r.as_dict() for r in runs] for step, runs in self.runs.items()},
                "rejected": self.rejected, "quarantined": self.quarantined, "problems": self.problems}


@dataclass
class Credits:
    month: str
    used: int
    planned: int
    quota: int

    def as_dict(self) -> dict[str, Any]:
        return {"month": self.month, "used": self.used, "planned": self.planned, "quota": self.quota,
                "share_of_plan": round(self.used / self.planned, 4) if self.planned else None,
                "share_of_quota": round(self.used / self.quota, 4) if self.quota else None}


@dataclass
class Status:
    now: datetime
    credits: Credits
    tables: list[TableStatus]

    @property
    def healthy(self) -> bool:
        return all(t.state == OK for t in self.tables)

    @property
    def empty(self) -> bool:
        return all(t.state == NEVER and not any(t.runs.values()) for t in self.tables)

    @property
    def verdict(self) -> str:
        if self.empty:
            return "NOT OK: nothing loaded yet: run `cryptolake demo` (local) or the init DAG, then the groups"
        if self.healthy:
            return f"OK: {len(self.tables)} tables fresh, no failing run"
        parts = [f"{len(names)} {state.lower()} ({', '.join(names)})" for state in (FAILING, STALE, NEVER)
                 if (names := [t.table for t in self.tables if t.state == state])]
        return "NOT OK: " + "; ".join(parts)

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else UNHEALTHY_EXIT

    def as_dict(self) -> dict[str, Any]:
        return {"now": _iso(self.now), "healthy": self.healthy, "verdict": self.verdict,
                "grace_hours": GRACE / timedelta(hours=1), "credits": self.credits.as_dict(),
                "tables": [t.as_dict(self.now) for t in self.tables]}


# -- gathering -------------------------------------------------------------------------------------------------
def collect(spec: Pipeline, ledger: Ledger, engine, now: datetime, quota: int, min_margin: float) -> Status:
    """Everything `status` shows, read from the ledger and the warehouse (no Spark)."""
    from cryptolake.spark_apps.transform.tables import TABLE_LIST

    now = now.astimezone(timezone.utc)
    month_start = datetime(now.year, now.month, 1, tzinfo=timezone.utc)
    warehouse = _read_warehouse(engine, [t.name for t in TABLE_LIST])
    latest_extract = {}
    for table in TABLE_LIST:
        for source in table.sources:
            if source not in latest_extract:
                latest_extract[source] = ledger.latest("extract", source, STATUSES)
    tables = []
    for table in TABLE_LIST:
        runs = {"extract": [StepRun.of(r) for s in table.sources if (r := latest_extract[s])],
                "transform": [StepRun.of(r) for r in [ledger.latest("transform", table.name, STATUSES)] if r],
                "load": [StepRun.of(r) for r in [ledger.latest("load", table.name, STATUSES)] if r]}
        watermark, latest_snapshot, rejected = warehouse[table.name]
        last_refresh = ledger.latest("load", table.name, REFRESHED)
        candidates = [t for t in (watermark, last_refresh and (last_refresh.ended_at or last_refresh.started_at))
                      if t is not None]
        loaded = watermark is not None or latest_snapshot is not None
        refreshed_at = max(candidates, default=latest_snapshot) if loaded else None
        quarantined = sum(int(r.details.get("rows_quarantined") or 0)
                          for r in ledger.runs("transform", table.name, since=month_start))
        due = due_since(spec, table.groups, now)
        problems = [f"{step} {r.name} {r.status} (run {r.run_id}): {r.error or 'no error recorded'}"
                    for step, step_runs in runs.items() for r in step_runs if r.status in FAILED[step]]
        if not loaded:
            state = NEVER
            problems.insert(0, "never loaded into the warehouse")
        elif problems:
            state = FAILING
        elif due is not None and refreshed_at < due:
            state = STALE
            problems.append(f"last refreshed {_iso(refreshed_at)}, before the scheduled run of {_iso(due)}")
        else:
            state = OK
        tables.append(TableStatus(table.name, tuple(g for g in table.groups if g != "all"), state, refreshed_at,
                                  latest_snapshot, due, runs, rejected, quarantined, problems))
    used = sum(r.credits for name in spec.extractors for r in ledger.runs("extract", name, since=month_start)
               if r.started_at >= month_start)
    planned = budget.plan(spec, now.year, now.month, quota, min_margin).total
    return Status(now, Credits(f"{now.year:04d}-{now.month:02d}", used, planned, quota), tables)


def _read_warehouse(engine, names: list[str]) -> dict[str, tuple[datetime | None, datetime | None, int]]:
    """Per dw table: its watermark's loaded_at, its newest snapshot_timestamp and its pending rejected rows."""
    from sqlalchemy import column, func, select, table, text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        with engine.connect() as connection:
            watermarks = dict(connection.execute(text("SELECT table_name, loaded_at FROM meta.load_watermark")).all())
            rejected = dict(connection.execute(text(
                "SELECT table_name, count(*) FROM meta.rejected_rows WHERE resolved_at IS NULL "
                "GROUP BY table_name")).all())
            latest = {name: connection.execute(select(func.max(column("snapshot_timestamp")))
                                               .select_from(table(name, schema="dw"))).scalar()
                      for name in names}
    except OperationalError as exc:
        raise CryptolakeError(f"cannot reach the warehouse: {str(exc.orig).strip().splitlines()[0]}",
                              "Check WAREHOUSE_URL and that PostgreSQL is up") from None
    except ProgrammingError as exc:
        raise CryptolakeError(f"the warehouse is not migrated: {str(exc.orig).strip().splitlines()[0]}",
                              "Run `cryptolake migrate`") from None
    return {name: (watermarks.get(name), latest[name], int(rejected.get(name, 0))) for name in names}


def gather(settings, spec: Pipeline, now: datetime | None = None) -> Status:
    """The status from the settings' lake (ledger) and warehouse."""
    from cryptolake.lake import Lake
    from cryptolake.warehouse.migrate import engine_for

    url = settings.require("warehouse_url", 'Set it, or eval "$(cryptolake local env)" for the local stack')
    engine = engine_for(url)
    try:
        return collect(spec, Ledger(Lake.from_settings(settings)), engine, now or datetime.now(timezone.utc),
                       settings.cmc_monthly_credits, settings.cmc_credit_margin)
    finally:
        engine.dispose()


# -- rendering -------------------------------------------------------------------------------------------------
def render(status: Status) -> list[str]:
    c = status.credits
    share_plan = f"{c.used / c.planned:.0%} of the plan" if c.planned else "no plan"
    lines = [f"cryptolake status at {_iso(status.now)}",
             f"credits {c.month}: {c.used} used, {share_plan} ({c.planned} planned), "
             f"{c.used / c.quota:.1%} of the quota ({c.quota}, CMC_MONTHLY_CREDITS)", "",
             f"{'table':<22} {'state':<8} {'refreshed':>10} {'due since':<20} {'extract':<8} {'transform':<9} "
             f"{'load':<8} {'rejected':>8} {'quarantined':>11}"]
    for t in status.tables:
        age = "never" if t.refreshed_at is None else f"{_age(status.now - t.refreshed_at)} ago"
        due = t.due_since.strftime("%a %Y-%m-%d %H:%M") if t.due_since else "init only"
        lines.append(f"{t.table:<22} {t.state:<8} {age:>10} {due:<20} {t.outcome('extract'):<8} "
                     f"{t.outcome('transform'):<9} {t.outcome('load'):<8} {t.rejected:>8} {t.quarantined:>11}")
    problems = [f"  {t.table}: {p}" for t in status.tables if t.state != OK for p in t.problems]
    if problems and not status.empty:
        lines += ["", "problems:", *problems]
    late = {r.run_id: f"  {step} {r.name} {r.status} (run {r.run_id}): the lake could not take its record when "
                      f"it ended ({r.late['reason']}); kept on the machine that ran it and written later"
            for t in status.tables for step, runs in t.runs.items() for r in runs if r.late}
    if late:
        lines += ["", "recorded late:", *late.values()]
    lines += ["", status.verdict]
    return lines


def _age(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()
