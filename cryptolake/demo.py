"""`cryptolake demo`: the embedded default end to end, on the local stack (PostgreSQL, S3 server, sandbox API,
Spark History Server).

It starts the stack, migrates the warehouse, runs `init` and then one cycle of every scheduled group exactly as
`cryptolake run` does, and ends with a summary: what ran, rows per layer, credits spent, where to look next,
and the path of the HTML report it writes into the state directory (report.html).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptolake import logs, pipeline
from cryptolake.lake import SPARK_EVENTS, Lake
from cryptolake.ledger import STATUSES, Ledger
from cryptolake.local.stack import LocalStack
from cryptolake.settings import Settings

log = logs.get(__name__)
GROUP_ORDER = ("init", "daily", "weekly", "5x", "10x")  # init first: the other groups read its maps


def run_demo(state_dir: Path) -> tuple[dict[str, str], int]:
    """(summary lines, exit status)"""
    from cryptolake.cycle import run_cycles, worst
    from cryptolake.warehouse.migrate import migrate

    stack = LocalStack(state_dir)
    stack.up()
    settings = Settings.load(env={**os.environ, **stack.env()})
    lake = Lake.from_settings(settings)
    ledger = Ledger(lake)
    since = {r.run_id for step in ("extract", "transform", "load") for r in _all_runs(ledger, step)}

    summary = {"warehouse schema": migrate(settings)[0]}
    steps = list(run_cycles(settings, list(GROUP_ORDER)))
    for step in steps:
        summary[f"ran {step.group} {step.name}"] = f"exit {step.exit_code} in {step.seconds:.1f}s"
    summary.update(_layers(settings, ledger, since))
    summary["next: the lake"] = f"{settings.lake_uri} (eval \"$(cryptolake local env)\"; ledger under _meta/)"
    summary["next: the warehouse"] = "psql \"$WAREHOUSE_URL\" -c 'SELECT * FROM bi.market_overview LIMIT 5'"
    summary["next: spark runs"] = (f"{stack.history.url} (Spark History Server over "
                                   f"{lake.spark_uri(SPARK_EVENTS)})")
    summary["next: the schedule"] = "cryptolake budget; make airflow for the DAGs in a UI"
    summary["next: the report"] = _report(settings, state_dir / "report.html")
    return {**summary, **stack.status()}, worst(steps)


def _report(settings: Settings, out: Path) -> str:
    """The HTML report of what the demo loaded; a failure to write it is told, not fatal (the data is there)."""
    from cryptolake.errors import CryptolakeError
    from cryptolake.report import write_report

    try:
        written = write_report(settings, pipeline.default(), out)
    except ModuleNotFoundError as exc:
        return f"not written: {exc.name} is missing; pip install 'cryptolakehouse[report]'"
    except CryptolakeError as exc:
        return logs.redact(f"not written: {exc}")
    return f"{written.path} ({written.bytes / 2**20:.1f} MiB, offline; open it in a browser)"


def _all_runs(ledger: Ledger, step: str):
    names = [j.extractor for j in pipeline.default().jobs] if step == "extract" else _tables()
    return [r for name in dict.fromkeys(names) for r in ledger.runs(step, name)]


def _tables() -> list[str]:
    from cryptolake.spark_apps.transform.tables import TABLES

    return list(TABLES)


def _layers(settings: Settings, ledger: Ledger, before: set[str]) -> dict[str, str]:
    """Rows this demo wrote per layer (from the ledger), credits it spent, and the warehouse's row counts."""
    from sqlalchemy import func, select

    from cryptolake.warehouse.migrate import engine_for
    from cryptolake.warehouse.models import load_order

    result = {}
    for step, layer in (("extract", "bronze"), ("transform", "silver"), ("load", "warehouse")):
        runs = [r for r in _all_runs(ledger, step) if r.run_id not in before and r.status in STATUSES]
        by_status = {s: sum(1 for r in runs if r.status == s) for s in STATUSES if any(r.status == s for r in runs)}
        result[f"{layer} rows written"] = (f"{sum(r.rows for r in runs)} in {len(runs)} runs "
                                           f"({', '.join(f'{n} {s}' for s, n in by_status.items())})")
        if step == "extract":
            result["credits spent"] = str(sum(r.credits for r in runs))
    engine = engine_for(settings.warehouse_url)
    try:
        with engine.connect() as conn:
            counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in load_order()}
    finally:
        engine.dispose()
    result["warehouse rows now"] = ", ".join(f"{name} {rows}" for name, rows in counts.items())
    return result
