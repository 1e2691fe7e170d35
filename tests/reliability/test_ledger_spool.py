"""The lake's S3 store down past its retry bound when a run ends: the run's ledger record is spooled on this
machine (not lost), a run that had succeeded fails with one clear line, and once the store is back the next load
writes the spooled record, marked as late. An S3 server of its own; no Spark, but the bound takes ~30 s.

Slow: `make reliability`.
"""

from __future__ import annotations

import json

import pytest

from cryptolake.errors import LakeError
from cryptolake.ledger import Ledger, spool_dir
from tests.reliability.test_lake_retries import _lake, store  # noqa: F401  (a fixture, shared)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]


def test_a_record_the_store_cannot_take_is_spooled_and_written_late_once_it_is_back(store, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    lake = _lake(store)
    ledger = Ledger(lake)
    with ledger.run("extract", "key_info"):  # the lake works: the client exists, the bucket is checked
        pass
    try:
        with pytest.raises(LakeError, match="ended success but its ledger record could not be written: cannot "
                                            "read the lake") as raised:
            with ledger.run("load", "fact_x") as run:
                run.rows = 7
                store.down()  # for longer than the reads' and writes' retries
        assert "\n" not in str(raised.value) and "the next load on this machine writes it" in str(raised.value)
        [kept] = spool_dir(lake.uri).rglob("*.json")
        assert kept.name == f"{run.run_id}.json" and json.loads(kept.read_text())["rows"] == 7
    finally:
        store.up()
    with ledger.run("load", "fact_y"):  # the next load on this machine
        pass
    [late] = ledger.runs("load", "fact_x")
    assert late.run_id == run.run_id and late.status == "success" and late.rows == 7
    assert late.details["spooled"]["reason"].startswith("cannot read the lake")
    assert not list(spool_dir(lake.uri).rglob("*.json"))
