"""The synthetic market over a simulated month, and its determinism (same seed + same clock = same bytes)."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.sandbox.conftest import FAST_PLAN, START

MONTH_START = "2025-03-01T00:00:00Z"
UNIVERSE = ("--coins", "3000", "--exchanges", "200", "--categories", "80")


@pytest.fixture(scope="module")
def month(sandbox_factory):
    """31 daily listings snapshots (every active coin), taken by advancing a frozen clock one day at a time."""
    server = sandbox_factory(*UNIVERSE, "--clock", "simulated", "--start", MONTH_START, "--rate", "0", *FAST_PLAN)
    snapshots = []
    for day in range(31):
        if day:
            server.advance(86400)
        listing = server.data("/v1/cryptocurrency/listings/latest", limit=5000)
        snapshots.append({coin["id"]: coin for coin in listing})
    return server, snapshots


def _price(coin: dict) -> float:
    return coin["quote"]["USD"]["price"]


def test_prices_move_every_day_and_agree_with_the_reported_changes(month):
    _, days = month
    assert len({_price(day[1]) for day in days}) == 31
    for coin_id in (1, 1027, *list(days[0])[100:105]):
        for before, after in zip(days, days[1:]):
            if coin_id in before and coin_id in after:
                change = after[coin_id]["quote"]["USD"]["percent_change_24h"]
                assert change == pytest.approx((_price(after[coin_id]) / _price(before[coin_id]) - 1) * 100,
                                               abs=1e-6)
    seven = days[30][1]["quote"]["USD"]["percent_change_7d"]
    assert seven == pytest.approx((_price(days[30][1]) / _price(days[23][1]) - 1) * 100, abs=1e-6)


def test_ranks_change_and_follow_market_cap(month):
    _, days = month
    first, last = days[0], days[-1]
    common = set(first) & set(last)
    moved = [i for i in common if first[i]["cmc_rank"] != last[i]["cmc_rank"]]
    assert len(moved) > len(common) / 4
    ranked = sorted(last.values(), key=lambda c: c["cmc_rank"])
    assert [c["cmc_rank"] for c in ranked] == list(range(1, len(ranked) + 1))
    caps = [c["quote"]["USD"]["market_cap"] for c in ranked if c["quote"]["USD"]["market_cap"]]
    assert caps == sorted(caps, reverse=True)


def test_coins_appear_and_go_inactive(month):
    server, days = month
    first, last = days[0], days[-1]
    appeared = set(last) - set(first)
    assert appeared, "new coins are listed during the month"
    assert any(last[i]["date_added"] >= "2025-03-01" for i in appeared)
    gone = set(first) - set(last)
    assert gone, "some coins go inactive during the month"
    inactive = {c["id"]: c for c in server.data("/v1/cryptocurrency/map", listing_status="inactive")}
    assert gone <= set(inactive)
    assert all(inactive[i]["is_active"] == 0 and "2025-03" <= inactive[i]["last_historical_data"] < "2025-04"
               for i in gone)
    totals = [len(day) for day in days]
    assert len(set(totals)) > 1


def test_category_membership_changes(month):
    _, days = month
    first, last = days[0], days[-1]
    changed = [i for i in set(first) & set(last) if set(first[i]["tags"]) != set(last[i]["tags"])]
    assert changed, "coins join and leave categories over time"


def test_returns_are_correlated_with_btc(month):
    _, days = month
    ids = [i for i in list(days[0])[2:80] if all(i in day for day in days)]
    ids = [i for i in ids if days[0][i]["quote"]["USD"]["price"] > 0 and "stablecoin" not in days[0][i]["tags"]]

    def returns(coin_id):
        prices = [_price(day[coin_id]) for day in days]
        return [b / a - 1 for a, b in zip(prices, prices[1:])]

    btc = returns(1)
    correlations = [statistics.correlation(btc, returns(i)) for i in ids]
    assert statistics.mean(correlations) > 0.3


def test_supplies_and_market_caps_are_consistent(month):
    _, days = month
    coins = list(days[-1].values())
    assert any(c["max_supply"] is None and c["infinite_supply"] for c in coins)
    assert any(c["max_supply"] is None and not c["infinite_supply"] for c in coins)
    assert any(c["circulating_supply"] == 0 and c["quote"]["USD"]["market_cap"] == 0 for c in coins)
    assert any(c["self_reported_circulating_supply"] is not None for c in coins)
    assert any(c["platform"] and c["platform"]["token_address"] for c in coins)
    for c in coins[:500]:
        q = c["quote"]["USD"]
        assert q["market_cap"] == pytest.approx(q["price"] * c["circulating_supply"], rel=1e-9)
        if c["max_supply"] is not None:
            assert c["circulating_supply"] <= c["total_supply"] <= c["max_supply"] * (1 + 1e-9)


def test_fear_and_greed_history_ends_with_today_and_follows_latest(month):
    server, _ = month
    history = server.data("/v3/fear-and-greed/historical", limit=31)
    stamps = [int(item["timestamp"]) for item in history]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] % 86400 == 0
    assert stamps[0] - stamps[-1] == 30 * 86400
    assert len({item["value"] for item in history}) > 5
    bands = {"Extreme Fear": (1, 19), "Fear": (20, 39), "Neutral": (40, 59), "Greed": (60, 79),
             "Extreme Greed": (80, 100)}
    for item in history:
        low, high = bands[item["value_classification"]]
        assert low <= item["value"] <= high
    latest = server.data("/v3/fear-and-greed/latest")  # the clock is at 00:00 UTC: latest is today's value
    assert (latest["value"], latest["update_time"][:10]) == (history[0]["value"], "2025-03-31")


def test_global_metrics_sum_the_market(month):
    server, days = month
    metrics = server.data("/v1/global-metrics/quotes/latest")
    assert metrics["active_cryptocurrencies"] == len(days[-1])
    total = sum(c["quote"]["USD"]["market_cap"] for c in days[-1].values())
    assert metrics["quote"]["USD"]["total_market_cap"] == pytest.approx(total, rel=1e-9)
    btc = days[-1][1]["quote"]["USD"]
    assert metrics["btc_dominance"] == pytest.approx(btc["market_cap_dominance"], abs=1e-3)
    assert metrics["past_30d_incremental_crypto_number"] > 0


ENDPOINTS = [
    ("/v1/cryptocurrency/map", {}), ("/v1/cryptocurrency/listings/latest", {"limit": 5000}),
    ("/v2/cryptocurrency/info", {"id": "1,2,1027,825"}), ("/v2/cryptocurrency/quotes/latest", {"symbol": "BTC,ETH"}),
    ("/v1/cryptocurrency/categories", {}), ("/v1/exchange/map", {}), ("/v1/exchange/info", {"id": "270,24"}),
    ("/v1/exchange/assets", {"id": 270}), ("/v1/global-metrics/quotes/latest", {}),
    ("/v3/fear-and-greed/latest", {}), ("/v3/fear-and-greed/historical", {"limit": 500}), ("/v1/fiat/map", {}),
]
FROZEN = ("--clock", "simulated", "--start", START, "--rate", "0", *FAST_PLAN)


def test_same_seed_and_clock_give_the_same_bytes_in_any_order(sandbox_factory):
    a = sandbox_factory(*UNIVERSE, *FROZEN)
    b = sandbox_factory(*UNIVERSE, *FROZEN)
    b.advance(40 * 86400)  # b computes a later market first: state must not depend on what was asked before
    b.get("/v1/cryptocurrency/listings/latest", limit=5000)
    b.set_clock(START)
    category = a.data("/v1/cryptocurrency/categories", limit=1)[0]["id"]
    for path, params in [*ENDPOINTS, ("/v1/cryptocurrency/category", {"id": category})]:
        assert a.get(path, **params).content == b.get(path, **params).content, path


def test_a_different_seed_gives_a_different_market(sandbox_factory):
    a = sandbox_factory(*UNIVERSE, *FROZEN)
    other = sandbox_factory(*UNIVERSE, *FROZEN, "--seed", "7")
    ours = a.data("/v1/cryptocurrency/listings/latest", limit=100)
    theirs = other.data("/v1/cryptocurrency/listings/latest", limit=100)
    assert _price(ours[0]) != _price(theirs[0])
    assert [c["id"] for c in ours] != [c["id"] for c in theirs]


def test_an_accelerated_clock_runs_a_day_per_second(sandbox_factory):
    server = sandbox_factory(*UNIVERSE, "--clock", "simulated", "--start", MONTH_START, "--rate", "86400",
                             *FAST_PLAN)
    before = server.data("/v1/cryptocurrency/listings/latest", limit=1)[0]
    time.sleep(1.2)
    after = server.data("/v1/cryptocurrency/listings/latest", limit=1)[0]
    assert after["last_updated"] >= "2025-03-02"
    assert _price(after) != _price(before)
    clock = server.control("POST", "/sandbox/clock", {"rate": 0})
    assert clock["rate"] == 0 and clock["mode"] == "simulated"


def test_the_wall_clock_cannot_be_moved(sandbox_factory):
    import requests

    server = sandbox_factory(*UNIVERSE, *FAST_PLAN)
    answer = requests.post(server.url + "/sandbox/clock", json={"advance_seconds": 60}, timeout=10)
    assert answer.status_code == 400 and "--clock simulated" in answer.json()["error"]
