"""Every extractor against the real sandbox API and the real S3 server; bronze read back and checked."""

from __future__ import annotations

import json
import math

import pyarrow.compute as pc
import pytest

from cryptolake.ledger import Ledger
from cryptolake.services.extract.base import Pages
from cryptolake.services.extract.registry import EXTRACTORS, group
from cryptolake.services.extract.runner import run_many


def bronze(lake, name):
    record = Ledger(lake).latest("extract", name)
    return record, lake.read_parquet(record.files)


def test_init_group_lands_every_extractor_and_matches_the_api(fresh_sandbox, s3_settings, s3_extract_lake):
    lake, api = s3_extract_lake, fresh_sandbox.api
    assert run_many(group("init"), s3_settings) == 0
    ledger = Ledger(lake)
    for name, extractor in EXTRACTORS.items():
        record = ledger.latest("extract", name)
        assert record is not None and record.status == "success", name
        for path in record.files:
            assert path.startswith(f"bronze/{name}/snapshot_date=") and path.endswith(".parquet")
        table = lake.read_parquet(record.files)
        assert table.schema == extractor.schema, name
        assert set(table.column("run_id").to_pylist()) == {record.run_id}
        assert set(table.column("snapshot_timestamp").to_pylist()) == {record.started_at}
        if not (isinstance(extractor.plan, Pages) and extractor.plan.total_setting is None):
            # what the API charged stays within the estimate the run's ceiling is derived from
            assert record.credits <= record.details["estimated_credits"], name

    _, crypto_map = bronze(lake, "crypto_map")
    expected = api("/v1/cryptocurrency/map", listing_status="active", limit=5000, sort="id")["data"]
    assert crypto_map.column("crypto_id").to_pylist() == [c["id"] for c in expected]

    _, listings = bronze(lake, "crypto_listings_latest")
    top = api("/v1/cryptocurrency/listings/latest", limit=5000)["data"]  # frozen clock: same market
    assert listings.num_rows == len(top)  # init asks for the top 5,000 (the spec's listings_limit)
    by_id = {row["crypto_id"]: row for row in listings.to_pylist()}
    for coin in top[:20]:
        row = by_id[coin["id"]]
        assert row["price_usd"] == coin["quote"]["USD"]["price"]
        assert row["cmc_rank"] == coin["cmc_rank"] and row["symbol"] == coin["symbol"]
        assert row["circulating_supply"] == coin["circulating_supply"]

    _, info = bronze(lake, "crypto_info")
    assert sorted(info.column("crypto_id").to_pylist()) == sorted(c["id"] for c in expected)

    _, exchanges = bronze(lake, "exchange_map")
    _, assets = bronze(lake, "exchange_assets")
    assert set(assets.column("exchange_id").to_pylist()) <= set(exchanges.column("exchange_id").to_pylist())
    first = assets.slice(0, 1).to_pylist()[0]
    wallets = api("/v1/exchange/assets", id=first["exchange_id"])["data"]
    assert any(w["wallet_address"] == first["wallet_address"] and w["balance"] == first["balance"] for w in wallets)

    _, categories = bronze(lake, "crypto_categories")
    links_record, links = bronze(lake, "crypto_category")
    size = min(25, categories.num_rows)  # CMC_CATEGORY_SLICE defaults to 25
    assert links_record.details["offset"] == 0 and links_record.details["next_offset"] == size % categories.num_rows
    assert set(links.column("category_id").to_pylist()) <= set(categories.column("category_id").to_pylist())

    _, global_metrics = bronze(lake, "global_metrics_latest")
    direct = api("/v1/global-metrics/quotes/latest")["data"]
    row = global_metrics.to_pylist()[0]
    assert row["btc_dominance"] == direct["btc_dominance"]
    assert row["total_market_cap_usd"] == direct["quote"]["USD"]["total_market_cap"]

    _, history = bronze(lake, "fear_greed_historical")
    newest = api("/v3/fear-and-greed/historical", limit=1)["data"][0]
    assert history.num_rows > 500  # more than one page of 500
    assert pc.max(history.column("index_timestamp")).as_py().timestamp() == int(newest["timestamp"])

    _, key = bronze(lake, "key_info")
    assert key.column("credit_limit_monthly").to_pylist() == [10000]


def test_credits_are_counted_from_the_api_and_match_the_estimate(fresh_sandbox, s3_settings, s3_extract_lake):
    assert run_many([EXTRACTORS["crypto_listings_latest"], EXTRACTORS["crypto_info"]], s3_settings) == 0
    ledger = Ledger(s3_extract_lake)
    listings = ledger.latest("extract", "crypto_listings_latest")
    assert listings.credits == math.ceil(450 / 200) == listings.details["estimated_credits"]
    info = ledger.latest("extract", "crypto_info")
    assert info.credits == 0  # no crypto_map snapshot yet: nothing to enrich, nothing spent
    used = fresh_sandbox.control("GET", "usage")["keys"]
    assert next(iter(used.values()))["usage"]["current_month"]["credits_used"] == 3


def test_an_unchanged_map_writes_nothing_and_says_so(fresh_sandbox, s3_settings, s3_extract_lake):
    crypto_map = EXTRACTORS["crypto_map"]
    assert run_many([crypto_map], s3_settings) == 0
    assert run_many([crypto_map], s3_settings) == 0
    runs = Ledger(s3_extract_lake).runs("extract", "crypto_map")
    assert [r.status for r in runs] == ["success", "skipped"]
    assert runs[1].details["unchanged"] is True and runs[1].details["compared_with"] == runs[0].run_id
    assert len(s3_extract_lake.list_files("bronze/crypto_map")) == 1

    fresh_sandbox.advance_days(20)  # coins appear and go inactive over time
    assert run_many([crypto_map], s3_settings) == 0
    runs = Ledger(s3_extract_lake).runs("extract", "crypto_map")
    assert runs[-1].status == "success" and len(s3_extract_lake.list_files("bronze/crypto_map")) == 2


@pytest.mark.parametrize("name, field", [("crypto_map", "rank"), ("crypto_map", "name"),
                                         ("crypto_map", "platform"), ("exchange_map", "is_active"),
                                         ("exchange_map", "last_historical_data")])
def test_a_map_whose_ids_stay_but_attributes_change_is_written(fresh_sandbox, s3_settings, s3_extract_lake,
                                                               name, field):
    """Same id set, one attribute changed in every item: a new snapshot each time it changes (also back);
    the same content again, even with ids sent as text, is skipped."""
    extractor = EXTRACTORS[name]
    assert run_many([extractor], s3_settings) == 0
    fresh_sandbox.fault(kind="drift", path=extractor.path, op="null", field=f"*.{field}", count=1)
    assert run_many([extractor], s3_settings) == 0
    assert run_many([extractor], s3_settings) == 0
    fresh_sandbox.fault(kind="drift", path=extractor.path, op="string", field="*.id", count=1)
    assert run_many([extractor], s3_settings) == 0
    runs = Ledger(s3_extract_lake).runs("extract", name)
    assert [r.status for r in runs] == ["success", "success", "success", "skipped"]
    first, second, third = (s3_extract_lake.read_parquet(r.files) for r in runs[:3])
    assert first.column(extractor.id_column) == second.column(extractor.id_column)
    assert first.select([c.name for c in extractor.columns]) == third.select([c.name for c in extractor.columns])
    assert runs[3].details["compared_with"] == runs[2].run_id


def test_incremental_info_fetches_only_new_ids(fresh_sandbox, s3_settings, s3_extract_lake):
    assert run_many([EXTRACTORS["crypto_map"], EXTRACTORS["crypto_info"]], s3_settings) == 0
    fresh_sandbox.advance_days(20)
    assert run_many([EXTRACTORS["crypto_map"], EXTRACTORS["crypto_info"]], s3_settings) == 0
    ledger = Ledger(s3_extract_lake)
    maps = ledger.snapshots("crypto_map")
    first_ids = set(s3_extract_lake.read_parquet(maps[0].files).column("crypto_id").to_pylist())
    second_ids = set(s3_extract_lake.read_parquet(maps[1].files).column("crypto_id").to_pylist())
    infos = ledger.snapshots("crypto_info")
    second_info = set(s3_extract_lake.read_parquet(infos[1].files).column("crypto_id").to_pylist())
    assert second_info == second_ids - first_ids and second_info  # only the newcomers, and there are some
    assert infos[1].details["full_scan"] is False


def test_exchange_assets_rescans_only_the_active_set(fresh_sandbox, s3_settings, s3_extract_lake):
    extractors = [EXTRACTORS["exchange_map"], EXTRACTORS["exchange_assets"]]
    assert run_many(extractors, s3_settings) == 0
    assert run_many(extractors, s3_settings) == 0
    first, second = Ledger(s3_extract_lake).snapshots("exchange_assets")
    assert first.details["full_scan"] is True and second.details["full_scan"] is False
    active = set(s3_extract_lake.read_parquet(first.files).column("exchange_id").to_pylist())
    assert second.details["calls"] == len(active) < first.details["calls"]


def test_category_membership_rotates_through_all_categories(fresh_sandbox, stack_env, s3_settings,
                                                             s3_extract_lake):
    from dataclasses import replace

    settings = replace(s3_settings, cmc_category_slice=8)
    assert run_many([EXTRACTORS["crypto_categories"]], settings) == 0
    for _ in range(3):
        assert run_many([EXTRACTORS["crypto_category"]], settings) == 0
    runs = Ledger(s3_extract_lake).snapshots("crypto_category")
    assert [r.details["offset"] for r in runs] == [0, 8, 16]
    seen = set()
    for run in runs:
        seen |= set(s3_extract_lake.read_parquet(run.files).column("category_id").to_pylist())
    categories = s3_extract_lake.read_parquet(Ledger(s3_extract_lake).latest("extract", "crypto_categories").files)
    with_coins = {row["category_id"] for row in categories.to_pylist() if row["num_tokens"]}
    assert seen == with_coins  # 3 slices of 8 cover every category, wrapping around
    assert runs[-1].details["next_offset"] == 24 % categories.num_rows


def test_quarantine_envelope_is_readable_json(fresh_sandbox, s3_settings, s3_extract_lake):
    fresh_sandbox.fault(kind="malformed", path="/v3/fear-and-greed/historical", after=1, count=1)
    assert run_many([EXTRACTORS["fear_greed_historical"]], s3_settings) == 4
    record = Ledger(s3_extract_lake).latest("extract", "fear_greed_historical")
    [quarantined] = record.details["quarantined"]
    envelope = json.loads(s3_extract_lake.read_bytes(quarantined))
    assert quarantined.startswith(f"bronze/_quarantine/fear_greed_historical/snapshot_date={record.started_at:%Y-%m-%d}/")
    assert envelope["chunk"] == "start=501" and envelope["run_id"] == record.run_id
    assert "not the API's JSON envelope" in envelope["error"] and envelope["payload"]
