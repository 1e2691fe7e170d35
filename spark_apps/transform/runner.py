"""Run a frequency group: every silver table of the group in build order, then its gold feature tables (after
the silver tables they read), then maintenance for weekly/all.

Fail-soft per table: a failing table is recorded as failed in the ledger (by Ledger.run) and the group goes on
with the tables that do not read it; the group's exit status is 0 only when every table succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from pyspark.sql import SparkSession

from cryptolake import logs, progress
from cryptolake.groups import GROUPS
from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.settings import Settings
from cryptolake.spark_apps.transform.base import BaseTransformer, StepResult
from cryptolake.spark_apps.transform.category import CategoryTransformer
from cryptolake.spark_apps.transform.crypto import CryptoTransformer
from cryptolake.spark_apps.transform.exchange import ExchangeTransformer
from cryptolake.spark_apps.transform.features import build_features, features_of
from cryptolake.spark_apps.transform.global_market import GlobalMarketTransformer
from cryptolake.spark_apps.transform.maintenance import maintain
from cryptolake.spark_apps.transform.sentiment import SentimentTransformer
from cryptolake.spark_apps.transform.tables import MAINTENANCE_GROUPS, tables_of

log = logs.get(__name__)
TRANSFORMERS: tuple[type[BaseTransformer], ...] = (
    ExchangeTransformer, CryptoTransformer, CategoryTransformer, GlobalMarketTransformer, SentimentTransformer,
)


@dataclass
class GroupResult:
    group: str
    results: list[StepResult] = field(default_factory=list)
    maintenance: dict | None = None
    failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def run_group(spark: SparkSession, settings: Settings, group: str, lake: Lake | None = None, *,
              tables: list[str] | None = None, maintenance: bool | None = None) -> GroupResult:
    """Build the group's tables (or the given subset) with an injected SparkSession."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; choose one of {', '.join(GROUPS)}")
    lake = lake or Lake.from_settings(settings)
    chosen = [t for t in tables_of(group) if tables is None or t.name in tables]
    features = [f for f in features_of(group) if tables is None or f.name in tables]
    by_domain = {cls.domain: cls(spark, settings, lake, group=group) for cls in TRANSFORMERS}
    outcome = GroupResult(group)
    with Ledger(lake).run("transform", f"group-{group}", params={"group": group}) as record, \
            progress.bar(len(chosen) + len(features), f"transform {group}", "table") as bar:
        for table in chosen:
            bar.set_postfix_str(table.name)
            _build(table.name, table.reads, partial(by_domain[table.domain].build, table.name), outcome)
            bar.update()
        for feature in features:  # gold: after the silver tables they read
            bar.set_postfix_str(feature.name)
            _build(feature.name, feature.reads, partial(build_features, by_domain["crypto"], feature), outcome)
            bar.update()
        if maintenance if maintenance is not None else group in MAINTENANCE_GROUPS:
            try:
                outcome.maintenance = maintain(spark, settings, lake, group=group)
            except Exception as exc:
                log.error("maintenance failed: %s", logs.redact(f"{type(exc).__name__}: {exc}"), exc_info=True)
                outcome.failed.append("maintenance")
        record.rows = sum(r.rows_written for r in outcome.results)
        record.details.update(
            tables={r.table: {"status": r.status, "run_id": r.run_id, "rows_in": r.rows_in,
                              "rows_written": r.rows_written, "rows_quarantined": r.rows_quarantined,
                              "delta_version": r.delta_version} for r in outcome.results},
            failed=outcome.failed)
        if outcome.failed:
            record.status = "partial" if outcome.results else "failed"
            record.error = f"failed: {', '.join(outcome.failed)}"
    log.info("transform %s: %d tables built, %d up to date, %d failed%s", group,
             sum(r.status in ("success", "skipped") for r in outcome.results),
             sum(r.status == "up-to-date" for r in outcome.results), len(outcome.failed),
             f" ({', '.join(outcome.failed)})" if outcome.failed else "")
    return outcome


def _build(name: str, reads: tuple[str, ...], build: Callable[[], StepResult], outcome: GroupResult) -> None:
    """One table, fail-soft: a failure is recorded by the table's ledger record and reported at the end."""
    broken = [t for t in reads if t in outcome.failed]
    if broken:
        log.error("%s not built: it reads %s, which failed in this run", name, ", ".join(broken))
        outcome.failed.append(name)
        return
    try:
        outcome.results.append(build())
    except Exception as exc:
        log.error("%s failed: %s", name, logs.redact(f"{type(exc).__name__}: {exc}"), exc_info=True)
        outcome.failed.append(name)
