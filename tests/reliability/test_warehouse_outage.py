"""PostgreSQL restarted under a running `cryptolake load`: a short outage is waited out (the table is tried again
whole, nothing is loaded twice), one longer than LOAD_OUTAGE_WAIT_SECONDS fails with one clear line and a
failed ledger record, and a re-run completes. The load is held inside the table's session first (another
session holds the table's advisory lock, as a concurrent load would), so the server provably goes down under it.

Slow (Spark for the transform and each load): `make reliability`.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from cryptolake.spark_apps.load.loader import lock_key
from tests.reliability.servers import OwnStack, finish, own_world, run_step, start_step, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]

GROUP = "5x"                     # dim_crypto_category, then fact_crypto_category
TABLE = "fact_crypto_category"   # the table the load is inside when the server goes down
DOWN_SECONDS = 15                # the outage: well inside the default bound (120 s)


@pytest.fixture(scope="module")
def own():
    stack = OwnStack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def world(own, tmp_path_factory):
    """Bronze and silver for the group, so each load has a warehouse to fill (or to find up to date)."""
    made = own_world(own, tmp_path_factory.mktemp("warehouse-outage"))
    for args in (("extract", "--group", GROUP), ("transform", "--group", GROUP)):
        step = run_step(made, args)
        assert step.process.returncode == 0, step.stderr()[-3000:]
    return made


def load_inside_the_table(world, **env: str):
    """Start `cryptolake load`, and return it once it waits in TABLE's session for the lock a holder keeps."""
    holder = create_engine(world.env["WAREHOUSE_URL"]).connect()
    holder.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": lock_key(TABLE)})
    holder.commit()
    world.env.update(env)
    step = start_step(world, ("load", "--group", GROUP))
    watcher = create_engine(world.env["WAREHOUSE_URL"])

    def waiting() -> bool:
        with watcher.connect() as connection:
            return bool(connection.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).scalar())

    wait_for(waiting, f"the load waiting inside {TABLE}", step)
    watcher.dispose()
    return step, holder


def test_a_load_waits_out_a_short_postgres_outage(own, world):
    step, holder = load_inside_the_table(world)
    own.local.postgres.down()  # ends every session: the holder's (freeing the lock) and the load's
    time.sleep(DOWN_SECONDS)
    assert step.running(), f"the load ended while the server was down: {step.stderr()[-3000:]}"
    own.local.postgres.up()
    holder.invalidate()
    assert step.wait() == 0, step.stderr()[-3000:]
    waits = [line for line in step.stderr().splitlines() if "the warehouse is unreachable" in line]
    assert waits and all(TABLE in line for line in waits), step.stderr()[-3000:]
    [record] = world.ledger().runs("load", TABLE)  # one run, one record: the retries are inside it
    assert record.status == "success" and record.rows > 0
    finish(world)


def test_an_outage_longer_than_the_bound_fails_with_one_line_and_a_rerun_completes(own, world):
    step, holder = load_inside_the_table(world, LOAD_OUTAGE_WAIT_SECONDS="5")
    own.local.postgres.down()
    try:
        code = step.wait(timeout=120)  # ends while the server is still down
    finally:
        own.local.postgres.up()
        holder.invalidate()
    assert code == 1
    last = step.stderr().strip().splitlines()[-1]
    assert last.startswith(f"error: load {GROUP}: {TABLE}") and "run the group again" in last, last
    failed = world.ledger().latest("load", TABLE, ("failed",))
    assert failed.error.startswith(f"CryptolakeError: cannot reach the warehouse for {TABLE}: still unreachable "
                                   "after 5 s (LOAD_OUTAGE_WAIT_SECONDS)"), failed.error
    world.env.pop("LOAD_OUTAGE_WAIT_SECONDS")
    again = run_step(world, ("load", "--group", GROUP))
    assert again.process.returncode == 0, again.stderr()[-3000:]
    finish(world)
