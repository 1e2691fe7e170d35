"""Fear & Greed endpoints: /v3/fear-and-greed/latest and /v3/fear-and-greed/historical.

The index follows BTC's two-week momentum plus slow and daily noise, so it agrees with the simulated market.
The history is one value per day at 00:00 UTC, newest first; "latest" is the same function every 15 minutes.
"""

from __future__ import annotations

import math

from cryptolake.services.sandbox.api import Call, CreditRule, Endpoint, Result, page, start_limit
from cryptolake.services.sandbox.clock import iso
from cryptolake.services.sandbox.market import Market
from cryptolake.services.sandbox.universe import DAY, EPOCH, utc_ts

HISTORY_START = utc_ts("2023-06-29")   # the sandbox's index has no values before this day
UPDATE_EVERY = 900.0
BANDS = ((20, "Extreme Fear"), (40, "Fear"), (60, "Neutral"), (80, "Greed"), (101, "Extreme Greed"))


def classify(value: int) -> str:
    return next(name for upper, name in BANDS if value < upper)


def _btc(market: Market, ts: float) -> float:
    day, rest = divmod(ts - EPOCH, DAY)
    if rest == 0:  # midnight: the daily walk itself, no intraday path needed
        return market.btc_close(int(day))
    return float(market.log_price(ts)[market.universe.btc])


def score(market: Market, ts: float) -> int:
    momentum = _btc(market, ts) - _btc(market, ts - 14 * DAY)
    slow = float(market.noise_at(43, 7 * DAY, ts, 1)[0])
    daily = float(market.noise_at(47, DAY, ts, 1)[0])
    return max(1, min(100, round(50 + 40 * math.tanh(3 * momentum) + 8 * slow + 2 * daily)))


def _latest(call: Call) -> Result:
    t = math.floor(call.now / UPDATE_EVERY) * UPDATE_EVERY
    value = score(call.market, t)
    return Result({"value": value, "value_classification": classify(value), "update_time": iso(t)})


def _historical(call: Call) -> Result:
    today = EPOCH + math.floor((call.now - EPOCH) / DAY) * DAY
    days = max(0, int((today - HISTORY_START) // DAY) + 1)
    data = []
    for k in page(range(days), call.args):
        ts = today - k * DAY
        value = score(call.market, ts)
        data.append({"timestamp": str(int(ts)), "value": value, "value_classification": classify(value)})
    return Result(data, len(data))


ENDPOINTS = (
    Endpoint("/v3/fear-and-greed/latest", (), _latest, CreditRule(base=1), v3_status=True),
    Endpoint("/v3/fear-and-greed/historical", start_limit(50, 500), _historical, CreditRule(base=1), v3_status=True),
)
