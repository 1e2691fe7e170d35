"""/v1/global-metrics/quotes/latest: market-wide aggregates of the simulated coins and exchanges.

Updated every 5 minutes like the real endpoint; "yesterday" figures come from the market 24 hours earlier.
"""

from __future__ import annotations

import math

import numpy as np

from cryptolake.services.sandbox.api import CONVERT, Call, CreditRule, Endpoint, Result
from cryptolake.services.sandbox.clock import iso
from cryptolake.services.sandbox.crypto import category_members
from cryptolake.services.sandbox.market import ACTIVE, NOT_LISTED, Market, Snapshot
from cryptolake.services.sandbox.quotes import convert, currencies
from cryptolake.services.sandbox.universe import DAY, EPOCH

UPDATE_EVERY = 300.0
DERIVATIVES_TO_SPOT = 4.2


def _pct(now: float, before: float) -> float:
    return round((now / before - 1) * 100, 8) if before else 0.0


def _figures(market: Market, snap: Snapshot) -> dict[str, float]:
    coins = market.universe.coins
    wash = 1 + coins.wash
    btc, eth = market.universe.btc, coins.index_of_id[1027]
    total = snap.total_market_cap
    figures = {"total_market_cap": total, "total_volume_24h": snap.total_volume,
               "total_volume_24h_reported": float((snap.volume * wash).sum()),
               "btc_dominance": snap.market_cap[btc] / total * 100 if total else 0.0,
               "eth_dominance": snap.market_cap[eth] / total * 100 if total else 0.0}
    figures["altcoin_market_cap"] = total - float(snap.market_cap[btc])
    figures["altcoin_volume_24h"] = snap.total_volume - float(snap.volume[btc])
    figures["altcoin_volume_24h_reported"] = figures["total_volume_24h_reported"] - float(snap.volume[btc] * wash[btc])
    for name, slug in (("defi", "defi"), ("stablecoin", "stablecoin")):
        members = category_members(market, slug, snap.t)
        figures[f"{name}_market_cap"] = float(snap.market_cap[members].sum())
        figures[f"{name}_volume_24h"] = float(snap.volume[members].sum())
        figures[f"{name}_volume_24h_reported"] = float((snap.volume[members] * wash[members]).sum())
    factor = DERIVATIVES_TO_SPOT * math.exp(0.15 * float(market.noise_at(41, DAY, snap.t, 1)[0]))
    figures["derivatives_volume_24h"] = snap.total_volume * factor
    figures["derivatives_volume_24h_reported"] = figures["total_volume_24h_reported"] * factor
    return figures


def _additions(market: Market, t: float) -> dict:
    """How many coins were added today, in the last 24 h / 7 / 30 days, and the busiest and quietest day of the year."""
    added = market.universe.coins.added
    today = EPOCH + math.floor((t - EPOCH) / DAY) * DAY
    counts = {name: int(((added > t - span) & (added <= t)).sum())
              for name, span in (("past_24h", DAY), ("past_7d", 7 * DAY), ("past_30d", 30 * DAY))}
    today_count = int(((added >= today) & (added <= t)).sum())
    yesterday = int(((added >= today - DAY) & (added < today)).sum())
    per_day = np.histogram(added, bins=np.arange(today - 365 * DAY, today + 1, DAY))[0]
    high, low = int(per_day.argmax()), int(per_day.argmin())
    return {
        "today_incremental_crypto_number": today_count,
        "past_24h_incremental_crypto_number": counts["past_24h"],
        "past_7d_incremental_crypto_number": counts["past_7d"],
        "past_30d_incremental_crypto_number": counts["past_30d"],
        "today_change_percent": _pct(today_count, yesterday),
        "tracked_yearly_number": {
            "maxIncrementalNumber": int(per_day[high]), "minIncrementalNumber": int(per_day[low]),
            "maxIncrementalDate": iso(today - (365 - high) * DAY),
            "minIncrementalDate": iso(today - (365 - low) * DAY)},
    }


def _latest(call: Call) -> Result:
    market: Market = call.market
    t = math.floor(call.now / UPDATE_EVERY) * UPDATE_EVERY
    snap, before = market.snapshot(t), market.snapshot(t - DAY)
    quote_currencies = currencies(call, snap)
    now, yesterday = _figures(market, snap), _figures(market, before)
    exchanges = market.exchanges(t)
    coins = market.universe.coins
    active = snap.state == ACTIVE
    change = {name: _pct(now[f"{name}_volume_24h"], yesterday[f"{name}_volume_24h"])
              for name in ("defi", "stablecoin", "derivatives")}
    updated = iso(t)
    data = {
        "active_cryptocurrencies": int(active.sum()),
        "total_cryptocurrencies": int((snap.state != NOT_LISTED).sum()),
        "active_market_pairs": int(snap.pairs.sum()),
        "active_exchanges": int((exchanges.state == ACTIVE).sum()),
        "total_exchanges": int((exchanges.state != NOT_LISTED).sum()),
        "eth_dominance": round(now["eth_dominance"], 8), "btc_dominance": round(now["btc_dominance"], 8),
        "eth_dominance_yesterday": round(yesterday["eth_dominance"], 8),
        "btc_dominance_yesterday": round(yesterday["btc_dominance"], 8),
        "eth_dominance_24h_percentage_change": round(now["eth_dominance"] - yesterday["eth_dominance"], 8),
        "btc_dominance_24h_percentage_change": round(now["btc_dominance"] - yesterday["btc_dominance"], 8),
        "defi_volume_24h": now["defi_volume_24h"], "defi_volume_24h_reported": now["defi_volume_24h_reported"],
        "defi_market_cap": now["defi_market_cap"], "defi_24h_percentage_change": change["defi"],
        "stablecoin_volume_24h": now["stablecoin_volume_24h"],
        "stablecoin_volume_24h_reported": now["stablecoin_volume_24h_reported"],
        "stablecoin_market_cap": now["stablecoin_market_cap"], "stablecoin_24h_percentage_change": change["stablecoin"],
        "derivatives_volume_24h": now["derivatives_volume_24h"],
        "derivatives_volume_24h_reported": now["derivatives_volume_24h_reported"],
        "derivatives_24h_percentage_change": change["derivatives"],
        "total_crypto_dex_currencies": int((active & (coins.platform >= 0)).sum()),
        **_additions(market, t),
        "quote": {},
        "last_updated": updated,
    }
    money = ("total_market_cap", "total_volume_24h", "total_volume_24h_reported", "altcoin_volume_24h",
             "altcoin_volume_24h_reported", "altcoin_market_cap", "defi_volume_24h", "defi_volume_24h_reported",
             "defi_market_cap", "stablecoin_volume_24h", "stablecoin_volume_24h_reported", "stablecoin_market_cap",
             "derivatives_volume_24h", "derivatives_volume_24h_reported")
    for cur in quote_currencies:
        quote = {name: convert(now[name], cur) for name in money}
        for name in ("defi", "stablecoin", "derivatives"):
            quote[f"{name}_24h_percentage_change"] = change[name]
        quote.update({
            "total_market_cap_yesterday": convert(yesterday["total_market_cap"], cur),
            "total_volume_24h_yesterday": convert(yesterday["total_volume_24h"], cur),
            "total_market_cap_yesterday_percentage_change": _pct(now["total_market_cap"],
                                                                 yesterday["total_market_cap"]),
            "total_volume_24h_yesterday_percentage_change": _pct(now["total_volume_24h"],
                                                                 yesterday["total_volume_24h"]),
            "last_updated": updated})
        data["quote"][cur.key] = quote
    return Result(data)


ENDPOINTS = (
    Endpoint("/v1/global-metrics/quotes/latest", CONVERT, _latest, CreditRule(base=1, converts=True)),
)
