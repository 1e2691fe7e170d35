"""Cleaning on synthetic bronze with planted defects: quarantine with reasons, cleared outliers, duplicates,
NULL ratios for zero or missing divisors, derived labels, the counts in the ledger; failures stay per table."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from cryptolake.lake import Lake, bronze_path
from cryptolake.ledger import Ledger, RunRecord, new_run_id
from cryptolake.spark_apps.transform.runner import run_group
from tests.conftest import settings_for
from tests.transform import expected as E
from tests.transform.bronze import Market

pytestmark = pytest.mark.spark
MONDAY = date(2026, 1, 5)
TABLES = ["dim_exchange_info", "fact_exchange_assets", "fact_crypto_market", "fact_crypto_daily",
          "fact_crypto_category", "fact_global_market", "fact_market_sentiment"]


@pytest.fixture(scope="module")
def dirty(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("dirty") / "lake"
    settings = settings_for(root.as_uri(), {})
    lake = Lake.from_settings(settings)
    market = Market(dirty=True)
    for n in range(2):
        market.write_day(lake, MONDAY + timedelta(days=n))
    market.write_history(lake, MONDAY)
    outcome = run_group(spark, settings, "all", lake, tables=TABLES, maintenance=False)
    return lake, settings, outcome


def test_rows_that_break_the_contract_are_quarantined_with_their_reasons(dirty):
    lake, _, outcome = dirty
    assert outcome.exit_code == 0
    results = {r.table: r for r in outcome.results}
    quarantine = E.silver(lake, "_quarantine")
    market_rejects = quarantine[quarantine.table == "fact_crypto_market"]
    assert sorted(market_rejects.reason.unique()) == ["price_usd is not positive", "price_usd is null"]
    assert len(market_rejects) == results["fact_crypto_market"].rows_quarantined == 2 * 6  # 2 per snapshot
    assert {json.loads(r)["crypto_id"] for r in market_rejects.record} == {90001, 90002}
    assert market_rejects.source_file.str.startswith("bronze/crypto_listings_latest/").all()
    sentiment_rejects = quarantine[quarantine.table == "fact_market_sentiment"]
    assert list(sentiment_rejects.reason.unique()) == ["fear_greed_score outside 0..100"]
    assert len(sentiment_rejects) == 2  # the 17:00 snapshot of each day

    market = E.silver(lake, "fact_crypto_market")
    assert not market.crypto_id.isin([90001, 90002]).any()
    assert not market.duplicated(["crypto_id", "snapshot_timestamp"]).any()
    assert (market.cmc_rank != 999).all()  # of two rows for one key, the better ranked one is kept


def test_outliers_are_cleared_and_ratios_without_a_divisor_are_null(dirty):
    lake, _, outcome = dirty
    market = E.silver(lake, "fact_crypto_market")
    coin = Market().coin_ids[3]  # its market cap was planted negative
    assert market[market.crypto_id == coin].market_cap_usd.isna().all()
    assert market[market.crypto_id == coin].volume_to_market_cap_ratio.isna().all()
    zero_max = market[market.max_supply == 0]
    assert len(zero_max) and zero_max.supply_utilization.isna().all()
    no_max = market[market.max_supply.isna()]
    assert len(no_max) and no_max.supply_utilization.isna().all()
    expected, _ = E.market(lake)
    E.assert_close(market, expected, ["crypto_id", "snapshot_timestamp"],
                   ["volume_to_market_cap_ratio", "missing_supply_ratio", "supply_utilization",
                    "fully_diluted_cap_ratio"])

    world = E.silver(lake, "fact_global_market")
    at_13 = world[world.snapshot_timestamp.dt.hour == 13]
    assert at_13.btc_dominance.isna().all() and at_13.btc_dominance_delta.isna().all()
    E.assert_close(world, E.global_facts(lake), ["snapshot_timestamp"],
                   ["btc_dominance", "btc_dominance_delta", "market_liquidity_ratio", "crypto_growth_rate_30d"])

    categories = E.silver(lake, "fact_crypto_category")
    assert categories[categories.num_tokens == 0].dominance_per_token.isna().all()
    assert categories[categories.market_cap == 0].volume_to_market_cap_ratio.isna().all()
    E.assert_close(categories, E.category_facts(lake), ["category_id", "snapshot_timestamp"],
                   ["volume_to_market_cap_ratio", "dominance_per_token", "market_cap_change_rate",
                    "volume_change_rate", "price_change_index"])

    assets = E.silver(lake, "fact_exchange_assets")
    assert assets[assets.exchange_id == 200].wallet_weight.isna().all()  # its spot volume is 0
    E.assert_close(assets, E.exchange_assets(lake), ["exchange_id", "wallet_address", "crypto_id",
                                                     "snapshot_timestamp"],
                   ["total_usd_value", "spot_volume_usd", "wallet_weight"])

    sentiment = E.silver(lake, "fact_market_sentiment")
    assert sentiment.sentiment_label.notna().all()
    history = sentiment[sentiment.source == "historical"].set_index("fear_greed_score").sentiment_label
    # odd days came without a label: derived from the score; even days keep the API's own label
    assert history[21] == "Extreme fear" and history[25] == "Fear" and history[22] == "Fear"


def test_the_ledger_has_the_counts_per_table(dirty):
    lake, _, outcome = dirty
    record = Ledger(lake).latest("transform", "fact_crypto_market")
    details = record.details
    assert details["rows_in"] == 6 * (12 + 3)  # 12 coins + a duplicate + two bad rows, 6 snapshots
    assert details["rows_quarantined"] == 12 and details["duplicates_dropped"] == 6
    assert details["outliers_cleared"] == {"market_cap_usd": 6}
    assert details["rows_written"] == record.rows == 6 * 12
    assert details["delta_version"] == 1 and details["snapshots"] == {"crypto_listings_latest": 6}
    assert len(details["state"]["crypto_listings_latest"]["after"]) == 6


def test_quarantine_is_idempotent_when_a_batch_is_taken_in_again(dirty, spark):
    lake, settings, _ = dirty
    before = len(E.silver(lake, "_quarantine"))
    for table in ("fact_crypto_market", "fact_market_sentiment"):
        newest = lake.list_files(f"_meta/transform/{table}", ".json")[-1]
        lake.fs.delete_file(f"{lake._root}/{newest}")
    again = run_group(spark, settings, "all", lake, tables=["fact_crypto_market", "fact_market_sentiment"],
                      maintenance=False)
    assert again.exit_code == 0 and {r.status for r in again.results} == {"success"}
    assert len(E.silver(lake, "_quarantine")) == before
    assert {r.rows_written for r in again.results} == {0}
    market = E.silver(lake, "fact_crypto_market")
    assert len(market) == 6 * 12 and not market.duplicated(["crypto_id", "snapshot_timestamp"]).any()


def test_a_failing_table_does_not_stop_the_others(spark, file_lake):
    settings = settings_for(file_lake.uri, {})
    market = Market()
    ts = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
    market.write_day(file_lake, ts.date(), times=[ts.time()], extractors=["global_metrics_latest",
                                                                           "fear_greed_latest"])
    # a crypto_categories snapshot whose file is not Parquet (written behind the extraction's back)
    path = bronze_path("crypto_categories", ts)
    file_lake.write_bytes(path, b"this is not parquet")
    Ledger(file_lake).write(RunRecord(new_run_id(ts), "extract", "crypto_categories", ts, status="success",
                                      ended_at=ts, rows=3, files=[path]))
    outcome = run_group(spark, settings, "init", file_lake, tables=[  # the category tables fail, the others run
        "dim_crypto_category", "fact_crypto_category", "fact_global_market", "fact_market_sentiment"])
    assert outcome.exit_code == 1
    assert outcome.failed == ["dim_crypto_category", "fact_crypto_category"]
    assert {r.table: r.status for r in outcome.results} == {"fact_global_market": "success",
                                                             "fact_market_sentiment": "success"}
    failed = Ledger(file_lake).latest("transform", "fact_crypto_category", ("failed",))
    assert failed.error and "state" not in failed.details
    group = Ledger(file_lake).latest("transform", "group-init", ("partial",))
    assert group.details["failed"] == ["dim_crypto_category", "fact_crypto_category"]
