"""Transform benchmark: the time of one day's runs (daily + 5x + 10x groups) for the same new bronze, with 1 day
and with 60+ days of history already in silver. Incremental means the ratio stays near 1 (target <= 1.2):
nothing in a run may rescan all of bronze or silver. Results go in docs/transform.md.

    .venv/bin/python bench/transform_bench.py [--coins 2000] [--history-days 60] [--repeat 3]

History is built the way production builds it, in weekly chunks: five weekdays of bronze (5 listings, 5
category and global snapshots a day, daily maps/assets/links, weekly info), one transform run, then the weekly
maintenance (OPTIMIZE + VACUUM). Each measurement starts from a copy of the prepared lake, writes the same new
day of bronze, and times the three groups in one SparkSession (JVM start-up, ~10 s, is the same in both cases
and excluded; each measurement uses a new path, so Delta's log cache is cold as in a fresh spark-submit).
As a sensitivity check it also times what a non-incremental design would pay on the long history at least:
recomputing fact_crypto_daily over all of silver fact_crypto_market, and reading every listings bronze file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, time as dtime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptolake import logs  # noqa: E402
from cryptolake.lake import Lake  # noqa: E402
from cryptolake.ledger import RunRecord  # noqa: E402
from cryptolake.settings import Settings  # noqa: E402
from tests.transform.bronze import Market  # noqa: E402

TIMES = tuple(dtime(h) for h in (9, 11, 13, 15, 17))  # 5 snapshots a day for the 5x/10x extractors
GROUPS = ("daily", "5x", "10x")
NEW_DAY = date(2026, 6, 2)  # a Tuesday


def weekdays_before(day: date, count: int) -> list[date]:
    days, d = [], day
    while len(days) < count:
        d -= timedelta(days=1)
        if d.weekday() < 5:
            days.append(d)
    return sorted(days)


def settings_at(path: Path) -> Settings:
    return Settings.load(env={"LAKE_URI": path.as_uri()})


def build_history(spark, market: Market, root: Path, days: list[date]) -> float:
    from cryptolake.spark_apps.transform.runner import run_group

    settings = settings_at(root)
    lake = Lake.from_settings(settings)
    started = time.monotonic()
    for week in range(0, len(days), 5):
        for day in days[week:week + 5]:
            market.write_day(lake, day, times=TIMES, parts=1)
        outcome = run_group(spark, settings, "init", lake)
        if outcome.failed:
            raise RuntimeError(f"history build failed: {outcome.failed}")
        run_group(spark, settings, "weekly", lake, tables=[], maintenance=True)
        print(f"  history: {min(week + 5, len(days))}/{len(days)} days in silver "
              f"({time.monotonic() - started:.0f}s)", file=sys.stderr)
    return time.monotonic() - started


def measure(spark, market: Market, template: Path, work: Path) -> dict:
    """Copy the prepared lake, add the new day's bronze, time the day's groups."""
    from cryptolake.spark_apps.transform.runner import run_group

    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(template, work)
    settings = settings_at(work)
    lake = Lake.from_settings(settings)
    market.write_day(lake, NEW_DAY, times=TIMES, parts=1)
    per_table: dict[str, float] = {}
    started = time.monotonic()
    for group in GROUPS:
        outcome = run_group(spark, settings, group, lake)
        if outcome.failed:
            raise RuntimeError(f"{group} failed: {outcome.failed}")
        for result in outcome.results:
            if result.run_id:
                record = RunRecord.from_json(lake.read_bytes(f"_meta/transform/{result.table}/{result.run_id}.json"))
                per_table[result.table] = record.duration_seconds
    total = time.monotonic() - started
    shutil.rmtree(work, ignore_errors=True)
    return {"seconds": total, "tables": per_table}


def full_scan_seconds(spark, root: Path) -> dict:
    """What rescanning costs on this history: the floor under any non-incremental run."""
    from pyspark.sql import functions as F

    from cryptolake.spark_apps.transform.daily import compute

    lake = Lake.from_settings(settings_at(root))
    out = {}
    started = time.monotonic()
    market = spark.read.format("delta").load(lake.spark_uri("silver/fact_crypto_market"))
    ohlc = market.groupBy("crypto_id", "snapshot_date").agg(
        F.min_by("price_usd", "snapshot_timestamp").alias("open_usd"), F.max("price_usd").alias("high_usd"),
        F.min("price_usd").alias("low_usd"), F.max_by("price_usd", "snapshot_timestamp").alias("close_usd"))
    compute(ohlc).write.format("noop").mode("overwrite").save()
    out["recompute_fact_crypto_daily_from_all_market_rows"] = {
        "rows": market.count(), "seconds": round(time.monotonic() - started, 2)}
    started = time.monotonic()
    bronze = spark.read.parquet(lake.spark_uri("bronze/crypto_listings_latest"))
    rows = bronze.select("crypto_id", "snapshot_timestamp").distinct().count()
    out["read_all_listings_bronze_keys"] = {"rows": rows, "seconds": round(time.monotonic() - started, 2)}
    return out


def delta_shape(root: Path, table: str) -> dict:
    from deltalake import DeltaTable

    dt = DeltaTable(str(root / "silver" / table))
    return {"version": dt.version(), "files": len(dt.file_uris()), "rows": dt.to_pyarrow_dataset().count_rows()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coins", type=int, default=2000)
    parser.add_argument("--exchanges", type=int, default=40)
    parser.add_argument("--categories", type=int, default=60)
    parser.add_argument("--history-days", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    logs.configure(json_lines=False, level=40)

    from cryptolake.spark_apps.session import build_spark_session

    base = args.work_dir or Path(tempfile.mkdtemp(prefix="cryptolake-bench-transform-"))
    base.mkdir(parents=True, exist_ok=True)
    market = Market(seed=3, coins=args.coins, exchanges=args.exchanges, categories=args.categories)
    spark = build_spark_session("cryptolake-bench-transform", settings_at(base / "events"),
                                conf={"spark.ui.enabled": "false"})
    short, long_ = base / "history-1", base / "history-long"
    history = weekdays_before(NEW_DAY, args.history_days)
    print(f"building 1 day and {args.history_days} days of history with {args.coins} coins in {base}",
          file=sys.stderr)
    build_short = build_history(spark, market, short, history[-1:])
    build_long = build_history(spark, market, long_, history)

    measure(spark, market, short, base / "warm-up")  # JIT, class loading, caches
    runs: dict[str, list[dict]] = {"1 day": [], f"{args.history_days} days": []}
    for n in range(args.repeat):  # interleaved, so drifting machine load hits both alike
        runs["1 day"].append(measure(spark, market, short, base / f"run-short-{n}"))
        runs[f"{args.history_days} days"].append(measure(spark, market, long_, base / f"run-long-{n}"))
    medians = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
    ratio = medians[f"{args.history_days} days"] / medians["1 day"]
    per_table = {name: {t: round(statistics.median(r["tables"][t] for r in rs), 2) for t in rs[0]["tables"]}
                 for name, rs in runs.items()}
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "spark": spark.version, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "data": {"coins": args.coins, "snapshots_per_day": len(TIMES), "new_day": NEW_DAY.isoformat(),
                 "history_days": args.history_days, "history_build_seconds": {"1 day": round(build_short),
                                                                              "long": round(build_long)},
                 "silver_fact_crypto_market": {"1 day": delta_shape(short, "fact_crypto_market"),
                                               "long": delta_shape(long_, "fact_crypto_market")},
                 "silver_fact_crypto_daily": {"long": delta_shape(long_, "fact_crypto_daily")}},
        "seconds_per_run": {name: [round(r["seconds"], 2) for r in rs] for name, rs in runs.items()},
        "median_seconds": {k: round(v, 2) for k, v in medians.items()},
        "ratio": round(ratio, 3),
        "median_seconds_per_table": per_table,
        "full_scan_reference": full_scan_seconds(spark, long_),
    }
    spark.stop()
    print(json.dumps(report, indent=2))
    if not args.work_dir:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
