"""Repeats and order: every step run twice, steps out of order, two loads of one group at once, the clock moving
backwards between runs. Each scenario ends with the independent check and the secret scan. The two slowest
(concurrent loads, clock) belong to the slow half (`make reliability`)."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from cryptolake.ledger import Ledger
from cryptolake.services.extract.registry import group as jobs_of
from cryptolake.services.extract.runner import run_many
from cryptolake.services.sandbox.clock import parse_time
from cryptolake.spark_apps.load.main import run as load
from cryptolake.spark_apps.transform.main import run as transform
from cryptolake.spark_apps.transform.tables import TABLE_LIST
from cryptolake.warehouse.migrate import engine_for
from tests.reliability.check import assert_nothing_lost
from tests.reliability.conftest import CLI
from tests.reliability.secret_scan import assert_no_secrets, collect_outputs

pytestmark = [pytest.mark.spark, pytest.mark.timeout(2400)]


def checked(world) -> None:
    tally = assert_nothing_lost(world)
    assert_no_secrets({**world.captured(), **collect_outputs(lake=world.lake)}, world.secrets)
    print(f"\n{tally.summary()}")


def dw_counts(world) -> dict[str, int]:
    engine = engine_for(world.settings.warehouse_url)
    try:
        with engine.connect() as connection:
            return {t.name: connection.execute(text(f'SELECT count(*) FROM dw."{t.name}"')).scalar()
                    for t in TABLE_LIST}
    finally:
        engine.dispose()


def silver_versions(world) -> dict[str, int]:
    from deltalake import DeltaTable

    from tests.reliability.check import delta_options

    return {t.name: DeltaTable(world.lake.uri_of(f"silver/{t.name}"), storage_options=delta_options(world.settings))
            .version() for t in TABLE_LIST}


def extract(world, group: str, clock=None) -> int:
    return run_many(jobs_of(group), world.settings, **({"clock": clock} if clock else {}))


def test_load_before_transform_then_every_step_twice_changes_nothing(fresh):
    before = dw_counts(fresh)
    assert load(fresh.settings, "10x", spark=fresh.spark) == 0  # nothing new in silver: nothing to do
    assert dw_counts(fresh) == before
    assert extract(fresh, "10x") == 0
    fresh.sandbox.control("POST", "clock", {"advance_seconds": 600})
    assert extract(fresh, "10x") == 0  # a second snapshot, not a copy of the first
    assert transform(fresh.settings, "10x", spark=fresh.spark) == 0
    versions = silver_versions(fresh)
    assert transform(fresh.settings, "10x", spark=fresh.spark) == 0  # no new bronze: silver untouched
    assert silver_versions(fresh) == versions
    assert load(fresh.settings, "10x", spark=fresh.spark) == 0
    loaded = dw_counts(fresh)
    assert loaded["fact_crypto_market"] > before["fact_crypto_market"]
    assert load(fresh.settings, "10x", spark=fresh.spark) == 0
    assert dw_counts(fresh) == loaded
    checked(fresh)


def test_a_whole_run_twice_adds_one_snapshot_per_run_and_nothing_twice(fresh):
    for _ in range(2):
        steps = fresh.cycle("5x")
        assert {s.name: s.exit_code for s in steps} == {"extract": 0, "transform": 0, "load": 0, "post_load_sql": 0}
        fresh.sandbox.control("POST", "clock", {"advance_seconds": 600})
    checked(fresh)


@pytest.mark.reliability  # slow half (`make reliability`): two extra JVMs, minutes on a shared machine
def test_two_loads_of_the_same_group_at_once_both_finish_and_lose_nothing(fresh):
    assert extract(fresh, "10x") == 0 and transform(fresh.settings, "10x", spark=fresh.spark) == 0
    env = {**fresh.env, "SPARK_LOCAL_IP": "127.0.0.1"}
    loads = [subprocess.Popen([CLI, "load", "--group", "10x"], env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p.wait(900), *p.communicate()) for p in loads]
    for i, (code, out, err) in enumerate(outcomes):
        fresh.outputs[f"load-{i}.stdout"], fresh.outputs[f"load-{i}.stderr"] = out, err
    # Each table's lock is waited for (LOAD_LOCK_WAIT_SECONDS): the second load takes the tables after the first.
    assert [code for code, _, _ in outcomes] == [0, 0], [err[-2000:] for _, _, err in outcomes]
    checked(fresh)


@pytest.mark.reliability  # slow half: four extractions and three cycles; tests/extract/test_clock.py is the fast proof
def test_the_clock_moving_backwards_between_runs_loses_and_duplicates_nothing(fresh):
    """Extraction stamped by the sandbox's clock (as when replaying a simulated market), set back between runs
    by a day and then by two weeks (past the transform watermark's grace): every snapshot still reaches silver
    and the warehouse once, and run ids of one extractor keep their order."""

    def sandbox_now() -> datetime:
        return datetime.fromtimestamp(parse_time(fresh.sandbox.control("GET", "clock")["now"]), timezone.utc)

    listings = "crypto_listings_latest"
    for back_days in (0, 1, 14):
        fresh.sandbox.control("POST", "clock", {"advance_seconds": -back_days * 86400})
        assert extract(fresh, "10x", clock=sandbox_now) == 0
        steps = fresh.cycle("10x")  # a wall-clock cycle after each: the watermark moves on between them
        assert all(s.exit_code == 0 for s in steps), steps
    by_end = [r.run_id for r in sorted(Ledger(fresh.lake).runs("extract", listings), key=lambda r: r.ended_at)]
    assert by_end == sorted(by_end), "a later run got an earlier run id: readers would take it as consumed"
    checked(fresh)
