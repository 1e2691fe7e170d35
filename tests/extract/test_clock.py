"""A clock that moves backwards between runs (set back, or a replayed simulated market) must not give a run an
id that sorts before runs already taken in: the transform's watermark would treat it as consumed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cryptolake.ledger import Ledger
from cryptolake.services.extract.registry import EXTRACTORS
from cryptolake.services.extract.runner import run_many
from cryptolake.spark_apps.transform.state import SourceState, Tracker


def test_a_run_after_the_clock_went_back_is_stamped_after_the_latest_run_and_is_pending(
        fresh_sandbox, s3_settings, s3_extract_lake, caplog):
    extractor = EXTRACTORS["global_metrics_latest"]
    noon = datetime(2026, 11, 3, 12, 0, tzinfo=timezone.utc)
    assert run_many([extractor], s3_settings, clock=lambda: noon) == 0
    first = Ledger(s3_extract_lake).latest("extract", extractor.name)
    consumed = SourceState(through=first.run_id)  # a transform took it in and moved its watermark past it
    assert run_many([extractor], s3_settings, clock=lambda: noon - timedelta(days=14)) == 0
    second = Ledger(s3_extract_lake).latest("extract", extractor.name)
    assert second.run_id > first.run_id and second.started_at == noon + timedelta(seconds=1)
    assert "is not after the latest run's start" in caplog.text
    pending = Tracker(s3_extract_lake).pending(extractor.name, consumed)
    assert [s.run_id for s in pending.snapshots] == [second.run_id]  # not silently taken as consumed
    table = s3_extract_lake.read_parquet(second.files)
    assert set(table.column("snapshot_timestamp").to_pylist()) == {second.started_at}
