"""Lake writes under the faults the matrix found: a short S3 outage is ridden out (reads and writes retry, within
a bound, while the store restarts, so a step's data and its ledger record still land; a restart used to fail the
extract at once and lose its record), and a full disk is one clear error (it used to be a traceback, exit 2).
Fast: an S3 server of its own, no Spark."""

from __future__ import annotations

import resource
import signal
import threading
import time

import pytest

from cryptolake.errors import LakeError
from cryptolake.lake import Lake
from cryptolake.local.objectstore import ObjectStore
from cryptolake.settings import Settings
from tests.reliability.servers import free_s3_base

DOWN_SECONDS = 6


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    server = ObjectStore(tmp_path_factory.mktemp("s3"), free_s3_base(), "retry-test", "retry-test-secret-key",
                         "cryptolake")
    server.up()
    yield server
    server.down()


def _lake(store: ObjectStore) -> Lake:
    return Lake.from_settings(Settings.load(env={
        "LAKE_URI": "s3://cryptolake/retries", "AWS_ENDPOINT_URL": store.endpoint, "AWS_ACCESS_KEY_ID": store.access_key,
        "AWS_SECRET_ACCESS_KEY": store.secret_key}))


def _restart_later(store: ObjectStore) -> threading.Thread:
    store.down()

    def back():
        time.sleep(DOWN_SECONDS)
        store.up()

    thread = threading.Thread(target=back)
    thread.start()
    return thread


def test_a_write_and_a_read_wait_for_a_restarting_store(store):
    lake = _lake(store)
    lake.write_bytes("_meta/extract/x/first.json", b"{}")  # the client exists: the next calls only retry
    back = _restart_later(store)
    try:
        lake.write_bytes("_meta/extract/x/during-outage.json", b'{"status": "success"}')
        assert lake.list_files("_meta/extract/x") == ["_meta/extract/x/during-outage.json",
                                                      "_meta/extract/x/first.json"]
    finally:
        back.join()
    back = _restart_later(store)
    try:
        assert lake.read_bytes("_meta/extract/x/during-outage.json") == b'{"status": "success"}'
    finally:
        back.join()


def test_a_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path):
    """The file size limit stands in for a full disk here (no mount needed): the same errno family, EFBIG."""
    lake = Lake.from_settings(Settings.load(env={"LAKE_URI": (tmp_path / "lake").as_uri()}))
    lake.write_bytes("_meta/extract/x/small.json", b"{}")
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))
    try:
        with pytest.raises(LakeError, match="File too large.*Free space there") as raised:
            lake.write_bytes("bronze/x/big.parquet", b"\0" * 65536)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert "\n" not in str(raised.value)
    assert lake.list_files("") == ["_meta/extract/x/small.json"]
    assert [p.name for p in (tmp_path / "lake" / "bronze" / "x").iterdir()] == []  # no temp file left
