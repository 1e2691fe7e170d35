"""Kills: extract, transform and load SIGKILLed mid-write (the whole process group, Spark's JVM included), then a
re-run of the cycle: nothing lost, nothing stored twice, no half-written snapshot visible.

Slow (each scenario starts Spark at least once): `make reliability`.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.servers import OwnStack, finish, own_world, run_step, start_step, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]

CATEGORY = "/v1/cryptocurrency/category"


@pytest.fixture(scope="module")
def own():
    stack = OwnStack.start()
    yield stack
    stack.stop()


def _rerun(world, group: str) -> float:
    """The cycle again after the kill; the unix time it started (answers served before it went to the dead run)."""
    since = time.time()
    again = run_step(world, ("run", "--group", group))
    assert again.process.returncode == 0, again.stderr()[-3000:]
    return since


def test_extract_killed_mid_write(own, tmp_path):
    world = own_world(own, tmp_path)
    # crypto_category streams its members into one open part file: the second category's answer takes a minute,
    # and the extractor is killed while the file is half written.
    world.sandbox.control("POST", "faults", {"kind": "timeout", "delay": 60, "path": CATEGORY, "after": 1,
                                             "count": 1})
    step = start_step(world, ("extract", "--group", "daily"))
    wait_for(lambda: world.sandbox.control("GET", "faults")["faults"][0]["fired"] >= 1,
             "the second category call", step)
    step.kill()
    ledger = world.ledger()
    assert ledger.runs("extract", "crypto_category") == []  # the dead run never happened for readers
    assert ledger.latest("extract", "crypto_listings_latest") is not None  # the extractors before it did
    world.sandbox.control("DELETE", "faults")
    since = _rerun(world, "daily")
    assert [r.status for r in world.ledger().runs("extract", "crypto_category")] == ["success"]
    finish(world, allow_orphans=True, served_since=since)


def test_transform_killed_mid_write(own, tmp_path):
    world = own_world(own, tmp_path)
    step = start_step(world, ("run", "--group", "5x"))
    # The first table's Delta commit exists; its ledger record and the second table are being written.
    wait_for(lambda: world.lake.list_files("silver/dim_crypto_category/_delta_log", ".json"),
             "the first silver Delta commit", step)
    step.kill()
    _rerun(world, "5x")
    finish(world)


def test_load_killed_mid_write(own, tmp_path):
    world = own_world(own, tmp_path)
    step = start_step(world, ("run", "--group", "5x"))
    wait_for(lambda: world.lake.list_files("_meta/load", ".json"), "the first table's load", step)
    step.kill()
    _rerun(world, "5x")
    finish(world)
