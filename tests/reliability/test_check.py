"""The independent check itself: it passes after a clean init cycle, and it fails, with counts, when a bronze
file, a silver row or a warehouse row is lost or duplicated behind the pipeline's back (keys with a NULL part and
derived keys included), and loudly when a table it reads cannot be read."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from sqlalchemy import text

from cryptolake.ledger import Ledger, RunRecord
from cryptolake.warehouse.migrate import engine_for
from tests.reliability.check import Tally, assert_nothing_lost, check_bronze, check_silver
from tests.reliability.secret_scan import assert_no_secrets, collect_outputs

pytestmark = [pytest.mark.spark, pytest.mark.timeout(2400)]


@pytest.fixture
def loaded(world):
    return world


def test_a_clean_init_cycle_passes_the_check_and_leak_no_secret(loaded):
    tally = assert_nothing_lost(loaded)
    assert tally.checked["bronze:crypto_listings_latest"] > 0 and tally.checked["dw:fact_crypto_market"] > 0
    assert_no_secrets({**loaded.captured(), **collect_outputs(lake=loaded.lake)}, loaded.secrets)


def test_a_bronze_file_missing_is_found(loaded):
    lake = loaded.lake
    path = lake.list_files("bronze/global_metrics_latest", ".parquet")[0]
    data = lake.read_bytes(path)
    lake.delete(path)
    try:
        with pytest.raises(AssertionError, match=r"bronze:global_metrics_latest.*lost 1"):
            assert_nothing_lost(loaded)
    finally:
        lake.write_bytes(path, data)


def test_a_bronze_file_copied_under_another_name_is_found(loaded):
    lake = loaded.lake
    path = lake.list_files("bronze/fear_greed_latest", ".parquet")[0]
    copy = path.replace(".parquet", "-part9.parquet")
    lake.write_bytes(copy, lake.read_bytes(path))
    try:
        with pytest.raises(AssertionError, match=r"bronze:fear_greed_latest: 1 bronze file\(s\) in no ledger"):
            assert_nothing_lost(loaded)
    finally:
        lake.delete(copy)


def test_a_warehouse_row_deleted_or_a_silver_row_missing_is_found(loaded):
    engine = engine_for(loaded.settings.warehouse_url)
    try:
        with engine.begin() as connection:
            row = connection.execute(text("DELETE FROM dw.fact_global_market WHERE snapshot_timestamp = "
                                          "(SELECT min(snapshot_timestamp) FROM dw.fact_global_market) "
                                          "RETURNING *")).mappings().one()
        with pytest.raises(AssertionError, match=r"dw:fact_global_market: 1 silver row\(s\) neither in dw"):
            assert_nothing_lost(loaded)
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO dw.fact_global_market ({', '.join(row)}) VALUES "
                                    f"({', '.join(':' + c for c in row)})"), dict(row))
        engine.dispose()
    assert_nothing_lost(loaded)


def test_a_bronze_file_listed_by_a_second_ledger_record_is_found(loaded):
    ledger = Ledger(loaded.lake)
    record = ledger.latest("extract", "crypto_categories")
    twin = RunRecord.from_json(record.to_json())
    twin.run_id = record.run_id[:-6] + "ffffff"
    path = ledger.write(twin)
    try:
        with pytest.raises(AssertionError) as failed:
            assert_nothing_lost(loaded)
        assert "is listed by 2 ledger records" in str(failed.value)
        assert re.search(r"bronze:crypto_categories: checked \d+, lost 0, duplicated [1-9]", str(failed.value))
    finally:
        loaded.lake.delete(path)


def test_an_unreadable_silver_table_fails_the_check_instead_of_counting_as_absent(loaded):
    """A Delta log that does not parse: the check says so, where taking the table for one never built would
    have passed (fact_market_sentiment's keys would simply not be compared)."""
    lake = loaded.lake
    log = "silver/fact_market_sentiment/_delta_log"
    versions = [int(path.rsplit("/", 1)[1].split(".")[0]) for path in lake.list_files(log, ".json")]
    assert versions, "the init cycle built no fact_market_sentiment"
    broken = f"{log}/{max(versions) + 1:020d}.json"
    lake.write_bytes(broken, b"not a Delta commit\n")
    try:
        with pytest.raises(AssertionError, match=r"silver:fact_market_sentiment: the table is in the lake but "
                                                 r"cannot be read: DeltaError"):
            assert_nothing_lost(loaded)
    finally:
        lake.delete(broken)


def test_keys_with_a_null_part_and_derived_keys_are_compared(loaded):
    """Bronze rows silver never got, behind the pipeline's back: a listing whose crypto_id is NULL, and a fear &
    greed history day (its silver key derived: ("historical", the index's time))."""
    bronze = check_bronze(loaded, Ledger(loaded.lake), Tally(), allow_orphans=False, served_since=0.0)
    market, history = bronze["crypto_listings_latest"], bronze["fear_greed_historical"]
    assert len(market) and len(history)
    tampered = {**bronze,
                "crypto_listings_latest": pd.concat([market, market.iloc[[0]].assign(crypto_id=None)]),
                "fear_greed_historical": pd.concat([history, history.iloc[[0]].assign(
                    index_timestamp=history["index_timestamp"].min() - pd.Timedelta(days=1))])}
    tally = Tally()
    check_silver(loaded, bronze, tally)
    assert tally.problems == []  # untouched, the same bronze passes
    check_silver(loaded, tampered, tally)
    problems = "\n".join(tally.problems)
    assert re.search(r"silver:fact_crypto_market: 1 bronze key\(s\) neither in silver.*\('NULL', ", problems), problems
    assert re.search(r"silver:fact_market_sentiment: 1 bronze key\(s\) neither in silver.*\('historical', ",
                     problems), problems
