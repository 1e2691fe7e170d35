"""Incremental tracking and the table contracts, without Spark."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cryptolake import pipeline
from cryptolake.ledger import Ledger, RunRecord, new_run_id
from cryptolake.services.extract.registry import EXTRACTORS
from cryptolake.spark_apps.transform.state import GRACE, SourceState, Tracker
from cryptolake.spark_apps.transform.tables import GROUPS, TABLE_LIST, TABLES, tables_of
from tests.transform.bronze import write_snapshot

T0 = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)


def rid(hours: float) -> str:
    return new_run_id(T0 + timedelta(hours=hours))


def test_watermark_moves_only_over_a_consumed_prefix_older_than_the_grace():
    known = [rid(h) for h in (0, 1, 2, 200)]
    state = SourceState().advance(known[:2] + known[3:], known)
    # run 2 is not consumed: the watermark stops before it, everything after stays explicit
    assert state.through == known[1] and state.after == {known[3]}
    assert [state.consumed(r) for r in known] == [True, True, False, True]
    state = state.advance([known[2]], known)
    # now all are consumed, but the newest is within GRACE of itself: it stays explicit
    assert state.through == known[2] and state.after == {known[3]}
    assert all(state.consumed(r) for r in known)


def test_an_overlapping_run_that_finishes_late_is_still_picked_up(file_lake):
    """Run B starts after A but finishes first; the transform in between must not skip A later."""
    tracker = Tracker(file_lake)
    b = write_snapshot(file_lake, "fear_greed_latest", T0 + timedelta(minutes=1), [{"fear_greed_score": 1}])
    first = tracker.pending("fear_greed_latest", SourceState())
    assert [s.run_id for s in first.snapshots] == [b]
    state = SourceState().advance(first.seen, first.known)
    a = write_snapshot(file_lake, "fear_greed_latest", T0, [{"fear_greed_score": 2}])  # started earlier
    assert a < b
    second = tracker.pending("fear_greed_latest", state)
    assert [s.run_id for s in second.snapshots] == [a]


def test_pending_reads_only_new_records_and_consumes_empty_runs_once(file_lake):
    tracker = Tracker(file_lake)
    ok = write_snapshot(file_lake, "crypto_map", T0, [{"crypto_id": 1}])
    skipped = write_snapshot(file_lake, "crypto_map", T0 + timedelta(days=1), [], status="skipped")
    failed = write_snapshot(file_lake, "crypto_map", T0 + timedelta(days=2), [], status="failed")
    pending = tracker.pending("crypto_map", SourceState())
    assert [s.run_id for s in pending.snapshots] == [ok]
    assert pending.seen == [ok, skipped, failed]
    state = SourceState().advance(pending.seen, pending.known)
    again = tracker.pending("crypto_map", state)
    assert again.seen == [] and again.snapshots == []


def test_state_comes_from_the_newest_successful_record(file_lake):
    ledger, tracker = Ledger(file_lake), Tracker(file_lake)
    extract_run, ok, failed = rid(0), rid(1), rid(2)
    good = {"crypto_map": {"through": "", "after": [extract_run]}}
    ledger.write(RunRecord(ok, "transform", "dim_crypto_map", T0, status="success", details={"state": good}))
    ledger.write(RunRecord(failed, "transform", "dim_crypto_map", T0, status="failed", details={}))
    state = tracker.state("dim_crypto_map")
    assert state.record == ok and state.source("crypto_map").consumed(extract_run)
    assert tracker.state("dim_crypto_id").sources == {}


def test_grace_is_days_not_minutes():
    assert GRACE >= timedelta(days=1)


def test_every_table_reads_known_extractors_and_has_its_keys_as_required_columns():
    for table in TABLE_LIST:
        assert all(source in EXTRACTORS for source in table.sources), table.name
        fields = {f.name: f for f in table.schema.fields}
        for key in table.merge_keys:
            assert key in fields and not fields[key].nullable, (table.name, key)
        assert not fields["run_id"].nullable and not fields["source_file"].nullable
        assert (table.partitioned and not fields["snapshot_date"].nullable) or "snapshot_date" not in fields


def test_groups_are_derived_from_the_extractors():
    assert [t.name for t in tables_of("5x")] == ["dim_crypto_category", "fact_crypto_category"]
    assert [t.name for t in tables_of("weekly")] == ["dim_exchange_info", "fact_exchange_assets", "dim_crypto_info"]
    assert [t.name for t in tables_of("10x")] == ["fact_crypto_market", "fact_crypto_daily", "fact_global_market",
                                                  "fact_market_sentiment"]
    assert [t.name for t in tables_of("init")] == [t.name for t in TABLE_LIST] == [t.name for t in tables_of("all")]
    for table in TABLE_LIST:
        assert set(table.groups) == {g for s in table.sources for g in pipeline.default().groups_of(s)}
    with pytest.raises(ValueError):
        tables_of("hourly")
    assert set(GROUPS) == {"daily", "weekly", "5x", "10x", "init", "all"}


def test_silver_reads_come_before_their_readers():
    order = [t.name for t in TABLE_LIST]
    for table in TABLE_LIST:
        for upstream in table.reads:
            assert order.index(upstream) < order.index(table.name)
            assert set(TABLES[upstream].groups) & set(table.groups)
