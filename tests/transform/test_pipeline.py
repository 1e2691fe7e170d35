"""Sandbox bronze -> silver, end to end on a file lake, checked against an independent computation.

One module fixture runs the phases once and keeps what each left behind; the tests then check each phase:
  A  init over six days of sandbox bronze (Mon-Fri, weekend gap, Mon)
  A2 the same group again with no new bronze: nothing may change (no Delta commit at all)
  A3 every table's newest ledger record removed (= killed after the Delta commit, before the record), run again:
     the snapshots are taken in a second time and the tables must be identical (no duplicates)
  B  one more day of bronze, then the daily, 5x and 10x groups as the schedule runs them
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
from deltalake import DeltaTable

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.spark_apps.transform.features import FEATURE_LIST
from cryptolake.spark_apps.transform.runner import run_group
from cryptolake.spark_apps.transform.tables import QUARANTINE, TABLE_LIST
from tests.conftest import settings_for
from tests.transform import expected as E
from tests.transform.conftest import DAYS, copy_bronze

pytestmark = pytest.mark.spark
DAY6, DAY7 = DAYS[-2], DAYS[-1]
# every table a run builds: (name, lake path, sort keys); the gold feature tables come after the silver ones
BUILT = [(t.name, f"silver/{t.name}", [*t.merge_keys] if t.kind != "daily" else ["crypto_id", "snapshot_date"])
         for t in TABLE_LIST] + [(f.name, f.path, ["crypto_id", "feature_date"]) for f in FEATURE_LIST]
NAMES = [name for name, _, _ in BUILT]


def capture(lake: Lake) -> dict:
    """Every silver and gold table (data sorted by its keys, version) and every transform ledger record."""
    tables, versions = {}, {}
    for name, path, keys in BUILT:
        dt = DeltaTable(lake.uri_of(path))
        tables[name] = dt.to_pandas().sort_values(keys).reset_index(drop=True)
        versions[name] = dt.version()
    records = {name: Ledger(lake).runs("transform", name) for name in NAMES}
    return {"tables": tables, "versions": versions, "records": records}


@pytest.fixture(scope="module")
def pipeline(sandbox_bronze, spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline") / "lake"
    copy_bronze(sandbox_bronze, root, DAY6)
    settings = settings_for(root.as_uri(), {})
    lake = Lake.from_settings(settings)
    out = SimpleNamespace(lake=lake, settings=settings, root=root)

    out.init = run_group(spark, settings, "init", lake)
    out.a = capture(lake)
    out.again = run_group(spark, settings, "init", lake)
    out.a2 = capture(lake)
    for name in NAMES:  # as if every table's run had been killed right after its Delta commit
        newest = lake.list_files(f"_meta/transform/{name}", ".json")[-1]
        (root / newest).unlink()
    out.recovered = run_group(spark, settings, "init", lake)
    out.a3 = capture(lake)

    copy_bronze(sandbox_bronze, root, DAY7)
    out.day7 = [run_group(spark, settings, group, lake) for group in ("daily", "5x", "10x")]
    out.b = capture(lake)
    return out


def _lake_until(pipeline, day, tmp_path) -> Lake:
    """A lake holding only the bronze up to `day`, for the expected values of an earlier phase."""
    root = tmp_path / f"bronze-{day}"
    copy_bronze(pipeline.root, root, day)
    return Lake.from_settings(settings_for(root.as_uri(), {}))


def check_against_bronze(tables: dict, bronze: Lake) -> None:
    market, rejected = E.market(bronze)
    assert rejected == 0  # the sandbox sends clean prices
    E.assert_close(tables["fact_crypto_market"], market, ["crypto_id", "snapshot_timestamp"],
                   ["price_usd", "market_cap_usd", "volume_24h_usd", "cmc_rank", "volume_to_market_cap_ratio",
                    "missing_supply_ratio", "supply_utilization", "fully_diluted_cap_ratio", "run_id",
                    "source_file"])
    E.assert_close(tables["fact_crypto_daily"], E.daily(market), ["crypto_id", "snapshot_date"],
                   ["open_usd", "high_usd", "low_usd", "close_usd", "n_snapshots", "first_snapshot_timestamp",
                    "snapshot_timestamp", "log_return", "volatility_7d", "volatility_30d", "corr_btc_30d",
                    "running_max_close_usd", "drawdown", "run_id", "source_file"], rel=1e-7)
    E.assert_close(tables["fact_crypto_category"], E.category_facts(bronze), ["category_id", "snapshot_timestamp"],
                   ["num_tokens", "market_cap", "volume", "volume_to_market_cap_ratio", "dominance_per_token",
                    "market_cap_change_rate", "volume_change_rate", "price_change_index", "source_file"])
    E.assert_close(tables["fact_global_market"], E.global_facts(bronze), ["snapshot_timestamp"],
                   ["total_market_cap_usd", "btc_dominance", "market_liquidity_ratio", "defi_volume_share",
                    "stablecoin_market_share", "btc_dominance_delta", "eth_dominance_delta",
                    "crypto_growth_rate_30d", "run_id"])
    E.assert_close(tables["fact_exchange_assets"], E.exchange_assets(bronze),
                   ["exchange_id", "wallet_address", "crypto_id", "snapshot_timestamp"],
                   ["balance", "currency_price_usd", "total_usd_value", "spot_volume_usd", "wallet_weight"])

    crypto_map = E.bronze(bronze, "crypto_map")
    assert len(tables["dim_crypto_map"]) == len(crypto_map)
    newest = crypto_map.sort_values("snapshot_timestamp").groupby("crypto_id").last().reset_index()
    first_seen = crypto_map.groupby("crypto_id").snapshot_timestamp.min()
    ids = tables["dim_crypto_id"].set_index("crypto_id")
    assert len(newest) and sorted(ids.index) == sorted(newest.crypto_id)
    for _, row in newest.iterrows():
        assert ids.loc[row.crypto_id, "name"] == row["name"] and ids.loc[row.crypto_id, "symbol"] == row.symbol
        assert ids.loc[row.crypto_id, "snapshot_timestamp"] == row.snapshot_timestamp
        assert ids.loc[row.crypto_id, "first_seen_timestamp"] == first_seen[row.crypto_id]
    assert len(tables["dim_crypto_info"]) == len(E.bronze(bronze, "crypto_info"))
    assert len(tables["dim_exchange_info"]) == len(E.bronze(bronze, "exchange_info"))
    assert set(tables["dim_exchange_id"].exchange_id) == set(E.bronze(bronze, "exchange_map").exchange_id)
    assert set(tables["dim_crypto_category"].category_id) == set(E.bronze(bronze, "crypto_categories").category_id)
    links = E.bronze(bronze, "crypto_category")
    assert len(tables["link_crypto_category"]) == len(links.drop_duplicates(
        ["category_id", "crypto_id", "snapshot_timestamp"]))
    latest, history = E.bronze(bronze, "fear_greed_latest"), E.bronze(bronze, "fear_greed_historical")
    sentiment = tables["fact_market_sentiment"]
    assert (sentiment.source == "latest").sum() == len(latest)
    assert (sentiment.source == "historical").sum() == history.index_timestamp.nunique()
    assert sentiment.sentiment_label.notna().all()

    for table in TABLE_LIST:  # keys unique, lineage everywhere
        frame = tables[table.name]
        keys = list(table.merge_keys) if table.kind != "daily" else ["crypto_id", "snapshot_date"]
        assert not frame.duplicated(keys).any(), table.name
        assert frame.run_id.notna().all() and frame.source_file.str.startswith("bronze/").all(), table.name


def test_first_run_builds_every_table_as_computed_independently(pipeline, tmp_path):
    assert pipeline.init.exit_code == 0 and not pipeline.init.failed
    assert {r.table: r.status for r in pipeline.init.results} == {n: "success" for n in NAMES}
    check_against_bronze(pipeline.a["tables"], _lake_until(pipeline, DAY6, tmp_path))


def test_running_again_without_new_bronze_changes_nothing(pipeline):
    assert pipeline.again.exit_code == 0
    assert {r.status for r in pipeline.again.results} == {"up-to-date"}
    assert pipeline.a2["versions"] == pipeline.a["versions"]  # not even an empty commit
    counts = {n: len(r) for n, r in pipeline.a["records"].items()}
    assert {n: len(r) for n, r in pipeline.a2["records"].items()} == counts
    for name in NAMES:
        pd.testing.assert_frame_equal(pipeline.a2["tables"][name], pipeline.a["tables"][name])


def test_a_run_lost_after_its_commit_is_redone_without_duplicates(pipeline):
    assert pipeline.recovered.exit_code == 0
    assert {r.status for r in pipeline.recovered.results} == {"success"}  # everything was taken in again
    for name in NAMES:
        pd.testing.assert_frame_equal(pipeline.a3["tables"][name], pipeline.a["tables"][name], obj=name)


def test_a_new_day_is_added_incrementally(pipeline, tmp_path):
    assert all(g.exit_code == 0 for g in pipeline.day7)
    check_against_bronze(pipeline.b["tables"], pipeline.lake)
    # the daily table recomputed the new day only, and earlier days are untouched
    # built by the daily group, then up to date when 10x runs on the same bronze
    [daily] = [r for g in pipeline.day7 for r in g.results if r.table == "fact_crypto_daily" and r.status == "success"]
    assert daily.details["recomputed"] == [DAY7.isoformat(), DAY7.isoformat()]
    before, after = pipeline.a3["tables"]["fact_crypto_daily"], pipeline.b["tables"]["fact_crypto_daily"]
    pd.testing.assert_frame_equal(after[after.snapshot_date <= DAY6].reset_index(drop=True), before)
    # the market MERGE looked at the new day's partition only (no file of earlier days was read or rewritten)
    [market] = [r for g in pipeline.day7 for r in g.results if r.table == "fact_crypto_market" and r.status == "success"]
    metrics = market.details["delta_metrics"]
    assert int(metrics["numTargetFilesRemoved"]) == 0 and int(metrics["numTargetRowsInserted"]) == market.rows_written
    # tables of groups that did not run kept their version
    assert pipeline.b["versions"]["dim_crypto_info"] == pipeline.a3["versions"]["dim_crypto_info"]


def test_an_independent_delta_reader_sees_the_declared_schemas(pipeline):
    from pyspark.sql import types as T

    kinds = {T.LongType: "long", T.IntegerType: "integer", T.DoubleType: "double", T.StringType: "string",
             T.BooleanType: "boolean", T.TimestampType: "timestamp", T.DateType: "date"}
    for table in [*TABLE_LIST]:
        dt = DeltaTable(pipeline.lake.uri_of(f"silver/{table.name}"))
        fields = dt.schema().fields
        assert [f.name for f in fields] == table.column_names, table.name
        for field, declared in zip(fields, table.schema.fields):
            assert field.nullable == declared.nullable, (table.name, field.name)
            if isinstance(declared.dataType, T.ArrayType):
                assert field.type.type == "array", (table.name, field.name)
            else:
                assert field.type.type == kinds[type(declared.dataType)], (table.name, field.name, field.type)
        assert dt.metadata().partition_columns == (["snapshot_date"] if table.partitioned else [])
        assert dt.to_pyarrow_table().num_rows == len(pipeline.b["tables"][table.name])
    assert not pipeline.lake.exists(f"silver/{QUARANTINE}")  # the sandbox sent nothing to reject


def test_the_ledger_records_counts_versions_and_lineage(pipeline):
    ledger, lake = Ledger(pipeline.lake), pipeline.lake
    extract_runs = {r.run_id: r for name in ("crypto_listings_latest",) for r in ledger.snapshots(name)}
    record = ledger.latest("transform", "fact_crypto_market")
    assert record.status == "success" and record.params["group"] == "daily"
    assert record.details["rows_written"] == record.rows > 0 and record.details["rows_quarantined"] == 0
    assert record.details["delta_version"] == pipeline.b["versions"]["fact_crypto_market"]
    taken_in = record.upstream["crypto_listings_latest"]
    assert taken_in and set(taken_in) <= set(extract_runs)
    assert record.details["rows_in"] == sum(extract_runs[r].rows for r in taken_in)
    # every bronze file and run named by a silver row exists and belongs together
    market = pipeline.b["tables"]["fact_crypto_market"]
    assert len(market)
    for run_id, files in market.groupby("run_id").source_file.unique().items():
        assert set(files) <= set(extract_runs[run_id].files)
    # the Delta commit names the transform run that wrote it
    history = DeltaTable(lake.uri_of("silver/fact_crypto_market")).history(1)[0]
    assert record.run_id in history["userMetadata"]
    group = ledger.latest("transform", "group-daily")
    assert group.details["tables"]["fact_crypto_market"]["run_id"] == record.run_id
