"""The independent check itself: it passes after a clean init cycle, and it fails, with counts, when a bronze
file, a silver row or a warehouse row is lost or duplicated behind the pipeline's back."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from cryptolake.warehouse.migrate import engine_for
from tests.reliability.check import assert_nothing_lost
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
    from cryptolake.ledger import Ledger, RunRecord

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
