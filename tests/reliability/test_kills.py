"""Kills: extract, transform and load SIGKILLed mid-write (the whole process group, Spark's JVM included), then a
re-run of the cycle: nothing lost, nothing stored twice, no half-written snapshot visible.

Each kill is proven to land where it is aimed (servers.kill_inside): the step died of SIGKILL, after a marker the
targeted phase reaches first and before the line it prints when it ends.

Slow (each scenario starts Spark at least once): `make reliability`.
"""

from __future__ import annotations

import pytest

from tests.reliability.check import served
from tests.reliability.servers import OwnStack, Phase, finish, kill_inside, own_world, run_step, start_step, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]

CATEGORIES = "/v1/cryptocurrency/categories"
# The lines the steps of `run --group 5x` print when they end (spark_apps/{transform/runner,load/loader}.py).
TRANSFORM_DONE, LOAD_DONE = r"^transform 5x: ", r"^load 5x: "


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
    backoff = Phase("the categories call's backoff", lambda: step.logged(rf"^attempt 1 failed \(GET {CATEGORIES} "),
                    left=r"-> _meta/extract/crypto_categories/")  # its ledger record: the extractor's last act
    wait_for(backoff.entered, backoff.name, step)
    kill_inside(step, backoff)
    assert not [a for a in served(world) if a["path"] == CATEGORIES]  # the dead run was answered only 503s
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
    writing = Phase("the transform, past its first Delta commit",
                    lambda: world.lake.list_files("silver/dim_crypto_category/_delta_log", ".json"), TRANSFORM_DONE)
    wait_for(writing.entered, "the first silver Delta commit", step)
    kill_inside(step, writing)
    _rerun(world, "5x")
    finish(world)


def test_load_killed_mid_write(own, tmp_path):
    world = own_world(own, tmp_path)
    step = start_step(world, ("run", "--group", "5x"))
    # The first table is loaded and its ledger record written; the second table is being loaded.
    loading = Phase("the load, past its first table", lambda: step.logged(r"-> _meta/load/"), LOAD_DONE)
    wait_for(loading.entered, "the first table's load record", step)
    kill_inside(step, loading)
    _rerun(world, "5x")
    finish(world)
