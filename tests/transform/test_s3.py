"""The same transform on the S3 lake (s3a:// through the real S3 server), read back by delta-rs over S3."""

from __future__ import annotations

import uuid

import pytest
from deltalake import DeltaTable

from cryptolake.lake import Lake
from cryptolake.spark_apps.transform.features import CRYPTO_DAILY_FEATURES
from cryptolake.spark_apps.transform.runner import run_group
from tests.conftest import settings_for
from tests.transform import expected as E
from tests.transform.conftest import DAYS

pytestmark = pytest.mark.spark
EXTRACTORS = ("crypto_listings_latest", "crypto_categories", "global_metrics_latest", "fear_greed_latest",
              "fear_greed_historical")


def upload(master, lake: Lake, until, extractors) -> None:
    """The master bronze of `extractors` up to `until`, file by file, as the extraction would have written it."""
    for root in ("bronze", "_meta/extract"):
        for name in extractors:
            for path in sorted(p for p in (master / root / name).rglob("*") if p.is_file()):
                day = (path.parent.name.split("=")[1] if root == "bronze"
                       else f"{path.name[:4]}-{path.name[4:6]}-{path.name[6:8]}")
                if day <= until.isoformat():
                    lake.write_bytes(path.relative_to(master).as_posix(), path.read_bytes())


def test_the_5x_and_10x_groups_on_s3(sandbox_bronze, spark, stack_env):
    settings = settings_for(f"s3://cryptolake/tests/transform-{uuid.uuid4().hex[:10]}", stack_env)
    lake = Lake.from_settings(settings)
    upload(sandbox_bronze, lake, DAYS[2], EXTRACTORS)
    first = [run_group(spark, settings, group, lake) for group in ("5x", "10x")]
    assert [g.exit_code for g in first] == [0, 0]
    assert {r.status for g in first for r in g.results} == {"success"}

    storage = {"AWS_ENDPOINT_URL": stack_env["AWS_ENDPOINT_URL"], "AWS_ACCESS_KEY_ID": stack_env["AWS_ACCESS_KEY_ID"],
               "AWS_SECRET_ACCESS_KEY": stack_env["AWS_SECRET_ACCESS_KEY"], "AWS_REGION": stack_env["AWS_REGION"],
               "AWS_ALLOW_HTTP": "true"}
    market_rows, _ = E.market(lake)
    market = E.silver(lake, "fact_crypto_market", storage)
    E.assert_close(market, market_rows, ["crypto_id", "snapshot_timestamp"],
                   ["price_usd", "volume_to_market_cap_ratio", "supply_utilization", "run_id", "source_file"])
    E.assert_close(E.silver(lake, "fact_crypto_daily", storage), E.daily(market_rows), ["crypto_id", "snapshot_date"],
                   ["open_usd", "close_usd", "log_return", "volatility_7d", "corr_btc_30d", "drawdown"], rel=1e-7)
    E.assert_close(E.silver(lake, "fact_global_market", storage), E.global_facts(lake), ["snapshot_timestamp"],
                   ["market_liquidity_ratio", "stablecoin_market_share", "crypto_growth_rate_30d"])
    assert len(E.silver(lake, "fact_crypto_category", storage)) == len(E.bronze(lake, "crypto_categories"))
    assert market.source_file.str.match(r"^bronze/crypto_listings_latest/snapshot_date=").all()
    # the gold feature table too, one row per daily row, read by delta-rs over S3 without Spark
    gold = DeltaTable(lake.uri_of(CRYPTO_DAILY_FEATURES.path), storage_options=storage).to_pandas()
    assert len(gold) == len(E.silver(lake, "fact_crypto_daily", storage)) > 0 and gold.close_usd.notna().all()

    again = [run_group(spark, settings, group, lake) for group in ("5x", "10x")]
    assert [g.exit_code for g in again] == [0, 0]
    assert {r.status for g in again for r in g.results} == {"up-to-date"}
