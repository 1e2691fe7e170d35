"""Cryptocurrency endpoints: /v1/cryptocurrency/map, /v1/cryptocurrency/listings/latest, /v2/cryptocurrency/info,
/v2/cryptocurrency/quotes/latest. The listing item built here is also the `coins` item of /v1/cryptocurrency/category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryptolake.services.sandbox.api import (CONVERT, Call, CreditRule, Endpoint, Param, Result, invalid_value,
                                             page, start_limit)
from cryptolake.services.sandbox.clock import iso
from cryptolake.services.sandbox.market import (ACTIVE, INACTIVE, LAGS, LISTING_STATES, NOT_LISTED, STATUS_NAMES,
                                                UNTRACKED, Market, Snapshot)
from cryptolake.services.sandbox.quotes import Currency, convert, convert_pct, currencies
from cryptolake.services.sandbox.universe import PLATFORMS

MAP_AUX = ("platform", "first_historical_data", "last_historical_data", "is_active", "status")
LISTING_AUX = ("num_market_pairs", "cmc_rank", "date_added", "tags", "platform", "max_supply", "circulating_supply",
               "total_supply", "market_cap_by_total_supply", "volume_24h_reported", "volume_7d",
               "volume_7d_reported", "volume_30d", "volume_30d_reported", "is_market_cap_included_in_calc")
QUOTES_AUX = LISTING_AUX[:-1] + ("is_active", "is_fiat")
INFO_AUX = ("urls", "logo", "description", "tags", "platform", "date_added", "notice", "status")


@dataclass
class Statics:
    """Per-coin values that never change, rendered once per universe."""

    added: list[str]
    tracked: list[str]
    platform: list[dict | None]          # map / listing style: integer id
    info_platform: list[dict | None]     # info style: the id is a string (a quirk of the real API)
    by_slug: dict[str, int]
    by_symbol: dict[str, list[int]]
    by_address: dict[str, int]


def statics(market: Market) -> Statics:
    memo = market.memo.get("crypto")
    if memo is None:
        coins = market.universe.coins
        platform, info_platform = [], []
        for i in range(len(coins)):
            p = int(coins.platform[i])
            if p < 0:
                platform.append(None), info_platform.append(None)
                continue
            host = coins.index_of_id[PLATFORMS[p].coin_id]
            body = {"name": coins.names[host], "symbol": coins.symbols[host], "slug": coins.slugs[host],
                    "token_address": coins.token_address[i]}
            platform.append({"id": PLATFORMS[p].coin_id, **body})
            info_platform.append({"id": str(PLATFORMS[p].coin_id), **body})
        by_symbol: dict[str, list[int]] = {}
        for i, symbol in enumerate(coins.symbols):
            by_symbol.setdefault(symbol, []).append(i)
        memo = market.memo["crypto"] = Statics(
            added=[iso(t) for t in coins.added], tracked=[iso(t) for t in coins.tracked], platform=platform,
            info_platform=info_platform, by_slug={s: i for i, s in enumerate(coins.slugs)}, by_symbol=by_symbol,
            by_address={a.lower(): i for i, a in enumerate(coins.token_address) if a})
    return memo


def num(value: float) -> float | int | None:
    """Numbers as the API's JavaScript prints them: no value is null, whole numbers have no decimal point."""
    if value != value:
        return None
    return int(value) if value.is_integer() else value


def tag_indices(market: Market, i: int, t: float) -> list[int]:
    return [cat for cat, joined, left in market.universe.memberships.by_coin[i] if joined <= t < left]


class CoinRenderer:
    """Builds listing-style items (listings, quotes, category coins) for one snapshot, aux set and currencies."""

    def __init__(self, call: Call, snap: Snapshot, aux: tuple[str, ...], quote_currencies: list[Currency],
                 quotes_style: bool = False):
        self.market: Market = call.market
        self.snap = snap
        self.aux = frozenset(aux)
        self.currencies = quote_currencies
        self.quotes_style = quotes_style
        self.static = statics(self.market)
        self.last_updated = iso(snap.t)
        s = snap
        self.cols = {name: s.column(name) for name in (
            "price", "volume", "volume_change", "circulating", "total", "max_supply", "market_cap", "dominance",
            "fdmc", "market_cap_total", "rank", "pairs", "volume_7d", "volume_30d", "state")}
        self.pct = {lag: s.column("pct_" + lag) for lag in LAGS}

    def tags(self, i: int) -> list:
        categories = self.market.universe.categories
        found = tag_indices(self.market, i, self.snap.t)
        if self.quotes_style:
            return [{"slug": categories.slugs[k], "name": categories.names[k], "category": categories.groups[k]}
                    for k in found]
        return [categories.slugs[k] for k in found]

    def item(self, i: int) -> dict:
        coins, aux, c = self.market.universe.coins, self.aux, self.cols
        active = c["state"][i] == ACTIVE
        item = {"id": int(coins.ids[i]), "name": coins.names[i], "symbol": coins.symbols[i], "slug": coins.slugs[i]}
        if "num_market_pairs" in aux:
            item["num_market_pairs"] = c["pairs"][i]
        if "date_added" in aux:
            item["date_added"] = self.static.added[i]
        if "tags" in aux:
            item["tags"] = self.tags(i)
        if "max_supply" in aux:
            item["max_supply"] = num(c["max_supply"][i])
        if "circulating_supply" in aux:
            item["circulating_supply"] = num(c["circulating"][i])
        if "total_supply" in aux:
            item["total_supply"] = num(c["total"][i])
        if "market_cap_by_total_supply" in aux:
            item["market_cap_by_total_supply"] = c["market_cap_total"][i]
        if "is_active" in aux:
            item["is_active"] = int(active)
        item["infinite_supply"] = bool(coins.infinite[i])
        if "platform" in aux:
            item["platform"] = self.static.platform[i]
        if "cmc_rank" in aux:
            item["cmc_rank"] = c["rank"][i] or None
        if "is_fiat" in aux:
            item["is_fiat"] = 0
        if "is_market_cap_included_in_calc" in aux:
            item["is_market_cap_included_in_calc"] = int(bool(coins.circ_known[i]))
        reported = coins.self_reported[i]
        item["self_reported_circulating_supply"] = num(reported)
        item["self_reported_market_cap"] = None if reported != reported else reported * c["price"][i]
        item["tvl_ratio"] = None
        item["last_updated"] = self.last_updated
        item["quote"] = {cur.key: self.quote(i, cur) for cur in self.currencies}
        return item

    def quote(self, i: int, cur: Currency) -> dict:
        c, aux = self.cols, self.aux
        quote = {"price": convert(c["price"][i], cur), "volume_24h": convert(c["volume"][i], cur),
                 "volume_change_24h": c["volume_change"][i]}
        wash = 1 + float(self.market.universe.coins.wash[i])
        for name, column, factor in (("volume_24h_reported", "volume", wash), ("volume_7d", "volume_7d", 1.0),
                                     ("volume_7d_reported", "volume_7d", wash), ("volume_30d", "volume_30d", 1.0),
                                     ("volume_30d_reported", "volume_30d", wash)):
            if name in aux:
                quote[name] = convert(c[column][i] * factor, cur)
        for lag in LAGS:
            quote["percent_change_" + lag] = convert_pct(self.pct[lag][i], cur, lag)
        quote.update({"market_cap": convert(c["market_cap"][i], cur), "market_cap_dominance": c["dominance"][i],
                      "fully_diluted_market_cap": convert(c["fdmc"][i], cur), "tvl": None,
                      "last_updated": self.last_updated})
        return quote


# -- /v1/cryptocurrency/map ----------------------------------------------------------------------------------
def _map(call: Call) -> Result:
    market: Market = call.market
    snap = market.snapshot(call.now)
    coins, static, a = market.universe.coins, statics(market), call.args
    aux = frozenset(a["aux"])
    if a["symbol"]:
        wanted = set(a["symbol"])
        selected = [i for i, s in enumerate(coins.symbols) if s in wanted and snap.state[i] != NOT_LISTED]
    else:
        states = [LISTING_STATES[s] for s in a["listing_status"]]
        selected = np.flatnonzero(np.isin(snap.state, states)).tolist()
        if a["sort"] == "cmc_rank":
            rank = snap.rank
            selected.sort(key=lambda i: (rank[i] == 0, rank[i], i))
        selected = page(selected, a)
    last = iso(snap.t)
    data = []
    for i in selected:
        state = int(snap.state[i])
        item = {"id": int(coins.ids[i]), "rank": int(snap.rank[i]) or None, "name": coins.names[i],
                "symbol": coins.symbols[i], "slug": coins.slugs[i]}
        if "is_active" in aux:
            item["is_active"] = int(state == ACTIVE)
        if "status" in aux:
            item["status"] = STATUS_NAMES[state]
        if "first_historical_data" in aux:
            item["first_historical_data"] = static.tracked[i] if state != UNTRACKED else None
        if "last_historical_data" in aux:
            item["last_historical_data"] = (last if state == ACTIVE else
                                              iso(coins.inactive[i]) if state == INACTIVE else None)
        if "platform" in aux:
            item["platform"] = static.platform[i]
        data.append(item)
    return Result(data, len(data))


# -- /v1/cryptocurrency/listings/latest ----------------------------------------------------------------------
_SORT_KEYS = {
    "market_cap": lambda s, c: -s.rank, "market_cap_strict": lambda s, c: s.market_cap,
    "date_added": lambda s, c: c.added, "price": lambda s, c: s.price,
    "circulating_supply": lambda s, c: s.circulating, "total_supply": lambda s, c: s.total,
    "max_supply": lambda s, c: np.nan_to_num(s.max_supply, nan=-1.0), "num_market_pairs": lambda s, c: s.pairs,
    "volume_24h": lambda s, c: s.volume, "percent_change_1h": lambda s, c: s.pct["1h"],
    "percent_change_24h": lambda s, c: s.pct["24h"], "percent_change_7d": lambda s, c: s.pct["7d"],
    "market_cap_by_total_supply_strict": lambda s, c: s.market_cap_total,
    "volume_7d": lambda s, c: s.volume_7d, "volume_30d": lambda s, c: s.volume_30d,
}
_TEXT_SORTS = {"name": "names", "symbol": "symbols"}
_RANGES = (("price", "price"), ("market_cap", "market_cap"), ("volume_24h", "volume"),
           ("circulating_supply", "circulating"))


def category_members(market: Market, slug: str, t: float) -> np.ndarray:
    cats = market.universe.categories
    rows = market.members(t) & (market.universe.memberships.category == cats.index_of_slug.get(slug, -1))
    return np.unique(market.universe.memberships.coin[rows])


def _listings(call: Call) -> Result:
    market: Market = call.market
    snap = market.snapshot(call.now)
    coins, a = market.universe.coins, call.args
    quote_currencies = currencies(call, snap)
    idx = snap.order
    keep = np.ones(len(idx), dtype=bool)
    for param, column in _RANGES:
        values = getattr(snap, column)[idx]
        if a[param + "_min"] is not None:
            keep &= values >= a[param + "_min"]
        if a[param + "_max"] is not None:
            keep &= values <= a[param + "_max"]
    for bound, test in (("percent_change_24h_min", np.greater_equal), ("percent_change_24h_max", np.less_equal)):
        if a[bound] is not None:
            keep &= test(snap.pct["24h"][idx], a[bound])
    if a["cryptocurrency_type"] != "all":
        keep &= (coins.platform[idx] >= 0) == (a["cryptocurrency_type"] == "tokens")
    if a["tag"] != "all":
        keep &= np.isin(idx, category_members(market, a["tag"], snap.t))
    idx = idx[keep]
    direction = a["sort_dir"] or ("asc" if a["sort"] in _TEXT_SORTS else "desc")
    if a["sort"] in _TEXT_SORTS:
        texts = getattr(coins, _TEXT_SORTS[a["sort"]])
        ordered = sorted(idx.tolist(), key=lambda i: (texts[i].lower(), snap.rank[i]), reverse=direction == "desc")
    else:
        key = _SORT_KEYS[a["sort"]](snap, coins)[idx]
        ordered = idx[np.lexsort((snap.rank[idx], key if direction == "asc" else -key))].tolist()
    shown = page(ordered, a)
    render = CoinRenderer(call, snap, a["aux"], quote_currencies)
    return Result([render.item(i) for i in shown], len(shown), {"total_count": len(ordered)})


# -- v2 info and quotes: lookups by id, slug, symbol or address ----------------------------------------------
def lookup(call: Call, snap: Snapshot) -> tuple[list[tuple[str, int | list[int]]], bool]:
    """(key, coin index or indices) pairs, and whether keys are symbols (then each value is a list)."""
    static, coins, a = statics(call.market), call.market.universe.coins, call.args
    listed = snap.state != NOT_LISTED
    found: list[tuple[str, int | list[int]]] = []
    invalid: list[str] = []
    param = next(p for p in ("id", "slug", "symbol", "address") if a.get(p))
    for wanted in (a[param],) if param == "address" else a[param]:
        if param == "symbol":
            matches = sorted((i for i in static.by_symbol.get(wanted.upper(), []) if listed[i]),
                             key=lambda i: (snap.rank[i] == 0, -snap.market_cap[i], i))
            (found.append((wanted.upper(), matches)) if matches else invalid.append(wanted))
            continue
        index = {"id": coins.index_of_id, "slug": static.by_slug}.get(param, static.by_address).get(
            wanted.lower() if param == "address" else wanted)
        if index is None or not listed[index]:
            invalid.append(str(wanted))
        else:
            found.append((str(coins.ids[index]), index))
    if invalid and (not a["skip_invalid"] or not found):
        raise invalid_value(param, ",".join(invalid))
    return found, param == "symbol"


def _keyed(found: list[tuple[str, int | list[int]]], by_symbol: bool, build) -> tuple[dict, int]:
    data, count = {}, 0
    for key, value in found:
        if by_symbol:
            data[key] = [build(i) for i in value]
            count += len(value)
        elif key not in data:
            data[key] = build(value)
            count += 1
    return data, count


def _quotes(call: Call) -> Result:
    snap = call.market.snapshot(call.now)
    quote_currencies = currencies(call, snap)
    found, by_symbol = lookup(call, snap)
    render = CoinRenderer(call, snap, call.args["aux"], quote_currencies, quotes_style=True)
    data, count = _keyed(found, by_symbol, render.item)
    return Result(data, count)


def _describe(market: Market, snap: Snapshot, i: int) -> str:
    coins = market.universe.coins
    name, symbol = coins.names[i], coins.symbols[i]
    year = iso(coins.launched[i] if coins.launched[i] == coins.launched[i] else coins.added[i])[:4]
    text = f"{name} ({symbol}) is a cryptocurrency launched in {year}"
    if coins.platform[i] >= 0:
        text += f" and operates on the {PLATFORMS[coins.platform[i]].contract_name} platform"
    text += f". {name} has a current supply of {snap.total[i]:,.0f}"
    if snap.circulating[i]:
        text += f" with {snap.circulating[i]:,.0f} in circulation"
    if snap.state[i] == ACTIVE:
        change = snap.pct["24h"][i]
        text += (f". The last known price of {name} is {snap.price[i]:.8g} USD and is "
                 f"{'up' if change >= 0 else 'down'} {abs(change):.2f} over the last 24 hours. It is currently "
                 f"trading on {snap.pairs[i]} active market(s) with ${snap.volume[i]:,.2f} traded over the last "
                 f"24 hours")
    return text + f". More information can be found at https://{coins.slugs[i]}.org/."


def _urls(coins, i: int) -> dict[str, list[str]]:
    """Every project has a website; other links exist for some, deterministically by id."""
    cid, slug = int(coins.ids[i]), coins.slugs[i]
    has = lambda salt, share: (cid * 7919 + salt * 104729) % 100 < share  # noqa: E731
    explorer = []
    if coins.platform[i] >= 0 and PLATFORMS[coins.platform[i]].address == "evm":
        explorer = [f"https://etherscan.io/token/{coins.token_address[i]}"]
    elif has(1, 60):
        explorer = [f"https://explorer.{slug}.org/"]
    return {"website": [f"https://{slug}.org/"],
            "twitter": [f"https://twitter.com/{slug.replace('-', '')}"] if has(2, 80) else [],
            "message_board": [f"https://medium.com/@{slug}"] if has(3, 40) else [],
            "chat": [f"https://t.me/{slug.replace('-', '')}"] if has(4, 60) else [], "facebook": [],
            "explorer": explorer, "reddit": [f"https://reddit.com/r/{slug.replace('-', '')}"] if has(5, 30) else [],
            "technical_doc": [f"https://{slug}.org/whitepaper.pdf"] if has(6, 50) else [],
            "source_code": [f"https://github.com/{slug}"] if has(7, 45) else [], "announcement": []}


def _info(call: Call) -> Result:
    market: Market = call.market
    snap = market.snapshot(call.now)
    coins, cats, static = market.universe.coins, market.universe.categories, statics(market)
    aux = frozenset(call.args["aux"])
    found, by_symbol = lookup(call, snap)

    def build(i: int) -> dict:
        cid, slug = int(coins.ids[i]), coins.slugs[i]
        urls = _urls(coins, i)
        item = {"id": cid, "name": coins.names[i], "symbol": coins.symbols[i],
                "category": "token" if coins.platform[i] >= 0 else "coin"}
        if "description" in aux:
            item["description"] = _describe(market, snap, i)
        item["slug"] = slug
        if "logo" in aux:
            item["logo"] = f"https://s2.coinmarketcap.com/static/img/coins/64x64/{cid}.png"
        item["subreddit"] = urls["reddit"][0].rsplit("/", 1)[-1] if urls["reddit"] else ""
        if "notice" in aux:
            item["notice"] = coins.notices[i] or ""
        if "tags" in aux:
            tags = tag_indices(market, i, snap.t)
            item["tags"] = [cats.slugs[k] for k in tags] or None
            item["tag-names"] = [cats.names[k] for k in tags] or None
            item["tag-groups"] = [cats.groups[k] for k in tags] or None
        if "urls" in aux:
            item["urls"] = urls
        if "platform" in aux:
            item["platform"] = static.info_platform[i]
        if "date_added" in aux:
            item["date_added"] = static.added[i]
        item["twitter_username"] = urls["twitter"][0].rsplit("/", 1)[-1] if urls["twitter"] else ""
        item["is_hidden"] = 0
        item["date_launched"] = iso(coins.launched[i]) if coins.launched[i] == coins.launched[i] else None
        platform = static.info_platform[i]
        item["contract_address"] = [] if platform is None else [{
            "contract_address": platform["token_address"],
            "platform": {"name": PLATFORMS[coins.platform[i]].contract_name,
                         "coin": {k: platform[k] for k in ("id", "name", "symbol", "slug")}}}]
        item["self_reported_circulating_supply"] = num(coins.self_reported[i])
        item["self_reported_tags"] = None
        item["self_reported_market_cap"] = (None if coins.self_reported[i] != coins.self_reported[i]
                                            else float(coins.self_reported[i] * snap.price[i]))
        if "status" in aux:
            item["status"] = STATUS_NAMES[int(snap.state[i])]
        return item

    data, count = _keyed(found, by_symbol, build)
    return Result(data, count)


_LOOKUP = (Param("id", "ids"), Param("slug", "slugs"), Param("symbol", "symbols"))
_RANGE_PARAMS = tuple(Param(f"{name}_{end}", "number", minimum=0, maximum=1e17)
                      for name, _ in _RANGES for end in ("min", "max"))

ENDPOINTS = (
    Endpoint("/v1/cryptocurrency/map", (
        Param("listing_status", "csv_enum", ("active",), choices=("active", "inactive", "untracked")),
        *start_limit(None, 5000), Param("sort", "enum", "id", choices=("cmc_rank", "id")),
        Param("symbol", "symbols"), Param("aux", "csv_enum", MAP_AUX[:4], choices=MAP_AUX)),
        _map, CreditRule(base=1)),
    Endpoint("/v1/cryptocurrency/listings/latest", (
        *start_limit(100, 5000), *_RANGE_PARAMS,
        Param("percent_change_24h_min", "number", minimum=-100),
        Param("percent_change_24h_max", "number", minimum=-100),
        *CONVERT, Param("sort", "enum", "market_cap", choices=tuple(
            ["name", "symbol", "date_added", "market_cap", "market_cap_strict", "price", "circulating_supply",
             "total_supply", "max_supply", "num_market_pairs", "volume_24h", "percent_change_1h",
             "percent_change_24h", "percent_change_7d", "market_cap_by_total_supply_strict", "volume_7d",
             "volume_30d"])),
        Param("sort_dir", "enum", choices=("asc", "desc")),
        Param("cryptocurrency_type", "enum", "all", choices=("all", "coins", "tokens")),
        Param("tag", "enum", "all", choices=("all", "defi", "filesharing")),
        Param("aux", "csv_enum", LISTING_AUX[:8], choices=LISTING_AUX)),
        _listings, CreditRule(base=0, per_items=200, converts=True)),
    Endpoint("/v2/cryptocurrency/info", (
        *_LOOKUP, Param("address", "string"), Param("aux", "csv_enum", INFO_AUX[:7], choices=INFO_AUX),
        Param("skip_invalid", "bool", False)),
        _info, CreditRule(base=0, per_items=100), one_of=("id", "slug", "symbol", "address"),
        exclusive=("id", "slug", "symbol", "address")),
    Endpoint("/v2/cryptocurrency/quotes/latest", (
        *_LOOKUP, *CONVERT,
        Param("aux", "csv_enum", LISTING_AUX[:8] + ("is_active", "is_fiat"), choices=QUOTES_AUX),
        Param("skip_invalid", "bool", True)),
        _quotes, CreditRule(base=0, per_items=100, converts=True), one_of=("id", "slug", "symbol"),
        exclusive=("id", "slug", "symbol")),
)
