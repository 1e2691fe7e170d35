"""The run ledger on both backends: one immutable record per run and step, visibility through the ledger."""

import uuid
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from cryptolake import logs, pipeline
from cryptolake.errors import LakeError
from cryptolake.lake import bronze_path
from cryptolake.ledger import Ledger, RunRecord, new_run_id
from tests.staging import age, staging_files, start_writer

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def test_run_ids_sort_by_start_time_and_are_unique():
    ids = [new_run_id(T0 + timedelta(seconds=s)) for s in (0, 0, 1, 3600)]
    assert len(set(ids)) == 4
    assert sorted(ids[1:]) == ids[1:] and ids[0][:16] == ids[1][:16] == "20261124T090000Z"


def test_a_successful_run_is_recorded_once(lake):
    ledger = Ledger(lake)
    with ledger.run("extract", "crypto_map", started=T0, endpoint="/v1/cryptocurrency/map") as run:
        run.rows, run.credits, run.files = 42, 1, ["bronze/crypto_map/x.parquet"]
        assert logs.current_context()["run_id"] == run.run_id
    [record] = ledger.runs("extract", "crypto_map")
    assert record.status == "success" and record.rows == 42 and record.credits == 1
    assert record.started_at == T0 and record.ended_at >= record.started_at and record.duration_seconds >= 0
    assert lake.list_files("_meta/extract/crypto_map") == [f"_meta/extract/crypto_map/{run.run_id}.json"]
    with pytest.raises(LakeError, match="already exists"):
        ledger.write(record)


def test_a_failed_run_records_the_error_without_secrets(lake):
    logs.register_secret("cmc-key-0123456789abcdef")
    ledger = Ledger(lake)
    with pytest.raises(ConnectionError):
        with ledger.run("extract", "key_info"):
            raise ConnectionError("GET https://api/v1/key/info?CMC_PRO_API_KEY=cmc-key-0123456789abcdef failed")
    [record] = ledger.runs("extract", "key_info")
    assert record.status == "failed"
    assert "ConnectionError" in record.error and "cmc-key-0123456789abcdef" not in record.error
    assert b"cmc-key-0123456789abcdef" not in lake.read_bytes(lake.list_files("_meta")[0])


def test_only_completed_snapshots_are_visible(lake):
    """Data first, record last: a snapshot whose run never recorded itself does not exist for readers."""
    ledger = Ledger(lake)
    schema = pa.schema([("id", pa.int64())])
    table = pa.table({"id": [1, 2]})
    for hour, status in ((8, "success"), (9, "failed"), (10, "partial"), (11, None)):
        started = T0.replace(hour=hour)
        path = bronze_path("crypto_map", started)
        lake.write_parquet(path, schema, [table])
        if status:
            ledger.write(RunRecord(run_id=new_run_id(started), step="extract", name="crypto_map",
                                   started_at=started, status=status, files=[path]))
    snapshots = ledger.snapshots("crypto_map")
    assert [s.started_at.hour for s in snapshots] == [8, 10]
    assert ledger.latest("extract", "crypto_map").status == "partial"
    assert [r.status for r in ledger.runs("extract", "crypto_map")] == ["success", "failed", "partial"]


def test_unknown_steps_and_statuses_are_refused(lake):
    ledger = Ledger(lake)
    with pytest.raises(LakeError, match="unknown ledger step"):
        ledger.runs("publish", "x")
    with pytest.raises(LakeError, match="status 'done'"):
        ledger.write(RunRecord(run_id="r", step="load", name="x", started_at=T0, status="done"))


def test_the_next_run_of_a_job_sweeps_what_a_killed_run_of_it_left(file_lake):
    """Only a run of the same job, and only once the file is older than the job's task timeout."""
    name = f"x{uuid.uuid4().hex[:8]}"
    writer = start_writer(file_lake, {}, bronze_path(name, T0))
    [left] = staging_files(file_lake, f"extract.{name}")
    writer.kill()
    writer.wait()
    timeout = pipeline.default().airflow.step_timeout("extract")
    assert timeout == timedelta(minutes=pipeline.default().airflow.timeout_minutes["extract"])
    ledger = Ledger(file_lake)
    age(left, timeout.total_seconds() - 60)
    with ledger.run("extract", name):
        pass
    age(left, timeout.total_seconds() + 60)
    with ledger.run("load", name), ledger.run("extract", f"{name}y"):
        pass
    assert staging_files(file_lake, f"extract.{name}") == [left]
    with ledger.run("extract", name):
        pass
    assert staging_files(file_lake, f"extract.{name}") == []
