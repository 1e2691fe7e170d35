"""The decisions that spend or keep credits, and the exit status Airflow sees, as plain functions."""

from __future__ import annotations

import pytest

from cryptolake.services.extract.base import Ceiling
from cryptolake.services.extract.runner import EXIT_CODES, CreditGovernor, group_exit_code
from cryptolake.settings import Settings

HIGH, LOW = "high", "low"


def governor(left: int, quota: int = 10_000, margin: float = 0.35) -> CreditGovernor:
    return CreditGovernor(quota=quota, credits_left=left, margin=margin)


@pytest.mark.parametrize("left, estimate, skips", [
    (10_000, 100, False),  # plenty left
    (3_600, 100, False),   # 3,500 left after it: exactly the reserve is kept
    (3_599, 100, True),    # one credit into the reserve
    (100, 0, True),        # already inside the reserve: even a free run of a low-priority job waits
])
def test_low_priority_runs_only_above_the_reserve(left, estimate, skips):
    reason = governor(left).decide(LOW, estimate)
    assert (reason is not None) is skips
    if skips:
        assert f"~{estimate} credits needed, {left} left" in reason and "reserve 3500 (35% of 10000)" in reason


def test_high_priority_runs_even_inside_the_reserve():
    assert governor(10).decide(HIGH, 50) is None


def test_spending_moves_a_later_decision():
    keeper = governor(3_700)
    assert keeper.decide(LOW, 100) is None
    keeper.spend(150)
    assert keeper.decide(LOW, 100) is not None


@pytest.mark.parametrize("outcomes, code", [
    (["success", "skipped"], 0),
    ([], 0),
    (["success", "partial"], 4),
    (["success", "failed"], 4),      # something landed: partial, not failed
    (["failed", "failed"], 1),
    (["failed"], 1),
    (["success", "quota"], 5),
    (["failed", "quota"], 5),       # the quota wins: nothing more can run this period
    (["partial", "failed", "skipped"], 4),
])
def test_the_group_exit_status_is_its_worst_outcome(outcomes, code):
    assert group_exit_code(outcomes) == code


def test_exit_codes_are_distinct_where_airflow_must_tell_them_apart():
    assert len({EXIT_CODES[s] for s in ("success", "partial", "quota", "failed")}) == 4


def test_the_ceiling_is_derived_from_the_estimate_and_configurable():
    settings = Settings.load(env={"CMC_RUN_CEILING_FACTOR": "1.5", "CMC_RUN_CEILING_EXTRA": "3"})
    assert Ceiling.around(calls=3, credits=15, settings=settings) == Ceiling(calls=8, credits=26)
    assert Ceiling.around(3, 15, Settings.load(env={})) == Ceiling(calls=11, credits=35)  # 2 x + 5


def test_the_ceiling_refuses_the_call_that_would_cross_it():
    ceiling = Ceiling(calls=4, credits=10)
    assert ceiling.refuses(calls_made=3, credits_spent=5, next_cost=5) is None  # lands exactly on 10
    assert "10 credits" in ceiling.refuses(calls_made=3, credits_spent=6, next_cost=5)
    assert "4 calls" in ceiling.refuses(calls_made=4, credits_spent=0, next_cost=1)


@pytest.mark.parametrize("env, problem", [
    ({"CMC_RUN_CEILING_FACTOR": "0"}, "CMC_RUN_CEILING_FACTOR '0' must be a positive number"),
    ({"CMC_RUN_CEILING_FACTOR": "twice"}, "CMC_RUN_CEILING_FACTOR 'twice' must be a positive number"),
    ({"CMC_RUN_CEILING_EXTRA": "-1"}, "CMC_RUN_CEILING_EXTRA '-1' must be a positive whole number"),
])
def test_a_bad_ceiling_setting_is_named(env, problem):
    with pytest.raises(Exception, match=problem):
        Settings.load(env=env)
