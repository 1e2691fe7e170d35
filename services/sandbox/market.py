"""The moving side of the synthetic market: prices, volumes, supplies and ranks at any instant.

Log prices follow a random walk correlated with BTC: one day's returns are beta * BTC's shock + an idiosyncratic
shock. Each 32-day block of daily returns comes from its own RNG stream seeded by (seed, block), and each day's
intraday path is a Brownian bridge between two daily points, seeded by (seed, day). So the price at time T is
computed directly, in any order, without simulating from the start: asking for the same (seed, T) always gives
the same numbers. Snapshots are quantized to the minute, like the API's 60-second cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cryptolake.services.sandbox.universe import DAY, EPOCH, YEAR, Universe

BLOCK = 32                   # days per RNG block of daily returns
_OFFSET = 1 << 31            # keeps RNG entropy non-negative for days and blocks before EPOCH
LAGS = {"1h": 3600.0, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "60d": 60 * DAY, "90d": 90 * DAY}

# Listing states, as in `listing_status`.
NOT_LISTED, UNTRACKED, ACTIVE, INACTIVE = 0, 1, 2, 3
LISTING_STATES = {"untracked": UNTRACKED, "active": ACTIVE, "inactive": INACTIVE}
STATUS_NAMES = {state: name for name, state in LISTING_STATES.items()}


class _Lru:
    """A small thread-safe memo: the same key is computed once, old entries are dropped past `size`."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, compute: Callable):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = compute()
            self._items[key] = value
            if len(self._items) > self.size:
                self._items.popitem(last=False)
            return value


@dataclass
class Snapshot:
    """Every coin's market state at one minute (arrays indexed like universe.coins)."""

    t: float
    state: np.ndarray
    price: np.ndarray
    pct: dict[str, np.ndarray]
    volume: np.ndarray
    volume_change: np.ndarray
    volume_7d: np.ndarray
    volume_30d: np.ndarray
    circulating: np.ndarray      # as reported (0 when unknown)
    total: np.ndarray
    max_supply: np.ndarray
    market_cap: np.ndarray
    market_cap_total: np.ndarray  # price x total supply
    fdmc: np.ndarray
    dominance: np.ndarray
    rank: np.ndarray             # 0 when not active
    order: np.ndarray            # indices of active coins, by rank
    pairs: np.ndarray
    total_market_cap: float
    total_volume: float
    _lists: dict[str, list] = field(default_factory=dict, repr=False)

    def column(self, name: str) -> list:
        """An array as a Python list, converted once per snapshot (rendering thousands of rows reads these)."""
        if name not in self._lists:
            self._lists[name] = getattr(self, name).tolist() if not name.startswith("pct_") \
                else self.pct[name[4:]].tolist()
        return self._lists[name]


@dataclass
class ExchangeSnapshot:
    t: float
    state: np.ndarray
    volume: np.ndarray
    visits: np.ndarray


class Market:
    def __init__(self, universe: Universe):
        self.universe = universe
        self.seed = universe.seed
        coins = universe.coins
        self.n = len(coins)
        btc = universe.btc
        sigma_btc = coins.sigma[btc]
        self._beta_s = coins.beta * sigma_btc
        idio = np.sqrt(np.maximum(coins.sigma ** 2 - self._beta_s ** 2, (0.3 * coins.sigma) ** 2))
        idio[btc] = 0.0  # BTC is the market factor itself
        self._idio = idio
        self._starts: dict[int, np.ndarray] = {0: np.zeros(self.n)}
        self._starts_lock = threading.Lock()
        self._blocks = _Lru(8)
        self._bridges = _Lru(16)
        self._noise = _Lru(64)
        self._snapshots = _Lru(8)
        self._exchange_snapshots = _Lru(8)
        self.memo: dict[str, object] = {}  # renderings of static data, built once by the endpoint modules

    # -- the price walk ------------------------------------------------------------------------------------
    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *stream])

    def _block(self, b: int) -> np.ndarray:
        """Cumulative daily log returns inside block b: row k is the sum of its first k days."""
        def compute() -> np.ndarray:
            rng = self._rng(11, b + _OFFSET)
            market = rng.standard_normal(BLOCK)
            own = rng.standard_normal((BLOCK, self.n))
            returns = self.universe.coins.mu + self._beta_s * market[:, None] + self._idio * own
            cum = np.zeros((BLOCK + 1, self.n))
            np.cumsum(returns, axis=0, out=cum[1:])
            return cum
        return self._blocks.get(b, compute)

    def _start(self, b: int) -> np.ndarray:
        """Walk position at the first day of block b (blocks are chained from EPOCH outwards, always in order)."""
        with self._starts_lock:
            if b in self._starts:
                return self._starts[b]
            step = 1 if b > 0 else -1
            j = b - step
            while j not in self._starts:
                j -= step
            while j != b:
                if step > 0:
                    self._starts[j + 1] = self._starts[j] + self._block(j)[BLOCK]
                else:
                    self._starts[j - 1] = self._starts[j] - self._block(j - 1)[BLOCK]
                j += step
            return self._starts[b]

    def walk(self, day: int) -> np.ndarray:
        """Cumulative log return of every coin from EPOCH to 00:00 UTC of `day` (days since EPOCH)."""
        b, k = divmod(day, BLOCK)
        return self._start(b) + self._block(b)[k]

    def _bridge(self, day: int) -> np.ndarray:
        """Hourly intraday deviations from the straight line between two days (zero at both ends)."""
        def compute() -> np.ndarray:
            rng = self._rng(13, day + _OFFSET)
            market = rng.standard_normal(24)
            own = rng.standard_normal((24, self.n))
            path = np.zeros((25, self.n))
            np.cumsum((self._beta_s * market[:, None] + self._idio * own) / np.sqrt(24), axis=0, out=path[1:])
            return path - (np.arange(25) / 24)[:, None] * path[24]
        return self._bridges.get(day, compute)

    def log_price(self, ts: float) -> np.ndarray:
        x = (ts - EPOCH) / DAY
        day = int(np.floor(x))
        frac = x - day
        start, end = self.walk(day), self.walk(day + 1)
        hours = frac * 24
        hour = min(int(hours), 23)
        w = hours - hour
        bridge = self._bridge(day)
        return self.universe.coins.logp0 + start + frac * (end - start) + (1 - w) * bridge[hour] + w * bridge[hour + 1]

    def noise_at(self, stream: int, unit: float, ts: float, size: int) -> np.ndarray:
        """Smooth standard noise: independent normals at every `unit` seconds, linearly interpolated."""
        x = ts / unit
        k = int(np.floor(x))
        w = x - k
        a = self._noise.get((stream, k), lambda: self._rng(stream, k + _OFFSET).standard_normal(size))
        b = self._noise.get((stream, k + 1), lambda: self._rng(stream, k + 1 + _OFFSET).standard_normal(size))
        return (1 - w) * a + w * b

    # -- snapshots -----------------------------------------------------------------------------------------
    def supply(self, ts: float) -> tuple[np.ndarray, np.ndarray]:
        """(true circulating, total) supply: both grow slowly, capped by max supply."""
        coins = self.universe.coins
        growth = np.exp(coins.growth * (ts - EPOCH) / YEAR)
        total = np.fmin(coins.total0 * growth, coins.max_supply)
        return np.minimum(coins.circ0 * growth, total), total

    def state(self, ts: float) -> np.ndarray:
        coins = self.universe.coins
        state = np.full(self.n, NOT_LISTED, dtype=np.int8)
        state[coins.added <= ts] = UNTRACKED
        state[coins.tracked <= ts] = ACTIVE
        state[coins.inactive <= ts] = INACTIVE
        return state

    def _volume(self, ts: float, price: np.ndarray) -> np.ndarray:
        coins = self.universe.coins
        circ, _ = self.supply(ts)
        noise = 0.18 * self.noise_at(17, DAY, ts, self.n) + 0.08 * self.noise_at(19, 3600.0, ts, self.n)
        return coins.turnover * price * circ * np.exp(noise)

    def snapshot(self, ts: float) -> Snapshot:
        minute = float(np.floor(ts / 60) * 60)
        return self._snapshots.get(minute, lambda: self._compute(minute))

    def _compute(self, t: float) -> Snapshot:
        coins = self.universe.coins
        state = self.state(t)
        active = state == ACTIVE
        price = np.exp(self.log_price(t))
        pct = {}
        for name, lag in LAGS.items():
            pct[name] = np.round((price / np.exp(self.log_price(t - lag)) - 1) * 100, 8)
        volume = np.where(active, self._volume(t, price), 0.0)
        before = self._volume(t - DAY, np.exp(self.log_price(t - DAY)))
        volume_7d = 3.5 * (volume + self._volume(t - 7 * DAY, np.exp(self.log_price(t - 7 * DAY))))
        volume_30d = 15 * (volume + self._volume(t - 30 * DAY, np.exp(self.log_price(t - 30 * DAY))))
        circ, total = self.supply(t)
        reported, total = np.round(np.where(coins.circ_known, circ, 0.0), 2), np.round(total, 2)
        market_cap = price * reported  # from the figures as reported, so clients can recompute it
        idx = np.flatnonzero(active)
        order = idx[np.lexsort((-volume[idx], -market_cap[idx]))]
        rank = np.zeros(self.n, dtype=np.int64)
        rank[order] = np.arange(1, len(order) + 1)
        total_mc = float(market_cap[active].sum())
        day = int((t - EPOCH) // DAY)
        pair_noise = self._rng(23, day + _OFFSET).standard_normal(self.n)
        return Snapshot(
            t=t, state=state, price=price, pct=pct, volume=volume,
            volume_change=np.round(np.where(active, (volume / before - 1) * 100, 0.0), 4),
            volume_7d=np.where(active, volume_7d, 0.0), volume_30d=np.where(active, volume_30d, 0.0),
            circulating=reported, total=total, max_supply=coins.max_supply,
            market_cap=market_cap, market_cap_total=price * total,
            fdmc=price * np.where(np.isnan(coins.max_supply), total, coins.max_supply),
            dominance=np.round(np.where(active, market_cap / total_mc * 100, 0.0), 4) if total_mc else
            np.zeros(self.n),
            rank=rank, order=order,
            pairs=np.where(active, np.maximum(1, coins.pairs * (1 + 0.08 * pair_noise)).astype(np.int64), 0),
            total_market_cap=total_mc, total_volume=float(volume.sum()))

    def exchanges(self, ts: float) -> ExchangeSnapshot:
        minute = float(np.floor(ts / 60) * 60)
        return self._exchange_snapshots.get(minute, lambda: self._compute_exchanges(minute))

    def _compute_exchanges(self, t: float) -> ExchangeSnapshot:
        ex = self.universe.exchanges
        state = np.full(len(ex), NOT_LISTED, dtype=np.int8)
        state[ex.launched <= t] = UNTRACKED
        state[ex.added <= t] = ACTIVE
        state[ex.inactive <= t] = INACTIVE
        btc = self.universe.btc
        market = np.exp(0.8 * (self.log_price(t)[btc] - self.universe.coins.logp0[btc]))
        noise = self.noise_at(29, DAY, t, len(ex))
        volume = np.where(state == ACTIVE, ex.volume0 * market * np.exp(0.3 * noise), 0.0)
        visits = (ex.visits0 * np.exp(0.15 * self.noise_at(31, 7 * DAY, t, len(ex)))).astype(np.int64)
        return ExchangeSnapshot(t, state, volume, visits)

    def wallet_balances(self, exchange: int, ts: float) -> np.ndarray:
        """Each proof-of-reserve wallet's balance drifts a little from day to day."""
        wallets = self.universe.exchanges.wallets[exchange]
        day = int((ts - EPOCH) // DAY)
        base = np.array([w[3] for w in wallets])
        return base * np.exp(0.08 * self._rng(37, exchange, day + _OFFSET).standard_normal(len(wallets)))

    def btc_close(self, day: int) -> float:
        """BTC's log price at 00:00 UTC of `day` (days since EPOCH)."""
        btc = self.universe.btc
        return float(self.universe.coins.logp0[btc] + self.walk(day)[btc])

    def members(self, ts: float) -> np.ndarray:
        """Mask over membership rows: listed coin, membership running at ts."""
        m = self.universe.memberships
        listed = self.state(ts)[m.coin] == ACTIVE
        return listed & (m.joined <= ts) & (ts < m.left)
