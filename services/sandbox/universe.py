"""The static side of the synthetic market: every coin, exchange and category that ever exists, from the seed.

Generated once at start (well under a second for 10,000 coins). Each item carries its life span (added,
tracked, inactive) and its parameters (supply, volatility, correlation with BTC...), so the market at any time
is a pure function of (seed, time) computed by market.py. A few well-known coins, exchanges and categories keep
their real ids and names so that data looks familiar; everything else is invented.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

DAY = 86400.0
YEAR = 365.25 * DAY


def utc_ts(date: str) -> float:
    return datetime.fromisoformat(date).replace(tzinfo=timezone.utc).timestamp()


EPOCH = utc_ts("2025-01-01")          # day 0 of the price walk; prices below are the market on that day
HORIZON = EPOCH + 730 * DAY        # coins, exchanges and categories keep appearing until then


@dataclass(frozen=True)
class Platform:
    coin_id: int
    contract_name: str   # the platform's name inside info.contract_address
    address: str         # evm | solana | tron: the token address format
    weight: float        # share of new tokens issued on it
    ecosystem: str       # slug of its ecosystem category


PLATFORMS = (
    Platform(1027, "Ethereum", "evm", 0.40, "ethereum-ecosystem"),
    Platform(1839, "BNB Smart Chain (BEP20)", "evm", 0.22, "bnb-chain-ecosystem"),
    Platform(5426, "Solana", "solana", 0.16, "solana-ecosystem"),
    Platform(1958, "Tron20", "tron", 0.04, "tron-ecosystem"),
    Platform(3890, "Polygon", "evm", 0.06, "polygon-ecosystem"),
    Platform(11841, "Arbitrum", "evm", 0.06, "arbitrum-ecosystem"),
    Platform(5805, "Avalanche C-Chain", "evm", 0.06, "avalanche-ecosystem"),
)

# id, name, symbol, slug, platform coin id (0: a coin), date added, price, circulating, total, max (0: none),
# infinite supply, daily volatility, beta to BTC, category slugs
ANCHOR_COINS = (
    (1, "Bitcoin", "BTC", "bitcoin", 0, "2010-07-13", 94000.0, 19.80e6, 19.80e6, 21e6, False, 0.028, 1.0,
     ("mineable", "pow", "layer-1")),
    (1027, "Ethereum", "ETH", "ethereum", 0, "2015-08-07", 3350.0, 120.5e6, 120.5e6, 0, True, 0.035, 1.2,
     ("smart-contracts", "layer-1")),
    (825, "Tether USDt", "USDT", "tether", 1027, "2015-02-25", 1.0, 137e9, 139e9, 0, True, 0.0003, 0.0,
     ("stablecoin",)),
    (52, "XRP", "XRP", "xrp", 0, "2013-08-04", 2.1, 57.5e9, 99.99e9, 100e9, False, 0.045, 1.1, ("layer-1",)),
    (1839, "BNB", "BNB", "bnb", 0, "2017-07-25", 700.0, 144e6, 144e6, 200e6, False, 0.03, 0.9,
     ("smart-contracts", "layer-1")),
    (5426, "Solana", "SOL", "solana", 0, "2020-04-10", 190.0, 480e6, 590e6, 0, True, 0.05, 1.4,
     ("smart-contracts", "layer-1", "a16z-portfolio")),
    (3408, "USDC", "USDC", "usd-coin", 1027, "2018-10-08", 1.0, 44e9, 44e9, 0, False, 0.0003, 0.0,
     ("stablecoin",)),
    (74, "Dogecoin", "DOGE", "dogecoin", 0, "2013-12-15", 0.32, 147e9, 147e9, 0, True, 0.06, 1.5,
     ("mineable", "pow", "memes")),
    (2010, "Cardano", "ADA", "cardano", 0, "2017-10-01", 0.85, 35e9, 45e9, 45e9, False, 0.05, 1.3,
     ("smart-contracts", "layer-1")),
    (1958, "TRON", "TRX", "tron", 0, "2017-09-13", 0.25, 86e9, 86e9, 0, True, 0.035, 0.8,
     ("smart-contracts", "layer-1")),
    (5805, "Avalanche", "AVAX", "avalanche", 0, "2020-07-13", 36.0, 410e6, 450e6, 715.7e6, False, 0.055, 1.4,
     ("smart-contracts", "layer-1")),
    (3890, "Polygon", "MATIC", "polygon", 0, "2019-04-28", 0.45, 9.3e9, 10e9, 10e9, False, 0.055, 1.3,
     ("smart-contracts",)),
    (11841, "Arbitrum", "ARB", "arbitrum", 1027, "2023-03-23", 0.75, 4.2e9, 10e9, 10e9, False, 0.06, 1.4,
     ("a16z-portfolio",)),
    (2, "Litecoin", "LTC", "litecoin", 0, "2013-04-28", 100.0, 75e6, 84e6, 84e6, False, 0.045, 1.1,
     ("mineable", "pow")),
)

# id, name, slug, launched, is a DEX
ANCHOR_EXCHANGES = (
    (270, "Binance", "binance", "2017-07-14", False),
    (89, "Coinbase Exchange", "coinbase-exchange", "2012-06-01", False),
    (24, "Kraken", "kraken", "2011-07-28", False), (294, "OKX", "okx", "2017-01-01", False),
    (521, "Bybit", "bybit", "2018-03-01", False), (311, "KuCoin", "kucoin", "2017-09-15", False),
    (302, "Gate.io", "gate-io", "2013-04-01", False), (37, "Bitfinex", "bitfinex", "2012-12-01", False),
    (70, "Bitstamp", "bitstamp", "2011-08-01", False), (102, "HTX", "htx", "2013-09-01", False),
    (1348, "Uniswap v3 (Ethereum)", "uniswap-v3", "2021-05-05", True),
    (1344, "PancakeSwap v2 (BSC)", "pancakeswap-v2", "2021-04-23", True),
)

# name, slug, tag group: the first two feed global metrics (defi_*, stablecoin_*).
ANCHOR_CATEGORIES = (
    ("DeFi", "defi", "CATEGORY"), ("Stablecoin", "stablecoin", "CATEGORY"), ("Memes", "memes", "CATEGORY"),
    ("Layer 1", "layer-1", "CATEGORY"), ("Smart Contracts", "smart-contracts", "CATEGORY"),
    ("Mineable", "mineable", "OTHERS"), ("PoW", "pow", "ALGORITHM"), ("AI & Big Data", "ai-big-data", "CATEGORY"),
    ("Gaming", "gaming", "INDUSTRY"), ("Real World Assets", "real-world-assets", "CATEGORY"),
    ("Filesharing", "filesharing", "INDUSTRY"), ("A16Z Portfolio", "a16z-portfolio", "CATEGORY"),
    *((f"{name} Ecosystem", p.ecosystem, "PLATFORM") for name, p in zip(
        ("Ethereum", "BNB Chain", "Solana", "Tron", "Polygon", "Arbitrum", "Avalanche"), PLATFORMS)),
)

_SYLLABLES = ("ba", "co", "da", "fi", "ge", "hy", "ka", "lu", "mo", "ne", "no", "pa", "qua", "ra", "si", "ta",
              "ve", "xo", "zen", "lo", "mi", "ri", "to", "vo", "ny", "sha", "tri", "or", "el", "ax", "dex", "pi")
_COIN_SUFFIXES = ("", "", "", "Coin", "Token", "Protocol", "Network", "Finance", "Swap", "AI", "Chain", "DAO",
                  "Inu", "Labs", "Cash")
_EXCHANGE_SUFFIXES = ("Exchange", "", "Pro", "Global", "Markets", "X")
_DEX_SUFFIXES = ("Swap", "DEX", "Finance")
_CATEGORY_KINDS = (("Portfolio", "CATEGORY"), ("Ecosystem", "PLATFORM"), ("Sector", "INDUSTRY"),
                   ("Narrative", "CATEGORY"), ("Index", "OTHERS"))
_COUNTRIES = ("US", "GB", "JP", "KR", "SG", "SC", "MT", "KY", "VG", "HK", "AE", "TR", "BR", "DE", "FR")
_FIATS = ("USD", "EUR", "GBP", "JPY", "KRW", "TRY", "BRL", "AUD", "CAD", "INR")
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass
class Coins:
    """Column arrays, one row per coin ever listed (index order = id order)."""

    ids: np.ndarray
    names: list[str]
    symbols: list[str]
    slugs: list[str]
    platform: np.ndarray       # index into PLATFORMS, -1 for coins
    token_address: list[str | None]
    added: np.ndarray          # date_added
    tracked: np.ndarray        # first_historical_data: active from then on
    inactive: np.ndarray       # inf when never
    launched: np.ndarray       # nan when unknown
    logp0: np.ndarray          # log price on EPOCH
    circ0: np.ndarray
    total0: np.ndarray
    max_supply: np.ndarray     # nan when none
    infinite: np.ndarray
    growth: np.ndarray         # supply growth per year
    circ_known: np.ndarray     # false: the API reports circulating supply (and market cap) 0
    self_reported: np.ndarray  # self-reported circulating supply, nan when none
    sigma: np.ndarray          # daily volatility
    beta: np.ndarray
    mu: np.ndarray             # daily log drift
    turnover: np.ndarray       # volume_24h / market cap
    wash: np.ndarray           # reported volume / adjusted volume - 1
    pairs: np.ndarray          # base num_market_pairs
    stable: np.ndarray
    notices: list[str | None]
    index_of_id: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Exchanges:
    ids: np.ndarray
    names: list[str]
    slugs: list[str]
    dex: np.ndarray
    launched: np.ndarray
    added: np.ndarray
    inactive: np.ndarray
    volume0: np.ndarray        # spot volume on EPOCH
    maker_fee: np.ndarray
    taker_fee: np.ndarray
    visits0: np.ndarray
    countries: list[list[str]]
    fiats: list[list[str]]
    notices: list[str | None]
    wallets: list[list[tuple[int, int, str, float]]]  # (platform coin index, currency coin index, address, balance)
    index_of_id: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Categories:
    ids: list[str]             # 24 hex digits, like the real ones (the first 8 are the creation time)
    names: list[str]
    slugs: list[str]
    groups: list[str]
    created: np.ndarray
    index_of_id: dict[str, int] = field(default_factory=dict)
    index_of_slug: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Memberships:
    """Which coin belongs to which category, and when: rows (coin, category, joined, left)."""

    coin: np.ndarray
    category: np.ndarray
    joined: np.ndarray
    left: np.ndarray
    by_coin: list[list[tuple[int, float, float]]]


@dataclass
class Universe:
    seed: int
    coins: Coins
    exchanges: Exchanges
    categories: Categories
    memberships: Memberships
    btc: int  # index of Bitcoin, the market factor


def build(seed: int, n_coins: int = 10_000, n_exchanges: int = 800, n_categories: int = 300) -> Universe:
    if n_coins < len(ANCHOR_COINS) or n_exchanges < len(ANCHOR_EXCHANGES) or n_categories < len(ANCHOR_CATEGORIES):
        raise ValueError(f"the universe needs at least {len(ANCHOR_COINS)} coins, {len(ANCHOR_EXCHANGES)} "
                         f"exchanges and {len(ANCHOR_CATEGORIES)} categories")
    rnd = random.Random(seed)
    gen = np.random.default_rng([seed, 1])
    coins = _coins(rnd, gen, n_coins)
    categories = _categories(rnd, n_categories)
    memberships = _memberships(rnd, coins, categories)
    exchanges = _exchanges(rnd, gen, n_exchanges, coins)
    return Universe(seed, coins, exchanges, categories, memberships, coins.index_of_id[1])


def _name(rnd: random.Random, suffixes: tuple[str, ...]) -> tuple[str, str]:
    root = "".join(rnd.choice(_SYLLABLES) for _ in range(rnd.choice((2, 2, 3)))).capitalize()
    suffix = rnd.choice(suffixes)
    return (f"{root} {suffix}" if suffix else root), root


def _symbol(rnd: random.Random, root: str) -> str:
    letters = [c for c in root.upper() if c.isalpha()]
    size = rnd.choice((3, 3, 4, 4, 5))
    picked = letters[:1] + sorted(rnd.sample(letters[1:], min(size - 1, len(letters) - 1)),
                                  key=letters[1:].index)
    return "".join(picked)


def _unique_slug(name: str, taken: set[str], suffix: int) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    slug = slug if slug not in taken else f"{slug}-{suffix}"
    taken.add(slug)
    return slug


def _address(rnd: random.Random, kind: str) -> str:
    if kind == "evm":
        return "0x" + "".join(rnd.choice("0123456789abcdef") for _ in range(40))
    if kind == "tron":
        return "T" + "".join(rnd.choice(_BASE58) for _ in range(33))
    return "".join(rnd.choice(_BASE58) for _ in range(44))


def _sequential_ids(rnd: random.Random, count: int, reserved: set[int], start: int) -> list[int]:
    """Ids grow with the listing date, with gaps, like the real ones; reserved (anchor) ids are skipped."""
    ids, current = [], start
    for _ in range(count):
        current += 1 + min(int(rnd.expovariate(0.6)), 12)
        while current in reserved:
            current += 1
        ids.append(current)
    return ids


def _coins(rnd: random.Random, gen: np.random.Generator, n: int) -> Coins:
    synthetic = n - len(ANCHOR_COINS)
    # 80 % listed before EPOCH (more of them recently), 20 % appear during the simulated two years.
    before = int(synthetic * 0.8)
    start = utc_ts("2014-01-01")
    added = np.concatenate([start + (EPOCH - start) * np.sqrt(gen.random(before)),
                            EPOCH + (HORIZON - EPOCH) * gen.random(synthetic - before)])
    added = np.sort(np.floor(added / 60) * 60)
    reserved = {a[0] for a in ANCHOR_COINS}
    synthetic_ids = _sequential_ids(rnd, synthetic, reserved, 2)

    rows: list[dict] = []
    for a in ANCHOR_COINS:
        (cid, name, symbol, slug, platform_id, date, price, circ, total, max_supply, infinite, sigma, beta, _) = a
        rows.append(dict(id=cid, name=name, symbol=symbol, slug=slug, added=utc_ts(date), price=price, circ=circ,
                         total=total, max=max_supply or np.nan, infinite=infinite, sigma=sigma, beta=beta,
                         platform=next((i for i, p in enumerate(PLATFORMS) if p.coin_id == platform_id), -1),
                         stable=sigma < 0.001, circ_known=True, self_reported=np.nan, lag=0.0, inactive=np.inf,
                         mc_rank=1, growth=0.0 if max_supply and circ >= max_supply else 0.01, notice=None))
    taken_slugs = {r["slug"] for r in rows}
    platform_added = [utc_ts(next(a[5] for a in ANCHOR_COINS if a[0] == p.coin_id)) for p in PLATFORMS]
    ranks = gen.permutation(synthetic) + len(ANCHOR_COINS) + 1
    for k in range(synthetic):
        cid, when = synthetic_ids[k], float(added[k])
        name, root = _name(rnd, _COIN_SUFFIXES)
        open_platforms = [i for i, t in enumerate(platform_added) if t < when]
        is_token = bool(open_platforms) and rnd.random() < (0.75 if when > utc_ts("2017-06-01") else 0.3)
        platform = (rnd.choices(open_platforms, [PLATFORMS[i].weight for i in open_platforms])[0]
                    if is_token else -1)
        stable = rnd.random() < 0.006
        mc = 2.5e10 * ranks[k] ** -1.25 * rnd.lognormvariate(0, 0.6)
        price = 1.0 if stable else 10 ** rnd.uniform(-6.5, 2.5)
        circ = mc / price
        has_max = rnd.random() > 0.3
        total = circ * (1.0 if rnd.random() < 0.3 else rnd.uniform(1.0, 1.5))
        max_supply = (total if rnd.random() < 0.25 else total * rnd.uniform(1.0, 3.0)) if has_max else np.nan
        circ_known = rnd.random() > 0.18
        lag = rnd.uniform(1, 60) * DAY if rnd.random() < 0.1 else 0.0
        tracked = when + lag
        inactive = rnd.uniform(tracked + 30 * DAY, HORIZON) if rnd.random() < 0.12 and tracked + 30 * DAY < HORIZON \
            else np.inf
        rows.append(dict(
            id=cid, name=name, symbol=_symbol(rnd, root), slug=_unique_slug(name, taken_slugs, cid), added=when,
            price=price, circ=circ, total=total, max=max_supply, infinite=not has_max and rnd.random() < 0.5,
            sigma=0.0008 if stable else 0.025 + 0.07 * rnd.random() * min(1.0, ranks[k] / 2000),
            beta=0.0 if stable else rnd.uniform(0.5, 1.6), platform=platform, stable=stable,
            circ_known=circ_known,
            self_reported=circ * rnd.uniform(0.5, 1.5) if (not circ_known and rnd.random() < 0.5) else np.nan,
            lag=lag, inactive=inactive, mc_rank=ranks[k],
            growth=0.0 if (has_max and total >= max_supply) or stable else rnd.uniform(0.0, 0.15),
            notice=rnd.choice(("This project is migrating its token; deposits may be suspended.",
                               "Circulating supply is not verified by CoinMarketCap."))
            if rnd.random() < 0.02 else None))
    rows.sort(key=lambda r: r["id"])

    def col(key: str, dtype=float) -> np.ndarray:
        return np.array([r[key] for r in rows], dtype=dtype)

    sigma = col("sigma")
    mc_rank = col("mc_rank")
    is_btc = col("id") == 1
    coins = Coins(
        ids=col("id", np.int64), names=[r["name"] for r in rows], symbols=[r["symbol"] for r in rows],
        slugs=[r["slug"] for r in rows], platform=col("platform", np.int64),
        token_address=[_address(rnd, PLATFORMS[r["platform"]].address) if r["platform"] >= 0 else None for r in rows],
        added=col("added"), tracked=col("added") + col("lag"), inactive=col("inactive"),
        launched=np.where(gen.random(n) < 0.6, col("added") - gen.uniform(0, 200, n) * DAY, np.nan),
        logp0=np.log(col("price")), circ0=col("circ"), total0=col("total"), max_supply=np.round(col("max"), 2),
        infinite=col("infinite", bool), growth=col("growth"), circ_known=col("circ_known", bool),
        self_reported=col("self_reported"), sigma=sigma, beta=col("beta"),
        # Martingale prices, plus a slow bleed for small caps (most altcoins lose value over time).
        mu=-0.5 * sigma ** 2 - np.where(is_btc, 0.0, 0.0004 * np.minimum(1.0, mc_rank / 3000)),
        turnover=np.clip(gen.lognormal(np.log(0.05), 0.9, n), 0.001, 3.0),
        wash=np.where(gen.random(n) < 0.3, gen.uniform(0.0, 1.5, n), 0.0),
        pairs=np.maximum(1, (4000 * mc_rank ** -0.55 * gen.lognormal(0, 0.4, n))).astype(np.int64),
        stable=col("stable", bool), notices=[r["notice"] for r in rows])
    coins.index_of_id = {int(cid): i for i, cid in enumerate(coins.ids)}
    return coins


def _categories(rnd: random.Random, n: int) -> Categories:
    names, slugs, groups, created = [], [], [], []
    for name, slug, group in ANCHOR_CATEGORIES:
        names.append(name), slugs.append(slug), groups.append(group)
        created.append(rnd.uniform(utc_ts("2021-01-01"), utc_ts("2021-12-31")))
    taken = set(names)
    while len(names) < n:
        root = "".join(rnd.choice(_SYLLABLES) for _ in range(rnd.choice((2, 3)))).capitalize()
        kind, group = rnd.choice(_CATEGORY_KINDS)
        name = f"{root} {kind}"
        if name in taken:
            continue
        taken.add(name)
        names.append(name), slugs.append(_unique_slug(name, set(), 0)), groups.append(group)
        created.append(rnd.uniform(utc_ts("2021-01-01"), HORIZON - 60 * DAY))
    ids = [f"{int(c):08x}" + "".join(rnd.choice("0123456789abcdef") for _ in range(16)) for c in created]
    categories = Categories(ids, names, slugs, groups, np.array(created))
    categories.index_of_id = {cid: i for i, cid in enumerate(ids)}
    categories.index_of_slug = {slug: i for i, slug in enumerate(slugs)}
    return categories


def _memberships(rnd: random.Random, coins: Coins, categories: Categories) -> Memberships:
    """Fixed memberships (platform ecosystem, mining) plus topical ones that start and sometimes end over time."""
    slug_index = categories.index_of_slug
    anchors = {a[0]: a[13] for a in ANCHOR_COINS}
    topical = [i for i, g in enumerate(categories.groups) if g != "PLATFORM" and categories.slugs[i] not in
               ("stablecoin", "mineable", "pow")]
    weights = [1.0 / (rank + 3) for rank in range(len(topical))]
    rows: list[tuple[int, int, float, float]] = []
    for i in range(len(coins)):
        added = coins.added[i]
        fixed: list[str] = list(anchors.get(int(coins.ids[i]), ()))
        if coins.platform[i] >= 0:
            fixed.append(PLATFORMS[coins.platform[i]].ecosystem)
        if coins.stable[i]:
            fixed.append("stablecoin")
        elif coins.platform[i] < 0 and int(coins.ids[i]) not in anchors and rnd.random() < 0.4:
            fixed += ["mineable", "pow"]
        for slug in dict.fromkeys(fixed):
            rows.append((i, slug_index[slug], max(added, categories.created[slug_index[slug]]), np.inf))
        if int(coins.ids[i]) in anchors or coins.stable[i]:
            continue
        for cat in set(rnd.choices(topical, weights, k=min(6, int(rnd.expovariate(1 / 1.3))))):
            joined = max(added, categories.created[cat]) + rnd.expovariate(1 / (90 * DAY)) * rnd.random()
            left = joined + rnd.uniform(20, 700) * DAY if rnd.random() < 0.12 else np.inf
            rows.append((i, cat, joined, left))
    coin, category, joined, left = (np.array(col) for col in zip(*rows))
    by_coin: list[list[tuple[int, float, float]]] = [[] for _ in range(len(coins))]
    for c, k, j, lft in rows:
        by_coin[c].append((k, j, lft))
    return Memberships(coin.astype(np.int64), category.astype(np.int64), joined, left, by_coin)


def _exchanges(rnd: random.Random, gen: np.random.Generator, n: int, coins: Coins) -> Exchanges:
    synthetic = n - len(ANCHOR_EXCHANGES)
    launched_synthetic = np.sort(utc_ts("2011-06-01") + (HORIZON - utc_ts("2011-06-01")) * gen.random(synthetic) ** 0.8)
    ids = _sequential_ids(rnd, synthetic, {a[0] for a in ANCHOR_EXCHANGES}, 0)
    rows: list[dict] = []
    for rank, (eid, name, slug, launched, dex) in enumerate(ANCHOR_EXCHANGES, start=1):
        rows.append(dict(id=eid, name=name, slug=slug, dex=dex, launched=utc_ts(launched), rank=rank,
                         inactive=np.inf, por=not dex))
    taken = {r["slug"] for r in rows}
    ranks = gen.permutation(synthetic) + len(ANCHOR_EXCHANGES) + 1
    for k in range(synthetic):
        dex = rnd.random() < 0.35
        name, _ = _name(rnd, _DEX_SUFFIXES if dex else _EXCHANGE_SUFFIXES)
        launched = float(launched_synthetic[k])
        rows.append(dict(id=ids[k], name=name, slug=_unique_slug(name, taken, ids[k]), dex=dex, launched=launched,
                         rank=int(ranks[k]), por=not dex and rnd.random() < 0.15,
                         inactive=rnd.uniform(launched + 90 * DAY, HORIZON)
                         if rnd.random() < 0.2 and launched + 90 * DAY < HORIZON else np.inf))
    rows.sort(key=lambda r: r["id"])
    rank = np.array([r["rank"] for r in rows], dtype=float)
    volume0 = 2e10 * rank ** -1.5 * gen.lognormal(0, 0.5, n)
    by_mc = np.argsort(-(np.exp(coins.logp0) * coins.circ0))
    top_per_platform = {p: [int(i) for i in by_mc if coins.platform[i] == p][:40] for p in range(len(PLATFORMS))}
    wallets = []
    for r in rows:
        book: list[tuple[int, int, str, float]] = []
        if r["por"]:
            for _ in range(rnd.randint(3, 30)):
                p = rnd.choices(range(len(PLATFORMS)), [pl.weight for pl in PLATFORMS])[0]
                native = coins.index_of_id[PLATFORMS[p].coin_id]
                currency = native if rnd.random() < 0.4 or not top_per_platform[p] else rnd.choice(top_per_platform[p])
                usd = 10 ** rnd.uniform(4.5, 9.5) * (3.0 if r["rank"] <= 12 else 1.0)
                book.append((native, currency, _address(rnd, PLATFORMS[p].address),
                             usd / float(np.exp(coins.logp0[currency]))))
        wallets.append(book)
    exchanges = Exchanges(
        ids=np.array([r["id"] for r in rows], dtype=np.int64), names=[r["name"] for r in rows],
        slugs=[r["slug"] for r in rows], dex=np.array([r["dex"] for r in rows]),
        launched=np.array([r["launched"] for r in rows]),
        added=np.array([r["launched"] for r in rows]) + gen.uniform(0, 120, n) * DAY,
        inactive=np.array([r["inactive"] for r in rows]), volume0=volume0,
        maker_fee=np.round(gen.choice([0.0, 0.02, 0.05, 0.1, 0.2], n), 4),
        taker_fee=np.round(gen.choice([0.04, 0.05, 0.1, 0.2, 0.3], n), 4),
        visits0=(volume0 ** 0.5 * gen.lognormal(0, 0.5, n) * 8).astype(np.int64),
        countries=[rnd.sample(_COUNTRIES, rnd.choice((0, 0, 1, 2))) for _ in rows],
        fiats=[[] if r["dex"] else sorted(rnd.sample(_FIATS, rnd.randint(0, 4))) for r in rows],
        notices=[rnd.choice(("Withdrawals are temporarily suspended.", "This exchange is under regulatory review."))
                 if rnd.random() < 0.03 else None for _ in rows],
        wallets=wallets)
    exchanges.index_of_id = {int(eid): i for i, eid in enumerate(exchanges.ids)}
    return exchanges
