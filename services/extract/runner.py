"""`cryptolake extract`: run one extractor or a frequency group, credit-aware and fail-soft.

Exit status (the container's, so Airflow sees it): 0 everything extracted (or deliberately skipped),
4 part of it (failed chunks are journaled and retried next run, or the run stopped at its ceiling),
5 stopped by the plan's quota, 1 nothing extracted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

import pyarrow as pa

from cryptolake import logs
from cryptolake.lake import Lake
from cryptolake.ledger import STATUSES, Ledger, RunRecord, new_run_id
from cryptolake.settings import Settings
from cryptolake.services.client import CmcClient, CmcError, PayloadError, QuotaExhausted
from cryptolake.services.extract.base import ExtractRun, Extractor

log = logs.get(__name__)
PART_ROWS = 100_000
EXIT_CODES = {"success": 0, "skipped": 0, "partial": 4, "quota": 5, "failed": 1}


@dataclass(frozen=True)
class Job:
    """An extractor as a group of the pipeline spec runs it: its priority and the settings its parameters
    override (registry.group builds these; an Extractor passed alone runs at high priority on plain settings)."""

    extractor: Extractor
    priority: str = "high"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None


@dataclass
class CreditGovernor:
    """Keeps the month's reserve: low-priority extractors skip when a run would dig into it."""

    quota: int
    credits_left: int
    margin: float

    @classmethod
    def from_key_info(cls, client: CmcClient, settings: Settings) -> "CreditGovernor":
        """The month's usage from /v1/key/info. An answer that cannot be read must not stop the group: the
        quota then comes from the settings and no credit is assumed left, so only low-priority extractors skip."""
        try:
            data = client.get("/v1/key/info").data
            plan, month = data.get("plan") or {}, (data.get("usage") or {}).get("current_month") or {}
            if plan.get("rate_limit_minute"):
                client.pacer.per_minute = int(plan["rate_limit_minute"])
            quota = int(plan.get("credit_limit_monthly") or settings.cmc_monthly_credits)
            left = month.get("credits_left")
            left = int(left) if left is not None else quota - int(month.get("credits_used") or 0)
        except (PayloadError, AttributeError, TypeError, ValueError) as err:
            log.warning("the month's credit usage is unknown (/v1/key/info unreadable: %s); low-priority "
                        "extractors skip this run", logs.redact(str(err)))
            return cls(settings.cmc_monthly_credits, 0, settings.cmc_credit_margin)
        return cls(quota, left, settings.cmc_credit_margin)

    def decide(self, priority: str, estimate: int) -> str | None:
        """None to go ahead, else the reason to skip."""
        reserve = self.margin * self.quota
        if priority == "low" and self.credits_left - estimate < reserve:
            return (f"skipped to keep the reserve: ~{estimate} credits needed, {self.credits_left} left this month, "
                    f"reserve {reserve:.0f} ({self.margin:.0%} of {self.quota})")
        return None

    def spend(self, credits: int) -> None:
        self.credits_left -= credits


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def run_extractor(job: Job | Extractor, settings: Settings, lake: Lake, client: CmcClient,
                  governor: CreditGovernor | None = None, clock: Callable[[], datetime] = utc_now,
                  ) -> tuple[RunRecord, bool]:
    """One run, recorded in the ledger; returns (record, stopped by quota).

    `clock` gives the snapshot time (the run's start); replaying a simulated market passes the sandbox's clock.
    """
    job = job if isinstance(job, Job) else Job(job)
    extractor, settings = job.extractor, replace(settings, **job.overrides)
    started = _unused_second(Ledger(lake), extractor.name, clock)
    quota_hit = False
    with Ledger(lake).run("extract", extractor.name, started=started, endpoint=extractor.path,
                          params=dict(extractor.params)) as record, logs.context(extractor=extractor.name):
        if job.group:
            record.details["job"] = {"group": job.group, "priority": job.priority, "overrides": dict(job.overrides)}
        run = ExtractRun(extractor, settings, lake, client, record)
        run.plan_ids()
        estimate = run.estimate()
        reason = governor.decide(job.priority, estimate) if governor else None
        if reason:
            log.warning("%s %s", extractor.name, reason)
            record.status, record.details["skip_reason"] = "skipped", reason
            return record, False
        calls_before = client.calls
        try:
            if extractor.skip_unchanged:
                _write_if_changed(run)
            else:
                run.write(run.batches(), PART_ROWS)
        except QuotaExhausted as err:  # outside a page fetch (a page's stop is run.quota_stop)
            run.quota_stop = err
        finally:
            if governor:
                governor.spend(record.credits)
        if run.quota_stop:
            quota_hit = True
            record.error = str(run.quota_stop)
            log.error("%s stopped: %s", extractor.name, run.quota_stop)
        record.details.update(calls=client.calls - calls_before, **run.summary())
        if run.nulled:
            log.warning("%s: values that did not fit their column were stored as NULL: %s", extractor.name,
                        dict(run.nulled))
        if run.stopped and not record.error:
            record.error = run.stopped
        if record.status == "running":
            record.status = _status(record, run, quota_hit)
    return record, quota_hit


def _status(record: RunRecord, run: ExtractRun, quota_hit: bool) -> str:
    """partial when some of the plan is missing (the ceiling stopped it, or chunks failed but rows landed);
    failed when calls or items failed and nothing usable landed."""
    if run.stopped:
        return "partial"
    incomplete = bool(run.failed) or quota_hit
    if not record.rows and (incomplete or run.rejected_items):
        return "failed"
    return "partial" if incomplete else "success"


def _unused_second(ledger: Ledger, name: str, clock: Callable[[], datetime]) -> datetime:
    """Now, to the second (bronze names carry seconds), but after this extractor's latest run started.

    A clock that went backwards (set back, or a replayed simulated market) would give a run id that sorts before
    runs already taken in, which the transform's watermark then treats as consumed: the snapshot would never
    reach silver. Such a run is stamped one second after the latest run instead, so run ids keep their order.
    """
    now = clock()
    latest = ledger.latest("extract", name, STATUSES)
    if latest and latest.started_at >= now.replace(microsecond=0):
        time.sleep(1 - now.microsecond / 1e6)
        now = clock()
    now = now.replace(microsecond=0)
    if latest and latest.started_at >= now:
        later = latest.started_at + timedelta(seconds=1)
        log.warning("%s: the clock (%s) is not after the latest run's start (%s); stamping this snapshot %s so "
                    "run ids keep their order", name, now.isoformat(), latest.started_at.isoformat(), later.isoformat())
        now = later
    return now


def _write_if_changed(run: ExtractRun) -> None:
    """Maps are small (one or two pages): hold them, compare every row, write nothing when unchanged."""
    batches = list(run.batches())
    table = pa.Table.from_batches(batches, schema=run.extractor.schema)
    if not (run.failed or run.stopped or run.quota_stop or run.rejected_items) and run.unchanged_since_previous(table):
        run.record.status = "skipped"
        run.record.details.update(unchanged=True, ids=table.num_rows, compared_with=run.previous.run_id)
        log.info("%s: unchanged since %s; nothing written", run.extractor.name, run.previous.run_id)
        return
    run.write(iter(table.to_batches()), PART_ROWS)


def run_many(jobs: Iterable[Job | Extractor], settings: Settings, clock: Callable[[], datetime] = utc_now) -> int:
    """Run jobs in order with one client and one governor; the exit status is the worst outcome."""
    api_key = settings.require("cmc_api_key", "Set CMC_API_KEY, or eval \"$(cryptolake local env)\" for the sandbox")
    lake = Lake.from_settings(settings)
    client = CmcClient(settings.cmc_base_url, api_key, rate_limit_per_minute=settings.cmc_rate_limit)
    governor = CreditGovernor.from_key_info(client, settings)
    log.info("%d credits left this month (quota %d); rate limit %d/min", governor.credits_left, governor.quota,
             client.pacer.per_minute)
    outcomes: list[str] = []
    jobs = list(jobs)
    for index, job in enumerate(jobs):
        extractor = job.extractor if isinstance(job, Job) else job
        try:
            record, quota_hit = run_extractor(job, settings, lake, client, governor, clock)
        except CmcError as err:  # configuration errors: recorded as failed by the ledger, then reported
            log.error("%s failed: %s", extractor.name, err)
            outcomes.append("failed")
            if err.http_status in (401, 402, 403):
                raise
            continue
        outcomes.append("quota" if quota_hit else record.status)
        log.info("%s: %s, %d rows in %d files, %d credits", extractor.name, record.status, record.rows,
                 len(record.files), record.credits)
        if quota_hit:
            log.error("monthly quota reached: the remaining extractors are not run")
            _record_not_run(jobs[index + 1:], lake, f"not run: the plan's quota ran out during {extractor.name}")
            break
    log.info("extract done: %d credits used by %d calls", client.credits_used, client.calls)
    return group_exit_code(outcomes)


def _record_not_run(jobs: list[Job | Extractor], lake: Lake, reason: str) -> None:
    """A failed ledger record for each job a stop left out, so status shows what is missing (not silence)."""
    ledger = Ledger(lake)
    for job in jobs:
        name = (job.extractor if isinstance(job, Job) else job).name
        now = _unused_second(ledger, name, utc_now)
        ledger.write(RunRecord(new_run_id(now), "extract", name, now, status="failed", ended_at=now,
                               duration_seconds=0.0, error=reason, details={"not_run": True}))


def group_exit_code(outcomes: list[str]) -> int:
    codes = [EXIT_CODES[o] for o in outcomes]
    if all(code == 0 for code in codes):
        return 0
    if EXIT_CODES["quota"] in codes:
        return EXIT_CODES["quota"]
    if all(code == EXIT_CODES["failed"] for code in codes):
        return EXIT_CODES["failed"]
    return EXIT_CODES["partial"]
