"""Outages: the S3 server down during an extract, a transform and a load, and PostgreSQL down during a load, each
while a real `cryptolake run --group 5x` runs, then back up. The step either completes after its retries or fails
with one clear line (never hangs); a re-run after recovery completes; then nothing is lost or duplicated and no
secret appears in anything the scenario produced.

Each outage is proven to land where it is aimed (servers.outage): by the step's own log, the step was inside the
targeted phase when the server went down, and still inside it when the server came back or failing with its line.

Slow (each scenario starts Spark twice): `make reliability`.
"""

from __future__ import annotations

import pytest

from tests.reliability.servers import OwnStack, Phase, finish, outage, own_world, run_step, start_step, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]

GROUP = "5x"  # crypto_categories -> dim_crypto_category, fact_crypto_category: the smallest whole cycle
CATEGORIES = "/v1/cryptocurrency/categories"
DOWN_SECONDS = 15  # how long a server stays down: within the lake's S3 retry bound (cryptolake/lake.py)
HOLD_SECONDS = 5  # the sandbox holds the categories request this long, then drops it (the client retries)
# The lines the steps print when they end (services/extract/runner.py, spark_apps/{transform/runner,load/loader}.py).
EXTRACT_DONE, TRANSFORM_DONE, LOAD_DONE = r"^extract done: ", rf"^transform {GROUP}: ", rf"^load {GROUP}: "


@pytest.fixture(scope="module")
def own():
    stack = OwnStack.start()
    yield stack
    stack.stop()


def _interrupted_then_rerun(world, step, exit_code: int, step_name: str, names: list[str]) -> None:
    """The interrupted run either succeeded or said why in one line and left a failed record; a re-run completes."""
    print(f"\ninterrupted run: exit {exit_code}; {(step.error_lines() or ['no error line'])[-1][:300]}")
    if exit_code != 0:
        lines = step.error_lines()
        assert lines, f"exit {exit_code} without an error line: {step.stderr()[-2000:]}"
        ledger = world.ledger()
        failed = [r for n in names for r in ledger.runs(step_name, n, ("failed", "partial"))]
        last_line = step.stderr().strip().splitlines()[-1]
        assert failed or last_line.startswith("error:"), \
            f"the failure is neither in the ledger nor said in one line: {last_line}"
    again = run_step(world, ("run", "--group", GROUP))
    assert again.process.returncode == 0, again.stderr()[-3000:]


def test_s3_down_during_extract(own, tmp_path):
    world = own_world(own, tmp_path)
    # S3 goes down while the sandbox holds the categories request: the extractor's write, once the retried call
    # is answered, meets the outage.
    world.sandbox.control("POST", "faults", {"kind": "timeout", "delay": HOLD_SECONDS, "drop": True,
                                             "path": CATEGORIES})
    step = start_step(world, ("run", "--group", GROUP))
    extract = Phase("the extract's categories call",
                    lambda: world.sandbox.control("GET", "faults")["faults"][0]["fired"] >= 1, EXTRACT_DONE)
    wait_for(extract.entered, extract.name, step)
    code = outage(step, own.local.s3, "S3", extract, DOWN_SECONDS)
    _interrupted_then_rerun(world, step, code, "extract", ["crypto_categories"])
    finish(world)


def test_s3_down_during_transform(own, tmp_path):
    world = own_world(own, tmp_path)
    step = start_step(world, ("run", "--group", GROUP))
    transform = Phase("the transform, past its first Delta commit",
                      lambda: world.lake.list_files("silver/dim_crypto_category/_delta_log", ".json"), TRANSFORM_DONE)
    wait_for(transform.entered, "the first silver Delta commit", step)
    code = outage(step, own.local.s3, "S3", transform, DOWN_SECONDS)
    _interrupted_then_rerun(world, step, code, "transform", ["dim_crypto_category", "fact_crypto_category"])
    finish(world)


@pytest.mark.parametrize("server", ["s3", "postgres"])
def test_down_during_load(own, tmp_path, server):
    world = own_world(own, tmp_path)
    step = start_step(world, ("run", "--group", GROUP))
    load = Phase("the load, past its first table", lambda: step.logged(r"-> _meta/load/"), LOAD_DONE)
    wait_for(load.entered, "the first table's load record", step)
    part = own.local.s3 if server == "s3" else own.local.postgres
    code = outage(step, part, server, load, DOWN_SECONDS)
    _interrupted_then_rerun(world, step, code, "load", ["dim_crypto_category", "fact_crypto_category"])
    finish(world)
