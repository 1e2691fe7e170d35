"""Lake I/O on both backends: path contract, Parquet round trip, immutability (enforced by the store), atomic
visibility."""

import os
import uuid
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from cryptolake.errors import LakeError, SettingsError
from cryptolake.lake import WRITES, Lake, _AtomicOutput, bronze_path, job_dirs, job_of, quarantine_path
from tests.conftest import settings_for
from tests.staging import age, staging_files, start_writer

TS = datetime(2026, 11, 25, 8, 20, 5, tzinfo=timezone.utc)
SCHEMA = pa.schema([("id", pa.int64()), ("price_usd", pa.float64()),
                    ("snapshot_timestamp", pa.timestamp("us", tz="UTC")), ("run_id", pa.string())])


def batches(n_batches: int, size: int, fail_after: int | None = None):
    for b in range(n_batches):
        if fail_after is not None and b == fail_after:
            raise RuntimeError("network dropped mid-extraction")
        ids = list(range(b * size, (b + 1) * size))
        yield pa.record_batch([ids, [i * 1.5 for i in ids], [TS] * size, ["r1"] * size], schema=SCHEMA)


def test_bronze_path_follows_the_contract():
    assert bronze_path("crypto_map", TS) == \
        "bronze/crypto_map/snapshot_date=2026-11-25/crypto_map-20261125T082005Z.parquet"
    assert bronze_path("crypto_listings_latest", TS + timedelta(hours=17), part=3) == \
        "bronze/crypto_listings_latest/snapshot_date=2026-11-26/crypto_listings_latest-20261126T012005Z-part3.parquet"


def test_bronze_path_refuses_naive_timestamps():
    with pytest.raises(LakeError, match="no time zone"):
        bronze_path("crypto_map", datetime(2026, 1, 1))


def test_parquet_round_trip_streams_batches(lake):
    rel = bronze_path("crypto_listings_latest", TS)
    result = lake.write_parquet(rel, SCHEMA, batches(5, 1000))
    assert result.rows == 5000 and result.bytes > 0
    table = lake.read_parquet(rel)
    assert table.num_rows == 5000
    assert table.schema.field("snapshot_timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.column("id").to_pylist()[-1] == 4999
    assert lake.list_files("bronze/crypto_listings_latest", ".parquet") == [rel]


def test_files_are_immutable(lake):
    rel = bronze_path("exchange_map", TS)
    lake.write_parquet(rel, SCHEMA, batches(1, 10))
    with pytest.raises(LakeError, match="already exists"):
        lake.write_parquet(rel, SCHEMA, batches(1, 3))
    assert lake.read_parquet(rel).num_rows == 10


def test_a_failed_write_leaves_nothing_visible(lake):
    rel = bronze_path("exchange_assets", TS)
    with pytest.raises(RuntimeError, match="network dropped"):
        lake.write_parquet(rel, SCHEMA, batches(4, 100, fail_after=2))
    assert not lake.exists(rel)
    assert lake.list_files("bronze") == []
    lake.write_parquet(rel, SCHEMA, batches(1, 7))  # the retry can use the same name
    assert lake.read_parquet(rel).num_rows == 7


def test_listing_and_bytes(lake):
    assert lake.list_files("nothing/here") == []
    lake.write_bytes("_meta/extract/x/b.json", b'{"b": 1}')
    lake.write_bytes("_meta/extract/x/a.json", b'{"a": 1}')
    lake.write_bytes("_meta/extract/x/notes.txt", b"x")
    assert lake.list_files("_meta/extract/x", ".json") == ["_meta/extract/x/a.json", "_meta/extract/x/b.json"]
    assert lake.read_bytes("_meta/extract/x/a.json") == b'{"a": 1}'
    with pytest.raises(LakeError, match="does not exist"):
        lake.read_bytes("_meta/extract/x/missing.json")


def test_paths_cannot_escape_the_root(lake):
    with pytest.raises(LakeError, match="escapes"):
        lake.write_bytes("../outside.json", b"{}")


def test_spark_uri_uses_s3a(s3_lake, file_lake):
    assert s3_lake.spark_uri("silver/t").startswith("s3a://cryptolake/tests/")
    assert file_lake.spark_uri("silver/t").startswith("file:///")


@pytest.mark.parametrize("size", [5, 9 * 2**20], ids=["single-put", "multipart"])
def test_a_racing_writer_cannot_overwrite(lake, size):
    """Both writers pass the exists() check before either publishes; the store must refuse the second."""
    rel = "_meta/extract/x/run.json"
    first, second = lake._atomic_output(rel), lake._atomic_output(rel)
    with first as stream:
        stream.write(b"1" * size)
    with pytest.raises(LakeError, match="written concurrently"):
        with second as stream:
            stream.write(b"2" * size)
    assert lake.read_bytes(rel) == b"1" * size


def test_without_conditional_writes_only_the_early_check_guards(s3_lake, stack_env):
    """The fallback of docs/lake.md for a store without conditional writes, race window included."""
    fallback = Lake.from_settings(settings_for(s3_lake.uri, {**stack_env, "LAKE_CONDITIONAL_WRITES": "false"}))
    rel = "_meta/extract/x/run.json"
    first, second = fallback._atomic_output(rel), fallback._atomic_output(rel)
    with first as stream:
        stream.write(b"first")
    with pytest.raises(LakeError, match="already exists"):
        fallback.write_bytes(rel, b"late")
    with second as stream:  # checked before the first published: nothing stops it
        stream.write(b"second")
    assert fallback.read_bytes(rel) == b"second"


def test_conditional_writes_setting_is_a_boolean():
    with pytest.raises(SettingsError, match="LAKE_CONDITIONAL_WRITES 'maybe' must be true or false"):
        settings_for("file:///tmp/lake", {"LAKE_CONDITIONAL_WRITES": "maybe"})


def test_a_refused_upload_is_a_lake_error_without_secrets(s3_lake, stack_env):
    wrong = "wrong-secret-0123456789"
    lake = Lake.from_settings(settings_for(s3_lake.uri, {**stack_env, "AWS_SECRET_ACCESS_KEY": wrong}))
    with pytest.raises(LakeError, match="a.json could not be written: SignatureDoesNotMatch: ") as err:
        with _AtomicOutput(lake, lake._abs("a.json"), "a.json") as stream:  # the publish step alone
            stream.write(b"{}")
    assert wrong not in str(err.value) and stack_env["AWS_SECRET_ACCESS_KEY"] not in str(err.value)


# -- staging files left by killed writers ---------------------------------------------------------------------
@pytest.fixture(params=["file", "s3"])
def lake_and_env(request) -> tuple[Lake, dict[str, str]]:
    env = request.getfixturevalue("stack_env") if request.param == "s3" else {}
    return request.getfixturevalue(f"{request.param}_lake"), env


def test_each_written_path_belongs_to_the_job_whose_directories_hold_it():
    """job_of and job_dirs are one mapping read both ways: the sweep looks where the job's writes stage."""
    paths = {bronze_path("crypto_map", TS): "extract.crypto_map",
             bronze_path("crypto_listings_latest", TS, part=2): "extract.crypto_listings_latest",
             quarantine_path("crypto_info", TS, "crypto_info-1.json"): "extract.crypto_info",
             "_meta/extract/crypto_info/20261125T082005Z-abcdef.json": "extract.crypto_info",
             "_meta/transform/group-5x/20261125T082005Z-abcdef.json": "transform.group-5x",
             "_meta/load/fact_crypto_market/20261125T082005Z-abcdef.json": "load.fact_crypto_market",
             "gold/backups/20261125T082005Z/warehouse.dump": "backup",
             "silver/fact_crypto_market/part-0.parquet": None, "spark-events/app-1": None}
    for rel, job in paths.items():
        assert job_of(rel) == job, rel
        if job:
            assert any(rel.startswith(d + "/") for d in job_dirs(job)), (rel, job_dirs(job))
            step = job.partition(".")[0]  # and the job's directories are its component's to write
            assert all(any(f"{d}/".startswith(f"{w}/") for w in WRITES[step]) for d in job_dirs(job)), job


def test_a_killed_writers_staging_file_is_swept_by_its_own_job_once_old(lake_and_env):
    lake, env = lake_and_env
    name = f"x{uuid.uuid4().hex[:8]}"
    job, rel = f"extract.{name}", bronze_path(name, TS)
    writer = start_writer(lake, env, rel)
    [left] = staging_files(lake, job)
    writer.kill()
    writer.wait()
    assert lake.sweep_staging(job, timedelta(hours=1)) == []  # fresh: maybe a live writer's, before its lock
    age(left, 2 * 3600)
    for other in (f"extract.{name[:-1]}", f"load.{name}", "backup"):  # never another job's
        assert lake.sweep_staging(other, timedelta(hours=1)) == []
    assert os.path.exists(left)
    assert lake.sweep_staging(job, timedelta(hours=1)) == [left]
    assert staging_files(lake, job) == [] and not lake.exists(rel)
    lake.write_parquet(rel, SCHEMA, batches(1, 3))  # the name was never taken
    assert lake.list_files(f"bronze/{name}") == [rel]


def test_a_live_writers_staging_file_is_never_swept_however_old(lake_and_env):
    """A run started without Airflow has no timeout: its writer's lock keeps its file, not the age bound."""
    lake, env = lake_and_env
    name = f"x{uuid.uuid4().hex[:8]}"
    job = f"extract.{name}"
    writer = start_writer(lake, env, bronze_path(name, TS))
    try:
        [staged] = staging_files(lake, job)
        age(staged, 2 * 3600)
        assert lake.sweep_staging(job, timedelta(hours=1)) == []
        assert os.path.exists(staged)
    finally:
        writer.kill()
        writer.wait()
    assert lake.sweep_staging(job, timedelta(hours=1)) == [staged]
