"""Category endpoints: /v1/cryptocurrency/categories and /v1/cryptocurrency/category.

Membership changes over time (coins join and leave categories, new categories appear), and each category's
figures are aggregates of its member coins now and 24 hours ago.
"""

from __future__ import annotations

import numpy as np

from cryptolake.services.sandbox.api import (CONVERT, Call, CreditRule, Endpoint, Param, Result, invalid_value,
                                             page, start_limit)
from cryptolake.services.sandbox.clock import iso
from cryptolake.services.sandbox.crypto import CoinRenderer, LISTING_AUX, statics
from cryptolake.services.sandbox.market import ACTIVE, Market, Snapshot
from cryptolake.services.sandbox.quotes import currencies
from cryptolake.services.sandbox.universe import DAY


def _aggregate(market: Market, snap: Snapshot) -> dict[str, np.ndarray]:
    m = market.universe.memberships
    size = len(market.universe.categories)
    rows = market.members(snap.t)
    coin, cat = m.coin[rows], m.category[rows]
    count = np.bincount(cat, minlength=size)
    return {"count": count,
            "market_cap": np.bincount(cat, weights=snap.market_cap[coin], minlength=size),
            "volume": np.bincount(cat, weights=snap.volume[coin], minlength=size),
            "avg_change": np.bincount(cat, weights=snap.pct["24h"][coin], minlength=size) / np.maximum(count, 1)}


def _change(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.round(np.where(before > 0, (now / before - 1) * 100, 0.0), 4)


def _stats(market: Market, t: float) -> tuple[Snapshot, dict[str, np.ndarray]]:
    snap = market.snapshot(t)
    now, before = _aggregate(market, snap), _aggregate(market, market.snapshot(snap.t - DAY))
    now["market_cap_change"] = _change(now["market_cap"], before["market_cap"])
    now["volume_change"] = _change(now["volume"], before["volume"])
    return snap, now


def _item(market: Market, stats: dict[str, np.ndarray], k: int, updated: str) -> dict:
    cats = market.universe.categories
    return {"id": cats.ids[k], "name": cats.names[k], "title": cats.names[k],
            "description": f"{cats.names[k]} tokens and coins tracked by CoinMarketCap.",
            "num_tokens": int(stats["count"][k]), "avg_price_change": round(float(stats["avg_change"][k]), 8),
            "market_cap": float(stats["market_cap"][k]), "market_cap_change": float(stats["market_cap_change"][k]),
            "volume": float(stats["volume"][k]), "volume_change": float(stats["volume_change"][k]),
            "last_updated": updated}


def _categories(call: Call) -> Result:
    market: Market = call.market
    snap, stats = _stats(market, call.now)
    cats, a = market.universe.categories, call.args
    visible = np.flatnonzero(cats.created <= snap.t)
    wanted = _coin_filter(market, snap, a)
    if wanted is not None:
        m = market.universe.memberships
        rows = market.members(snap.t) & np.isin(m.coin, wanted)
        visible = np.intersect1d(visible, m.category[rows])
    ordered = visible[np.argsort(-stats["market_cap"][visible], kind="stable")]
    updated = iso(snap.t)
    return Result([_item(market, stats, int(k), updated) for k in page(ordered, a)], 0)


def _coin_filter(market: Market, snap: Snapshot, args: dict) -> list[int] | None:
    """The coins named by id, slug or symbol, or None when no filter was given."""
    coins, static = market.universe.coins, statics(market)
    if args["id"]:
        return [coins.index_of_id[i] for i in args["id"] if i in coins.index_of_id]
    if args["slug"]:
        return [static.by_slug[s] for s in args["slug"] if s in static.by_slug]
    if args["symbol"]:
        return [i for s in args["symbol"] for i in static.by_symbol.get(s.upper(), []) if snap.state[i] == ACTIVE]
    return None


def _category(call: Call) -> Result:
    market: Market = call.market
    cats, a = market.universe.categories, call.args
    k = cats.index_of_id.get(a["id"])
    if k is None or cats.created[k] > call.now:
        raise invalid_value("id", a["id"])
    snap, stats = _stats(market, call.now)
    quote_currencies = currencies(call, snap)
    m = market.universe.memberships
    members = np.unique(m.coin[market.members(snap.t) & (m.category == k)])
    ordered = members[np.argsort(snap.rank[members], kind="stable")]
    shown = page(ordered, a)
    render = CoinRenderer(call, snap, LISTING_AUX[:8], quote_currencies)
    item = _item(market, stats, k, iso(snap.t))
    updated = item.pop("last_updated")
    data = {**item, "coins": [render.item(int(i)) for i in shown], "last_updated": updated}
    return Result(data, len(shown))


ENDPOINTS = (
    Endpoint("/v1/cryptocurrency/categories", (
        *start_limit(None, 5000), Param("id", "ids"), Param("slug", "slugs"), Param("symbol", "symbols")),
        _categories, CreditRule(base=1)),
    Endpoint("/v1/cryptocurrency/category", (
        Param("id", "string", required=True), *start_limit(100, 1000), *CONVERT),
        _category, CreditRule(base=1, per_items=200, converts=True)),
)
