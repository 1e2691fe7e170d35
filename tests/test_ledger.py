"""The run ledger on both backends: one immutable record per run and step, visibility through the ledger."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from cryptolake import logs, pipeline
from cryptolake.errors import LakeError
from cryptolake.lake import Lake, bronze_path
from cryptolake.ledger import Ledger, RunRecord, new_run_id, spool_dir
from tests.conftest import settings_for
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


@pytest.fixture
def spool(tmp_path, monkeypatch):
    """This machine's spool, under the test's own state directory."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def test_a_record_the_lake_cannot_take_is_spooled_and_written_late_by_the_next_run(spool, tmp_path):
    root = tmp_path / "lake"
    lake = Lake.from_settings(settings_for(root.as_uri(), {}))
    ledger = Ledger(lake)
    (root / "_meta").mkdir(parents=True)
    (root / "_meta" / "load").write_text("")  # the lake cannot take load records: a file where their directory goes
    with pytest.raises(LakeError, match="ended success but its ledger record could not be written") as raised:
        with ledger.run("load", "fact_x") as good:
            good.rows = 5
    assert "\n" not in str(raised.value) and "the next load on this machine writes it" in str(raised.value)
    with pytest.raises(RuntimeError, match="warehouse gone"):  # the run's own error is the one raised
        with ledger.run("load", "fact_x") as bad:
            raise RuntimeError("warehouse gone")
    kept = {p.name: json.loads(p.read_text()) for p in spool_dir(lake.uri).rglob("*.json")}
    assert set(kept) == {f"{good.run_id}.json", f"{bad.run_id}.json"}
    assert kept[f"{good.run_id}.json"]["rows"] == 5

    other = Lake.from_settings(settings_for((tmp_path / "other").as_uri(), {}))
    with Ledger(other).run("load", "fact_x"):  # a run on another lake leaves this lake's spool alone
        pass
    assert len(list(spool_dir(lake.uri).rglob("*.json"))) == 2 and Ledger(other).runs("load", "fact_x")[0]

    (root / "_meta" / "load").unlink()
    with ledger.run("extract", "crypto_map"):  # another step writes only its own records
        pass
    assert len(list(spool_dir(lake.uri).rglob("*.json"))) == 2
    with ledger.run("load", "fact_y") as later:  # a later load on this machine, once the lake is back
        pass
    records = {r.run_id: r for r in ledger.runs("load", "fact_x")}
    assert set(records) == {good.run_id, bad.run_id} and not list(spool_dir(lake.uri).rglob("*.json"))
    assert records[good.run_id].status == "success" and records[good.run_id].rows == 5
    assert records[bad.run_id].status == "failed" and "warehouse gone" in records[bad.run_id].error
    for record in records.values():
        assert record.details["spooled"]["reason"].startswith("cannot ")
        assert record.details["spooled"]["at"] >= record.ended_at.isoformat()
    assert "spooled" not in ledger.runs("load", "fact_y")[0].details and later.status == "success"


def test_a_spooled_record_another_run_wrote_first_leaves_the_spool(spool, file_lake):
    ledger = Ledger(file_lake)
    record = RunRecord(run_id=new_run_id(T0), step="load", name="fact_x", started_at=T0, status="failed")
    kept = spool_dir(file_lake.uri) / f"_meta/load/fact_x/{record.run_id}.json"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(record.to_json())
    ledger.write(record)
    assert ledger.flush_spool("load") == [] and not kept.exists()
    assert [r.run_id for r in ledger.runs("load", "fact_x")] == [record.run_id]
