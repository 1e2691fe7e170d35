"""Synthetic bronze written exactly as the extraction writes it: the extractors' Arrow schemas, the lake's
bronze paths, one ledger record per snapshot written after its files. Deterministic from a seed.

Used where the test needs control the sandbox does not give (injected bad rows, exact days, thousands of
snapshots for the benchmark). Prices follow a BTC-driven factor model so correlations and volatilities are
not degenerate.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable

import pyarrow as pa

from cryptolake.lake import Lake, bronze_path
from cryptolake.ledger import Ledger, RunRecord, new_run_id
from cryptolake.services.extract.registry import EXTRACTORS

SNAPSHOT_TIMES = (time(9, 0), time(13, 0), time(17, 0))


def write_snapshot(lake: Lake, extractor: str, ts: datetime, rows: list[dict[str, Any]], *,
                   status: str = "success", parts: int = 1) -> str:
    """One bronze snapshot (files first, ledger record last); returns its run id."""
    ex = EXTRACTORS[extractor]
    run_id = new_run_id(ts)
    files = []
    if rows and status in ("success", "partial"):
        chunks = [rows[i::parts] for i in range(parts)] if parts > 1 else [rows]
        for n, chunk in enumerate(chunks, start=1):
            data = {name: [r.get(name) for r in chunk] for name in ex.schema.names}
            data["snapshot_timestamp"] = [ts] * len(chunk)
            data["run_id"] = [run_id] * len(chunk)
            path = bronze_path(extractor, ts, n if parts > 1 else None)
            lake.write_parquet(path, ex.schema, [pa.Table.from_pydict(data, schema=ex.schema)])
            files.append(path)
    Ledger(lake).write(RunRecord(run_id=run_id, step="extract", name=extractor, started_at=ts, status=status,
                                 ended_at=ts + timedelta(seconds=5), rows=len(rows) if files else 0, files=files))
    return run_id


def _rng(*parts: Any) -> random.Random:
    return random.Random("|".join(map(str, parts)))


@dataclass
class Market:
    """A small synthetic market: `coins` coins (id 1 is BTC), `exchanges` exchanges, `categories` categories."""

    seed: int = 7
    coins: int = 12
    exchanges: int = 4
    categories: int = 3
    dirty: bool = False           # inject rows the transform must quarantine, clear or deduplicate
    coin_ids: list[int] = field(init=False)

    def __post_init__(self):
        self.coin_ids = [1, 1027] + [100 + i for i in range(self.coins - 2)]

    def __hash__(self) -> int:
        return hash((self.seed, self.coins, self.exchanges, self.categories, self.dirty))

    # -- prices: log p = log base + beta * btc_factor + idiosyncratic noise -----------------------------------
    @functools.lru_cache(maxsize=4096)
    def _factor(self, ts: datetime) -> float:
        hours = int(ts.timestamp() // 3600)
        return sum(_rng(self.seed, "btc", h).gauss(0, 0.01) for h in range(hours - hours % 24 - 48, hours, 4)) + \
            0.3 * math.sin(ts.timestamp() / 86400 / 5)

    @functools.lru_cache(maxsize=100_000)
    def _coin(self, coin: int) -> tuple[float, float]:
        r = _rng(self.seed, "coin", coin)
        return (94000.0, 1.0) if coin == 1 else (r.uniform(0.01, 3000), r.uniform(0.2, 1.5))

    def price(self, coin: int, ts: datetime) -> float:
        base, beta = self._coin(coin)
        idio = 0.0 if coin == 1 else _rng(self.seed, coin, ts.isoformat()).gauss(0, 0.03)
        return round(base * math.exp(beta * self._factor(ts) + idio), 8)

    # -- one extractor snapshot's rows ------------------------------------------------------------------------
    def listings(self, ts: datetime) -> list[dict]:
        rows = []
        for rank, coin in enumerate(self.coin_ids, start=1):
            r = _rng(self.seed, "supply", coin)
            price = self.price(coin, ts)
            circ = r.uniform(1e6, 1e9)
            total = circ * r.choice([1.0, 1.2, 1.5])
            max_supply = r.choice([None, 0.0, total * 2])
            rows.append({
                "crypto_id": coin, "name": f"Coin {coin}", "symbol": f"C{coin}", "slug": f"coin-{coin}",
                "cmc_rank": rank, "num_market_pairs": 10 + coin % 50,
                "date_added": datetime(2020, 1, 1, tzinfo=timezone.utc),
                "tags": ["mineable"] if coin == 1 else [], "max_supply": max_supply, "circulating_supply": circ,
                "total_supply": total, "infinite_supply": max_supply is None, "platform_id": None,
                "last_updated": ts - timedelta(minutes=1), "quote_last_updated": ts - timedelta(minutes=1),
                "price_usd": price, "volume_24h_usd": price * circ * r.uniform(0.01, 0.2),
                "volume_change_24h": r.uniform(-50, 50), "percent_change_1h_usd": r.uniform(-2, 2),
                "percent_change_24h_usd": r.uniform(-10, 10), "percent_change_7d_usd": r.uniform(-20, 20),
                "percent_change_30d_usd": r.uniform(-40, 40), "market_cap_usd": price * circ,
                "market_cap_dominance_usd": r.uniform(0, 50), "fully_diluted_market_cap_usd": price * total,
            })
        if self.dirty:
            rows[3]["market_cap_usd"] = -5.0                          # cleared, row kept
            rows.append({**rows[4], "cmc_rank": 999})                 # duplicate key: one row kept
            rows.append({**rows[5], "crypto_id": 90001, "price_usd": -1.0})   # quarantined
            rows.append({**rows[6], "crypto_id": 90002, "price_usd": None})   # quarantined
        return rows

    def crypto_map(self, ts: datetime) -> list[dict]:
        return [{"crypto_id": c, "rank": i, "name": f"Coin {c}", "symbol": f"C{c}", "slug": f"coin-{c}",
                 "is_active": True, "platform_id": 1027 if c > 100 else None}
                for i, c in enumerate(self.coin_ids, start=1)]

    def crypto_info(self, ts: datetime) -> list[dict]:
        return [{"crypto_id": c, "name": f"Coin {c}", "symbol": f"C{c}", "slug": f"coin-{c}", "category": "coin",
                 "tags": ["a", "b"], "description": f"about {c} at {ts:%F}", "website_url": f"https://{c}.example",
                 "date_added": datetime(2020, 1, 1, tzinfo=timezone.utc)} for c in self.coin_ids]

    def exchange_map(self, ts: datetime) -> list[dict]:
        return [{"exchange_id": 200 + e, "name": f"Exchange {e}", "slug": f"ex-{e}", "is_active": True}
                for e in range(self.exchanges)]

    def exchange_info(self, ts: datetime) -> list[dict]:
        rows = []
        for e in range(self.exchanges):
            r = _rng(self.seed, "ex", e, ts.isoformat())
            rows.append({"exchange_id": 200 + e, "name": f"Exchange {e}", "slug": f"ex-{e}", "maker_fee": 0.1,
                         "taker_fee": 0.2, "weekly_visits": 1000 * e, "fiats": ["USD", "EUR"],
                         "spot_volume_usd": 0.0 if e == 0 else r.uniform(1e6, 1e9)})
        return rows

    def exchange_assets(self, ts: datetime) -> list[dict]:
        rows = []
        for e in range(self.exchanges):
            for c in self.coin_ids[:3]:
                r = _rng(self.seed, "wallet", e, c, ts.isoformat())
                rows.append({"exchange_id": 200 + e, "wallet_address": f"0x{e:02x}{c:06x}",
                             "balance": r.uniform(1, 1e4),
                             "crypto_id": c, "currency_symbol": f"C{c}", "currency_price_usd": self.price(c, ts),
                             "platform_crypto_id": 1027, "platform_symbol": "ETH", "platform_name": "Ethereum"})
        return rows

    def categories_rows(self, ts: datetime) -> list[dict]:
        rows = []
        for k in range(self.categories):
            r = _rng(self.seed, "cat", k, ts.isoformat())
            rows.append({"category_id": f"cat{k:04d}", "name": f"Category {k}", "title": f"Cat {k}",
                         "description": "d", "num_tokens": [0, 5, 12][k % 3], "avg_price_change": r.uniform(-5, 5),
                         "market_cap": r.choice([0.0, r.uniform(1e6, 1e9)]) if k else r.uniform(1e6, 1e9),
                         "market_cap_change": r.uniform(-10, 10), "volume": r.uniform(1e5, 1e8),
                         "volume_change": r.uniform(-10, 10), "last_updated": ts})
        return rows

    def category_coins(self, ts: datetime) -> list[dict]:
        return [{"category_id": f"cat{k:04d}", "crypto_id": c, "name": f"Coin {c}", "symbol": f"C{c}",
                 "cmc_rank": i + 1} for k in range(self.categories)
                for i, c in enumerate(self.coin_ids[k::self.categories])]

    def global_metrics(self, ts: datetime) -> list[dict]:
        r = _rng(self.seed, "global", ts.isoformat())
        row = {"active_cryptocurrencies": 9000, "total_cryptocurrencies": 30000,
               "past_30d_incremental_crypto_number": 600, "btc_dominance": r.uniform(40, 60),
               "btc_dominance_yesterday": r.uniform(40, 60), "eth_dominance": r.uniform(10, 20),
               "eth_dominance_yesterday": r.uniform(10, 20), "defi_volume_24h": r.uniform(1e9, 1e10),
               "stablecoin_market_cap": r.uniform(1e11, 2e11), "total_market_cap_usd": r.uniform(2e12, 4e12),
               "total_volume_24h_usd": r.uniform(5e10, 2e11), "last_updated": ts - timedelta(minutes=2)}
        if self.dirty and ts.hour == 13:
            row["btc_dominance"] = 120.0                              # cleared
        return [row]

    def fear_greed(self, ts: datetime) -> list[dict]:
        score = _rng(self.seed, "fg", ts.isoformat()).randint(0, 100)
        if self.dirty and ts.hour == 17:
            score = 150                                               # quarantined
        return [{"fear_greed_score": score, "sentiment_label": None if score % 4 == 0 else "Label",
                 "update_time": ts}]

    # -- whole days --------------------------------------------------------------------------------------------
    def write_day(self, lake: Lake, day: date, *, times: Iterable[time] = SNAPSHOT_TIMES,
                  extractors: Iterable[str] | None = None, parts: int = 2) -> dict[str, list[str]]:
        """Every extractor at its cadence on `day`: 10x/5x ones at each time, daily ones once, weekly on Mondays."""
        times = list(times)
        stamps = [datetime.combine(day, t, tzinfo=timezone.utc) for t in times]
        plan = {
            "crypto_listings_latest": (stamps, self.listings),
            "crypto_categories": (stamps, self.categories_rows),
            "global_metrics_latest": (stamps, self.global_metrics),
            "fear_greed_latest": (stamps, self.fear_greed),
            "crypto_map": (stamps[:1], self.crypto_map),
            "exchange_map": (stamps[:1], self.exchange_map),
            "exchange_assets": (stamps[:1], self.exchange_assets),
            "crypto_category": (stamps[:1], self.category_coins),
            "exchange_info": (stamps[:1] if day.weekday() == 0 else [], self.exchange_info),
            "crypto_info": (stamps[:1] if day.weekday() == 0 else [], self.crypto_info),
        }
        written: dict[str, list[str]] = {}
        for name, (when, rows_of) in plan.items():
            if extractors is not None and name not in extractors:
                continue
            for ts in when:
                n = parts if name == "crypto_listings_latest" else 1
                written.setdefault(name, []).append(write_snapshot(lake, name, ts, rows_of(ts), parts=n))
        return written

    def write_history(self, lake: Lake, day: date) -> str:
        """fear_greed_historical as the init group fetches it: one snapshot of 30 daily values."""
        ts = datetime.combine(day, time(8, 0), tzinfo=timezone.utc)
        rows = [{"index_timestamp": datetime.combine(day - timedelta(days=i), time(0), tzinfo=timezone.utc),
                 "fear_greed_score": 20 + i, "sentiment_label": None if i % 2 else "Fear"} for i in range(1, 31)]
        return write_snapshot(lake, "fear_greed_historical", ts, rows)
