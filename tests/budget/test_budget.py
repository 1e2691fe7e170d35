"""The pipeline spec's month plan (`cryptolake budget`) and the spec's own validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cryptolake import budget, pipeline
from cryptolake.pipeline import SpecError
from cryptolake.services.extract.registry import checked

REPO = Path(__file__).resolve().parents[2]
SPEC_TEXT = (REPO / "cryptolake" / "pipeline.yaml").read_text()
CLI = str(Path(sys.executable).parent / "cryptolake")


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CMC_", "LAKE_", "WAREHOUSE_"))}
    return subprocess.run([CLI, *args], capture_output=True, text=True, env={**clean, **env}, timeout=60)


def spec_with(edit) -> str:
    raw = yaml.safe_load(SPEC_TEXT)
    edit(raw)
    return yaml.safe_dump(raw, sort_keys=False)


def test_the_default_spec_keeps_half_the_free_quota_while_refreshing_the_market_as_promised():
    spec = checked(pipeline.default())
    worst = max((budget.plan(spec, 2026 + (m > 12), (m - 1) % 12 + 1, 10_000, 0.35) for m in range(1, 25)),
                key=lambda p: p.total)
    assert worst.margin >= 0.50, worst.total
    listings = {j.group: j for j in spec.jobs if j.extractor == "crypto_listings_latest"}
    ten_x, daily = spec.groups["10x"].schedule, spec.groups["daily"].schedule
    # the top 1,000 coins ten times each weekday, the top 5,000 at least once each weekday
    assert listings["10x"].params["listings_limit"] >= 1000 and len(ten_x.at) == 10
    assert listings["daily"].params["listings_limit"] >= 5000 and len(daily.at) >= 1
    assert set(ten_x.days) == set(daily.days) == {"mon", "tue", "wed", "thu", "fri"}


def test_runs_are_counted_from_the_calendar():
    spec = pipeline.default()
    assert spec.groups["10x"].schedule.runs_in(2026, 12) == 230  # 23 weekdays in December 2026
    assert spec.groups["weekly"].schedule.runs_in(2026, 12) == 4  # Mondays 7, 14, 21, 28
    assert spec.groups["weekly"].schedule.runs_in(2027, 3) == 5
    assert spec.groups["10x"].schedule.cron == "30 10,11,12,13,14,15,16,17,18,19 * * 1,2,3,4,5"
    assert spec.backup_schedule.cron == "0 3 * * 0"


def test_a_full_scan_is_priced_on_every_rescan_cycle_rounding_up():
    spec = pipeline.default()
    assets = next(j for j in spec.jobs if j.extractor == "exchange_assets" and j.group == "weekly")
    assert assets.runs_per_full_scan(spec.groups["weekly"].schedule) == 4  # rescan_days 28, weekly runs
    december = budget.job_line(spec, assets, 2026, 12)
    march = budget.job_line(spec, assets, 2027, 3)
    assert (december.runs, december.full_scans) == (4, 1) and (march.runs, march.full_scans) == (5, 2)
    assert december.credits == 3 * assets.credits + assets.full_scan_credits


def test_budget_prints_every_job_a_total_line_the_margin_and_the_freshness():
    done = cli("budget", "--month", "2026-12")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    spec = pipeline.default()
    plan = budget.plan(spec, 2026, 12, 10_000, 0.35)
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[-1] == str(plan.total)
    for job in spec.jobs:
        if spec.groups[job.group].schedule:
            assert any(line.split()[:2] == [job.extractor, job.group] for line in lines), job
    assert f"margin {10_000 - plan.total} credits" in done.stdout and "minimum 35%" in done.stdout
    assert any("fact_crypto_market" in line and "10x per weekday" in line for line in lines)
    as_json = json.loads(cli("budget", "--month", "2026-12", "--json").stdout)
    assert as_json["total"] == plan.total and as_json["ok"] is True


def test_budget_fails_when_the_margin_is_below_the_minimum(tmp_path):
    done = cli("budget", "--month", "2026-12", CMC_MONTHLY_CREDITS="5000")
    assert done.returncode == 3 and "BELOW THE MINIMUM" in done.stdout
    greedy = tmp_path / "greedy.yaml"
    greedy.write_text(spec_with(lambda raw: raw["extractors"]["crypto_listings_latest"]["runs"]["10x"].update(
        credits=25, params={"listings_limit": 5000})))
    done = cli("budget", "--month", "2026-12", "--spec", str(greedy))
    assert done.returncode == 3, done.stdout


@pytest.mark.parametrize("edit, where, says", [
    (lambda r: r["groups"]["10x"]["schedule"].update(at=["10:30", "11:15"]), "groups.10x.schedule.at",
     "share its minute"),
    (lambda r: r["groups"]["daily"]["schedule"].update(days=["monday"]), "groups.daily.schedule.days[0]",
     "expected one of mon"),
    (lambda r: r["groups"]["5x"]["schedule"].update(at=["9h"]), "groups.5x.schedule.at[0]", "expected HH:MM"),
    (lambda r: r["extractors"]["crypto_map"].update(priority="urgent"), "extractors.crypto_map.priority",
     "expected one of high, low"),
    (lambda r: r["extractors"]["crypto_map"]["runs"]["daily"].update(credits=-1),
     "extractors.crypto_map.runs.daily.credits", "whole number"),
    (lambda r: r["extractors"]["crypto_map"]["runs"].update(hourly={"credits": 1}),
     "extractors.crypto_map.runs.hourly", "unknown field"),
    (lambda r: r["extractors"]["crypto_map"]["runs"].pop("init"), "extractors.crypto_map.runs.init", "missing"),
    (lambda r: r["extractors"]["global_metrics_latest"]["runs"]["10x"].update(params={"listings_limit": 9}),
     "extractors.global_metrics_latest.runs.10x.params.listings_limit", "does not read it"),
    (lambda r: r["extractors"].update(crypto_quotes={"priority": "high", "runs": {"init": {"credits": 1}}}),
     "extractors.crypto_quotes", "unknown extractor"),
    (lambda r: r["extractors"].pop("key_info"), "extractors", "key_info not scheduled"),
    (lambda r: r["groups"]["init"].update(schedule={"days": "weekdays", "at": ["08:00"]}),
     "groups.init.schedule", "on demand"),
    (lambda r: r["kubernetes"]["spark_driver"].pop("memory"), "kubernetes.spark_driver.memory", "missing"),
    (lambda r: r["airflow"]["api_pool"].update(slots=0), "airflow.api_pool.slots", ">= 1"),
    (lambda r: r["airflow"]["alerts"]["args"].update(password="hunter22"), "airflow.alerts.args.password",
     "Airflow connection"),
    (lambda r: r["airflow"]["alerts"].update(notifier="smtp"), "airflow.alerts.notifier", "dotted path"),
    (lambda r: r["airflow"]["alerts"].update(status_schedule=None), "airflow.alerts.status_schedule",
     "needs a schedule"),
    (lambda r: r.update(version=2), "version", "reads version 1"),
])
def test_a_bad_spec_is_rejected_naming_the_field(tmp_path, edit, where, says):
    with pytest.raises(SpecError) as caught:
        checked(pipeline.parse(spec_with(edit), "bad.yaml"))
    assert caught.value.where == where and says in str(caught.value)
    path = tmp_path / "bad.yaml"
    path.write_text(spec_with(edit))
    done = cli("budget", "--spec", str(path))
    assert done.returncode == 1 and f"{where}:" in done.stderr and "Traceback" not in done.stderr


def test_a_spec_that_is_not_yaml_names_the_line():
    with pytest.raises(SpecError, match="line 3"):
        pipeline.parse("version: 1\ngroups:\n  - : [\n", "broken.yaml")
