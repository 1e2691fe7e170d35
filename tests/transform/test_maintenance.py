"""The weekly group's maintenance: OPTIMIZE compacts the small files of frequent MERGEs, VACUUM deletes what
no version within the retention needs; the data does not change; one ledger record."""

from __future__ import annotations

from datetime import date, datetime, time, timezone

import pytest
from deltalake import DeltaTable

from cryptolake.ledger import Ledger
from cryptolake.spark_apps.transform.maintenance import maintain
from cryptolake.spark_apps.transform.runner import run_group
from tests.conftest import settings_for
from tests.transform import expected as E
from tests.transform.bronze import Market, write_snapshot

pytestmark = pytest.mark.spark


def test_weekly_maintenance_compacts_and_vacuums_without_changing_data(spark, file_lake, tmp_path):
    settings, market = settings_for(file_lake.uri, {}), Market()
    for hour in (9, 11, 13):  # three 10x runs: three small files
        ts = datetime.combine(date(2026, 1, 5), time(hour), tzinfo=timezone.utc)
        write_snapshot(file_lake, "global_metrics_latest", ts, market.global_metrics(ts))
        assert run_group(spark, settings, "10x", file_lake, tables=["fact_global_market"]).exit_code == 0
    table_dir = tmp_path / "lake" / "silver" / "fact_global_market"
    before = E.silver(file_lake, "fact_global_market").sort_values("snapshot_timestamp").reset_index(drop=True)
    assert len(DeltaTable(str(table_dir)).file_uris()) == 3

    # the configured retention (168 h) keeps the compacted files on disk for time travel
    outcome = run_group(spark, settings, "weekly", file_lake)
    assert outcome.exit_code == 0 and outcome.maintenance["fact_global_market"]["files_removed"] == 3
    assert len(DeltaTable(str(table_dir)).file_uris()) == 1
    assert len(list(table_dir.glob("*.parquet"))) == 4
    record = Ledger(file_lake).latest("transform", "maintenance")
    assert record.params == {"group": "weekly", "retention_hours": 168}
    assert record.details["tables"]["fact_global_market"]["files_added"] == 1

    # a retention of 0 h deletes them (Delta's safety check is lifted for that run only)
    maintain(spark, settings, file_lake, retention_hours=0)
    assert len(list(table_dir.glob("*.parquet"))) == 1
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled", "true") == "true"
    after = E.silver(file_lake, "fact_global_market").sort_values("snapshot_timestamp").reset_index(drop=True)
    assert after.equals(before)
