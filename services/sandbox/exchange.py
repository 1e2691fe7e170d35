"""Exchange endpoints: /v1/exchange/map, /v1/exchange/info and /v1/exchange/assets (proof-of-reserve wallets).

Exchanges launch, get listed and go inactive over time; spot volume follows the market (BTC) with noise.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from cryptolake.services.sandbox.api import Call, CreditRule, Endpoint, Param, Result, invalid_value, page, start_limit
from cryptolake.services.sandbox.clock import iso
from cryptolake.services.sandbox.market import (ACTIVE, INACTIVE, LISTING_STATES, NOT_LISTED, STATUS_NAMES,
                                                UNTRACKED, Market)

MAP_AUX = ("first_historical_data", "last_historical_data", "is_active", "status")
INFO_AUX = ("urls", "logo", "description", "date_launched", "notice", "status")
MIN_WALLET_USD = 100_000  # the API lists only wallets worth at least this much


def _trades(market: Market, coin: int) -> np.ndarray:
    """Mask of exchanges trading a coin: more market pairs, more exchanges (deterministic by ids)."""
    ex, coins = market.universe.exchanges, market.universe.coins
    share = min(1.0, coins.pairs[coin] / 400)
    return ((int(coins.ids[coin]) * 2654435761 + ex.ids * 40503) % 10007) / 10007 < share


def _map(call: Call) -> Result:
    market: Market = call.market
    snap = market.exchanges(call.now)
    ex, a = market.universe.exchanges, call.args
    aux = frozenset(a["aux"])
    if a["slug"]:
        wanted = set(a["slug"])
        selected = [i for i, s in enumerate(ex.slugs) if s in wanted and snap.state[i] != NOT_LISTED]
    else:
        mask = np.isin(snap.state, [LISTING_STATES[s] for s in a["listing_status"]])
        if a["crypto_id"]:
            coin = market.universe.coins.index_of_id.get(a["crypto_id"])
            mask &= _trades(market, coin) if coin is not None else False
        selected = np.flatnonzero(mask)
        if a["sort"] == "volume_24h":
            selected = selected[np.argsort(-snap.volume[selected], kind="stable")]
        selected = page(selected.tolist(), a)
    last = iso(snap.t)
    data = []
    for i in selected:
        state = int(snap.state[i])
        item = {"id": int(ex.ids[i]), "name": ex.names[i], "slug": ex.slugs[i]}
        if "is_active" in aux:
            item["is_active"] = int(state == ACTIVE)
        if "status" in aux:
            item["status"] = STATUS_NAMES[state]
        if "first_historical_data" in aux:
            item["first_historical_data"] = iso(ex.added[i]) if state != UNTRACKED else None
        if "last_historical_data" in aux:
            item["last_historical_data"] = (last if state == ACTIVE else
                                              iso(ex.inactive[i]) if state == INACTIVE else None)
        data.append(item)
    return Result(data, len(data))


def _description(ex, i: int) -> str:
    launched = datetime.fromtimestamp(ex.launched[i], timezone.utc).strftime("%b-%Y")
    kind = "decentralized" if ex.dex[i] else "centralized"
    where = f" registered in {', '.join(ex.countries[i])}" if ex.countries[i] else ""
    return f"Launched in {launched}, {ex.names[i]} is a {kind} exchange{where}."


def _info(call: Call) -> Result:
    market: Market = call.market
    snap = market.exchanges(call.now)
    ex, a = market.universe.exchanges, call.args
    aux = frozenset(a["aux"])
    by_slug = {s: i for i, s in enumerate(ex.slugs)}
    found, invalid = [], []
    for wanted in a["id"] or a["slug"]:
        i = ex.index_of_id.get(wanted) if a["id"] else by_slug.get(wanted)
        (found.append(i) if i is not None and snap.state[i] != NOT_LISTED else invalid.append(str(wanted)))
    if invalid:
        raise invalid_value("id" if a["id"] else "slug", ",".join(invalid))
    data = {}
    for i in found:
        eid, slug = int(ex.ids[i]), ex.slugs[i]
        item = {"id": eid, "name": ex.names[i], "slug": slug}
        if "logo" in aux:
            item["logo"] = f"https://s2.coinmarketcap.com/static/img/exchanges/64x64/{eid}.png"
        if "description" in aux:
            item["description"] = _description(ex, i)
        if "date_launched" in aux:
            item["date_launched"] = iso(ex.launched[i])
        if "notice" in aux:
            item["notice"] = ex.notices[i] or ""
        item.update({"countries": ex.countries[i], "fiats": ex.fiats[i], "tags": None,
                     "type": "dex" if ex.dex[i] else "", "maker_fee": float(ex.maker_fee[i]),
                     "taker_fee": float(ex.taker_fee[i]), "weekly_visits": int(snap.visits[i]),
                     "spot_volume_usd": float(snap.volume[i]), "spot_volume_last_updated": iso(snap.t)})
        if "urls" in aux:
            item["urls"] = {"website": [f"https://www.{slug}.com/"], "twitter": [f"https://twitter.com/{slug}"],
                            "blog": [f"https://blog.{slug}.com/"] if eid % 3 else [],
                            "chat": [f"https://t.me/{slug.replace('-', '')}"] if eid % 2 else [],
                            "fee": [] if ex.dex[i] else [f"https://www.{slug}.com/fees"]}
        item.update({"is_hidden": 0, "is_redistributable": 1})
        if "status" in aux:
            item["status"] = STATUS_NAMES[int(snap.state[i])]
        data[str(eid)] = item
    return Result(data, len(data))


def _assets(call: Call) -> Result:
    market: Market = call.market
    ex, coins = market.universe.exchanges, market.universe.coins
    i = ex.index_of_id.get(call.args["id"])
    snap = market.exchanges(call.now)
    if i is None or snap.state[i] == NOT_LISTED:
        raise invalid_value("id", str(call.args["id"]))
    if snap.state[i] != ACTIVE or not ex.wallets[i]:
        return Result([], 0)
    prices = market.snapshot(call.now).price
    data = []
    for (platform, currency, address, _), balance in zip(ex.wallets[i], market.wallet_balances(i, call.now)):
        price = float(prices[currency])
        if balance * price < MIN_WALLET_USD:
            continue
        data.append({"wallet_address": address, "balance": round(float(balance), 8),
                     "platform": {"crypto_id": int(coins.ids[platform]), "symbol": coins.symbols[platform],
                                  "name": coins.names[platform]},
                     "currency": {"crypto_id": int(coins.ids[currency]), "price_usd": price,
                                  "symbol": coins.symbols[currency], "name": coins.names[currency]}})
    data.sort(key=lambda w: -w["balance"] * w["currency"]["price_usd"])
    return Result(data, len(data))


ENDPOINTS = (
    Endpoint("/v1/exchange/map", (
        Param("listing_status", "csv_enum", ("active",), choices=("active", "inactive", "untracked")),
        Param("slug", "slugs"), *start_limit(None, 5000), Param("sort", "enum", "id", choices=("volume_24h", "id")),
        Param("aux", "csv_enum", MAP_AUX[:3], choices=MAP_AUX), Param("crypto_id", "int", minimum=1)),
        _map, CreditRule(base=1)),
    Endpoint("/v1/exchange/info", (
        Param("id", "ids"), Param("slug", "slugs"), Param("aux", "csv_enum", INFO_AUX[:5], choices=INFO_AUX)),
        _info, CreditRule(base=0, per_items=100), one_of=("id", "slug"), exclusive=("id", "slug")),
    Endpoint("/v1/exchange/assets", (Param("id", "int", required=True, minimum=1),), _assets, CreditRule(base=1)),
)
