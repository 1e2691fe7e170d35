"""API faults under whole cycles: each scenario arms sandbox faults, runs a 10x cycle (extract, transform, load,
post-load SQL, what `cryptolake run --group 10x` does) and ends with the independent check and the secret scan.

The 10x group makes one call per extractor (key_info, listings, global metrics, fear & greed), so a scenario
arms a different fault on each endpoint and one cycle covers several faults; a cycle costs a Spark transform
of the group's tables, the price that decides how many scenarios share one.
"""

from __future__ import annotations

import pytest

from cryptolake.ledger import Ledger
from tests.reliability.check import assert_nothing_lost
from tests.reliability.secret_scan import assert_no_secrets, collect_outputs

pytestmark = [pytest.mark.spark, pytest.mark.timeout(2400)]

LISTINGS = "/v1/cryptocurrency/listings/latest"
GLOBAL = "/v1/global-metrics/quotes/latest"
SENTIMENT = "/v3/fear-and-greed/latest"


def cycle_and_check(world, group: str = "10x") -> tuple[dict[str, int], dict]:
    """(exit code per step, latest extract record per extractor) of one cycle that passed the check."""
    before = {name: _latest_id(world, name) for name in ("crypto_listings_latest", "global_metrics_latest",
                                                         "fear_greed_latest", "key_info")}
    steps = world.cycle(group)
    tally = assert_nothing_lost(world)
    assert_no_secrets({**world.captured(), **collect_outputs(lake=world.lake)}, world.secrets)
    print(f"\n{group} cycle: {[(s.name, s.exit_code) for s in steps]}\n{tally.summary()}")
    ledger = Ledger(world.lake)
    runs = {}
    for name, previous in before.items():
        latest = ledger.runs("extract", name)[-1]
        if latest.run_id != previous:
            runs[name] = latest
    return {s.name: s.exit_code for s in steps}, runs


def _latest_id(world, name: str) -> str | None:
    runs = Ledger(world.lake).runs("extract", name)
    return runs[-1].run_id if runs else None


def test_5xx_bursts_dropped_connections_timeouts_and_a_429_storm_are_ridden_out(fresh):
    for status in (500, 502, 503):
        fresh.fault(kind="error", status=status, path=LISTINGS)
    fresh.fault(kind="timeout", drop=True, count=2, path=GLOBAL)
    fresh.fault(kind="timeout", delay=31, path=GLOBAL)  # just past the client's 30 s timeout
    fresh.fault(kind="rate_limit", count=6, path=SENTIMENT)  # Retry-After: 1 s on this sandbox's clock
    codes, runs = cycle_and_check(fresh)
    assert set(codes.values()) == {0}, codes
    assert len(runs) == 4 and all(r.status == "success" and r.rows for r in runs.values()), runs
    left = fresh.sandbox.control("GET", "faults")["faults"]
    assert len(left) == 6 and all(f["remaining"] == 0 for f in left), left  # every fault fired: ridden out


def test_truncated_malformed_and_wrong_shape_answers_are_quarantined_and_shown_as_failed(fresh):
    fresh.fault(kind="truncated", fraction=0.6, path=LISTINGS)
    fresh.fault(kind="malformed", path=SENTIMENT)
    fresh.fault(kind="shape", path=GLOBAL)
    codes, runs = cycle_and_check(fresh)
    assert codes["extract"] == 4 and codes["transform"] == 0 and codes["load"] == 0, codes
    for name in ("crypto_listings_latest", "global_metrics_latest", "fear_greed_latest"):
        run = runs[name]
        assert run.status == "failed" and not run.files and len(run.details["quarantined"]) == 1, run
    for name in ("crypto_listings_latest", "fear_greed_latest"):  # unparsable: journaled as a failed chunk
        assert runs[name].details["failed"], runs[name]
    assert runs["global_metrics_latest"].details["rejected_items"] == 1  # parsed, but its one item is no object
    status = fresh.outputs["status.stdout"]
    assert all(runs[n].run_id in status for n in ("crypto_listings_latest", "global_metrics_latest"))


def test_schema_drift_rejects_the_items_it_breaks_and_keeps_the_rest(fresh):
    fresh.fault(kind="drift", op="missing", field="3.id", path=LISTINGS)        # one coin without its id
    fresh.fault(kind="drift", op="string", field="quote.USD.total_market_cap", path=GLOBAL)  # a number as text
    fresh.fault(kind="drift", op="null", field="value", path=SENTIMENT)         # a required value null
    codes, runs = cycle_and_check(fresh)
    listings = runs["crypto_listings_latest"]
    assert listings.rows and listings.details["rejected_items"] == 1 and listings.details["quarantined"], listings
    assert runs["global_metrics_latest"].rows == 1
    assert runs["fear_greed_latest"].status == "failed" and runs["fear_greed_latest"].details["rejected_items"] == 1
    assert codes["transform"] == 0 and codes["load"] == 0, codes


def test_the_monthly_quota_exhausted_mid_run_stops_the_group_and_is_recorded(fresh):
    # The governor's key/info and the key_info extractor pass; the listings call hits 429 / 1010.
    fresh.fault(kind="rate_limit", code=1010, path="*", after=2, count=None)
    codes, runs = cycle_and_check(fresh)
    assert codes["extract"] == 5, codes
    listings = runs["crypto_listings_latest"]
    assert listings.status == "failed" and "quota" in listings.error.lower(), listings
    for name in ("global_metrics_latest", "fear_greed_latest"):  # the group stopped there, and says so
        assert runs[name].status == "failed" and runs[name].details == {"not_run": True}, runs[name]
        assert runs[name].run_id in fresh.outputs["status.stdout"]
    fresh.sandbox.control("DELETE", "faults")
    fresh.sandbox.control("POST", "clock", {"advance_seconds": 3600})
    codes, runs = cycle_and_check(fresh)  # the next cycle, once the quota is back, takes everything in
    assert set(codes.values()) == {0}, codes
    assert len(runs) == 4 and all(r.status == "success" for r in runs.values()), runs
