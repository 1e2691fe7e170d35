"""Kills: extract, transform and load SIGKILLed mid-write (the whole process group, Spark's JVM included), then a
re-run of the cycle: nothing lost, nothing stored twice, no half-written snapshot visible.

Slow (each scenario starts Spark at least once): `make reliability`.
"""

from __future__ import annotations

import pytest

from tests.reliability.servers import OwnStack, finish, own_world, run_step, start_step, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]

CATEGORIES = "/v1/cryptocurrency/categories"


@pytest.fixture(scope="module")
def own():
    stack = OwnStack.start()
    yield stack
    stack.stop()


def _rerun(world, group: str) -> None:
    """The cycle again after the kill."""
    again = run_step(world, ("run", "--group", group))
    assert again.process.returncode == 0, again.stderr()[-3000:]


def test_extract_killed_mid_run(own, tmp_path):
    world = own_world(own, tmp_path)
    # key_info's bronze file lands first; the categories call then meets five 503s, and the extract is killed
    # while it backs off (one page: nothing of that run is written yet, and its ledger record never will be).
    world.sandbox.control("POST", "faults", {"kind": "error", "status": 503, "path": CATEGORIES, "count": 5})
    step = start_step(world, ("extract", "--group", "5x"))
    wait_for(lambda: world.lake.list_files("bronze/key_info", ".parquet")
             and world.sandbox.control("GET", "faults")["faults"][0]["fired"] >= 1, "the categories call", step)
    step.kill()
    ledger = world.ledger()
    assert ledger.runs("extract", "crypto_categories") == []  # the dead run never happened for readers
    assert ledger.latest("extract", "key_info") is not None  # the extractor before it did
    world.sandbox.control("DELETE", "faults")
    _rerun(world, "5x")
    assert [r.status for r in world.ledger().runs("extract", "crypto_categories")] == ["success"]
    finish(world)  # the dead run was answered only 503s (never journaled as served) and left no file


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
