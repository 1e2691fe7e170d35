"""Resilience against the sandbox's fault injection: the failures a real API has, answered as a user expects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace

import pytest

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.services.client import CmcClient
from cryptolake.services.extract import registry
from cryptolake.services.extract.registry import EXTRACTORS
from cryptolake.services.extract.runner import Job, run_extractor, run_many
from cryptolake.services.sandbox import DEFAULT_API_KEY
from tests.conftest import REPO, settings_for
from tests.extract.conftest import extract_env, start_sandbox

LISTINGS = EXTRACTORS["crypto_listings_latest"]


def latest(lake, name):
    return Ledger(lake).latest("extract", name, ("success", "partial", "failed", "skipped"))


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_burst_is_retried_to_success(fresh_sandbox, s3_settings, s3_extract_lake, status):
    fresh_sandbox.fault(kind="error", status=status, path=LISTINGS.path, count=3)
    assert run_many([LISTINGS], s3_settings) == 0
    record = latest(s3_extract_lake, LISTINGS.name)
    assert record.status == "success" and record.rows == 450
    assert record.details["calls"] == 4 and record.credits == 3  # failed attempts cost nothing


@pytest.mark.parametrize("fault", [{"delay": 3}, {"drop": True, "delay": 0}])
def test_timeouts_and_dropped_connections_are_retried(fresh_sandbox, s3_settings, s3_extract_lake, fault):
    fresh_sandbox.fault(kind="timeout", path=LISTINGS.path, count=2, **fault)
    client = CmcClient(s3_settings.cmc_base_url, DEFAULT_API_KEY, rate_limit_per_minute=1000, timeout=1)
    record, quota_hit = run_extractor(LISTINGS, s3_settings, s3_extract_lake, client)
    assert record.status == "success" and not quota_hit and client.calls == 3


def test_a_429_storm_is_waited_out(fresh_sandbox, s3_settings, s3_extract_lake):
    fresh_sandbox.set_clock("2026-11-02T08:00:58Z")  # Retry-After: 2 seconds to the next minute
    fresh_sandbox.fault(kind="rate_limit", path=LISTINGS.path, count=7)  # more than the 6 transient attempts
    assert run_many([LISTINGS], s3_settings) == 0
    record = latest(s3_extract_lake, LISTINGS.name)
    assert record.status == "success" and record.details["calls"] == 8 and record.duration_seconds >= 14


@pytest.mark.parametrize("kind", ["malformed", "truncated", "shape"])
def test_a_bad_page_is_quarantined_and_ends_open_ended_paging(fresh_sandbox, s3_settings, s3_extract_lake, kind):
    """fear_greed_historical pages until a short page: after an unreadable page it cannot know whether more
    follow, so it stops instead of asking (and paying) again and again."""
    history = EXTRACTORS["fear_greed_historical"]
    fresh_sandbox.fault(kind=kind, path=history.path, after=1, count=None)  # every page after the first
    assert run_many([history], s3_settings) == 4  # partial
    record = latest(s3_extract_lake, history.name)
    assert record.status == "partial" and record.rows == 500
    assert record.details["requests"] == 2 and record.credits == 2  # an unreadable answer is charged too
    used = fresh_sandbox.control("GET", "usage")["keys"]
    assert next(iter(used.values()))["usage"]["current_month"]["credits_used"] == 2  # key_info is free
    assert [f["key"] for f in record.details["failed"]] == ["start=501"]
    assert len(record.details["quarantined"]) == 1 and s3_extract_lake.exists(record.details["quarantined"][0])


def test_a_run_stops_at_its_ceiling_as_partial(fresh_sandbox, s3_settings, s3_extract_lake):
    """The estimate of a first open-ended run is one page; with the ceiling at 1 x estimate + 1 it may make two
    calls, although the history has three pages."""
    history = EXTRACTORS["fear_greed_historical"]
    settings = replace(s3_settings, cmc_run_ceiling_factor=1.0, cmc_run_ceiling_extra=1)
    assert run_many([history], settings) == 4
    record = latest(s3_extract_lake, history.name)
    assert record.status == "partial" and record.rows == 1000 and record.details["requests"] == 2
    assert record.details["ceiling"] == {"calls": 2, "credits": 2}
    assert "ceiling of 2 calls" in record.error and record.details["stopped"] == record.error
    used = fresh_sandbox.control("GET", "usage")["keys"]
    assert next(iter(used.values()))["usage"]["current_month"]["credits_used"] == 2  # key_info is free

    assert run_many([history], s3_settings) == 0  # the default ceiling leaves room for the whole history
    assert latest(s3_extract_lake, history.name).rows > 1000


def test_a_quota_hit_mid_run_keeps_the_pages_already_paid(fresh_sandbox, s3_settings, s3_extract_lake):
    """The monthly quota runs out on the third page: the two pages fetched (and charged) before it are written
    and the run is partial, not thrown away as failed."""
    history = EXTRACTORS["fear_greed_historical"]
    fresh_sandbox.fault(kind="rate_limit", code=1010, path=history.path, after=2, count=None)
    assert run_many([history], s3_settings) == 5  # stopped by the quota
    record = latest(s3_extract_lake, history.name)
    assert record.status == "partial" and record.rows == 1000 and record.details["requests"] == 3
    assert record.credits == 2 and "quota" in record.error
    table = s3_extract_lake.read_parquet(record.files)
    assert table.num_rows == 1000 and len(table.column("index_timestamp").unique()) == 1000


@pytest.mark.parametrize("kind", ["malformed", "shape"])
def test_an_unreadable_key_info_runs_the_group_without_the_low_priority_jobs(fresh_sandbox, s3_settings,
                                                                             s3_extract_lake, kind):
    """The governor's usage answer is broken: the month's usage is unknown, so high-priority jobs run and
    low-priority ones skip (they would dig into an unknown reserve), instead of the whole group failing."""
    fresh_sandbox.fault(kind=kind, path="/v1/key/info", count=1)  # the governor's call, not key_info's
    global_metrics = EXTRACTORS["global_metrics_latest"]
    jobs = [Job(global_metrics, "high"), Job(LISTINGS, "low")]
    assert run_many(jobs, s3_settings) == 0
    assert latest(s3_extract_lake, global_metrics.name).status == "success"
    skipped = latest(s3_extract_lake, LISTINGS.name)
    assert skipped.status == "skipped" and "reserve" in skipped.details["skip_reason"] and not skipped.credits


def test_schema_drift(fresh_sandbox, s3_settings, s3_extract_lake):
    fresh_sandbox.fault(kind="drift", path=LISTINGS.path, op="null", field="*.quote.USD", count=1)
    assert run_many([LISTINGS], s3_settings) == 0
    table = s3_extract_lake.read_parquet(latest(s3_extract_lake, LISTINGS.name).files)
    assert table.column("price_usd").null_count == 450 and table.column("crypto_id").null_count == 0

    fresh_sandbox.fault(kind="drift", path=LISTINGS.path, op="string", field="*.quote.USD.price", count=1)
    assert run_many([LISTINGS], s3_settings) == 0
    table = s3_extract_lake.read_parquet(latest(s3_extract_lake, LISTINGS.name).files)
    assert table.column("price_usd").null_count == 0 and str(table.schema.field("price_usd").type) == "double"

    fresh_sandbox.fault(kind="drift", path=LISTINGS.path, op="missing", field="*.id", count=1)
    assert run_many([LISTINGS], s3_settings) == 1  # nothing usable: every item quarantined, the run failed
    record = latest(s3_extract_lake, LISTINGS.name)
    assert record.status == "failed" and record.files == [] and record.details["rejected_items"] == 450
    envelope = json.loads(s3_extract_lake.read_bytes(record.details["quarantined"][0]))
    assert len(envelope["items"]) == 450 and "required field 'id'" in envelope["items"][0]["error"]


def test_one_bad_item_is_quarantined_and_the_rest_of_the_page_lands(fresh_sandbox, s3_settings, s3_extract_lake):
    fourth = fresh_sandbox.api(LISTINGS.path, limit=450)["data"][3]
    fresh_sandbox.fault(kind="drift", path=LISTINGS.path, op="missing", field="3.id", count=1)
    assert run_many([LISTINGS], s3_settings) == 0
    record = latest(s3_extract_lake, LISTINGS.name)
    assert record.status == "success" and record.rows == 449 and record.details["rejected_items"] == 1
    assert fourth["id"] not in s3_extract_lake.read_parquet(record.files).column("crypto_id").to_pylist()
    [path] = record.details["quarantined"]
    [bad] = json.loads(s3_extract_lake.read_bytes(path))["items"]
    assert bad["key"] == 3 and "required field 'id' is missing" in bad["error"]
    assert bad["item"]["symbol"] == fourth["symbol"]

    fresh_sandbox.fault(kind="drift", path=LISTINGS.path, op="string", field="*.cmc_rank", count=1)
    assert run_many([LISTINGS], s3_settings) == 0  # ranks sent as text are ranks: nothing NULL, nothing lost
    record = latest(s3_extract_lake, LISTINGS.name)
    assert record.rows == 450 and record.details["nulled_fields"] == {} and record.details["rejected_items"] == 0
    assert s3_extract_lake.read_parquet(record.files).column("cmc_rank").null_count == 0


def test_rerunning_after_a_partial_run_fills_the_gap_without_duplicates(fresh_sandbox, s3_settings,
                                                                         s3_extract_lake):
    info = EXTRACTORS["crypto_info"]
    assert run_many([EXTRACTORS["crypto_map"]], s3_settings) == 0
    fresh_sandbox.fault(kind="error", status=500, path=info.path, after=2, count=6)  # batch 3 never succeeds
    assert run_many([info], s3_settings) == 4
    partial = latest(s3_extract_lake, info.name)
    [failed] = partial.details["failed"]
    assert len(failed["ids"]) == 100

    assert run_many([info], s3_settings) == 0
    second = latest(s3_extract_lake, info.name)
    assert second.details["retried"] == 100 and second.rows == 100
    ids = []
    for record in Ledger(s3_extract_lake).snapshots(info.name):
        ids += s3_extract_lake.read_parquet(record.files).column("crypto_id").to_pylist()
    map_ids = s3_extract_lake.read_parquet(Ledger(s3_extract_lake).latest("extract", "crypto_map").files)
    assert sorted(ids) == sorted(map_ids.column("crypto_id").to_pylist())  # every id once


def test_low_priority_extractors_skip_when_credits_run_short(fresh_sandbox, s3_settings, s3_extract_lake):
    settings = replace(s3_settings, cmc_credit_margin=0.999)  # reserve 9,990 of 10,000
    jobs = [registry.job(n) for n in ("exchange_map", "exchange_assets", "crypto_listings_latest")]
    assert [j.priority for j in jobs] == ["high", "low", "high"]  # as the pipeline spec declares them
    assert run_many(jobs, settings) == 0
    assets = latest(s3_extract_lake, "exchange_assets")
    assert assets.status == "skipped" and "reserve" in assets.details["skip_reason"]
    assert latest(s3_extract_lake, "crypto_listings_latest").status == "success"  # high priority runs anyway


def _cli_extract(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptolake", "--log-json", "extract", *args], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_an_invalid_key_fails_fast_with_the_api_message(fresh_sandbox, stack_env):
    bad_key = "00000000-bad0-key0-0000-" + uuid.uuid4().hex[:12]
    env = {**stack_env, **extract_env(fresh_sandbox), "CMC_API_KEY": bad_key,
           "LAKE_URI": f"s3://cryptolake/tests/badkey-{uuid.uuid4().hex[:8]}"}
    result = _cli_extract(env, "--group", "daily")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: CoinMarketCap refused GET /v1/key/info (HTTP 401, error 1001): "
                           "This API Key is invalid.") and "CMC_API_KEY" in last
    assert bad_key not in result.stderr + result.stdout


def test_the_monthly_quota_stops_the_group_cleanly(stack_env):
    server = start_sandbox("--rate-limit", "100000", "--monthly-credits", "40")
    try:
        lake_uri = f"s3://cryptolake/tests/quota-{uuid.uuid4().hex[:8]}"
        env = {**stack_env, **extract_env(server), "LAKE_URI": lake_uri, "CMC_CREDIT_MARGIN": "0"}
        result = _cli_extract(env, "--group", "init")
        assert result.returncode == 5, result.stderr[-2000:]
        assert "monthly quota reached" in result.stderr
        lake = Lake.from_settings(settings_for(lake_uri, env))
        ledger = Ledger(lake)
        assert ledger.latest("extract", "exchange_map").status == "success"  # kept
        stopped = [n for n in EXTRACTORS if (r := latest(lake, n)) and r.error and "quota" in r.error
                   and not r.details.get("not_run")]
        assert len(stopped) == 1
        order = list(EXTRACTORS)
        after = order[order.index(stopped[0]) + 1:]
        assert after, f"{stopped[0]} ran last: no extractor after it to show the stop"
        for name in after:  # nothing after it ran, and the ledger says so
            record = latest(lake, name)
            assert record.status == "failed" and record.details == {"not_run": True} and not record.credits
            assert record.error == f"not run: the plan's quota ran out during {stopped[0]}"
    finally:
        server.process.terminate()
        server.process.wait(10)
