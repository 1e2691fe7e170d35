"""An independent computation of the silver tables from bronze, in pandas and plain Python.

It shares nothing with the Spark code but the documented definitions (docs/transform.md): bronze is read with
pyarrow from the files the extract ledger lists, rules and KPIs are re-stated here, windows are brute force.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
from deltalake import DeltaTable

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger

BTC = 1


def bronze(lake: Lake, extractor: str) -> pd.DataFrame:
    """Every row of every complete snapshot, with its file (lake-relative) as `source_file`."""
    frames = []
    for record in Ledger(lake).snapshots(extractor):
        for path in record.files:
            frame = lake.read_parquet(path).to_pandas()
            frame["source_file"] = path
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def silver(lake: Lake, table: str, storage_options: dict | None = None) -> pd.DataFrame:
    """A silver table read by delta-rs, the independent reader."""
    return DeltaTable(lake.uri_of(f"silver/{table}"), storage_options=storage_options).to_pandas()


def div(a, b):
    """NULL (None) when either side is missing or the divisor is 0."""
    if a is None or b is None or pd.isna(a) or pd.isna(b) or b == 0:
        return None
    return a / b


# -- fact_crypto_market ---------------------------------------------------------------------------------------
def market(lake: Lake) -> pd.DataFrame:
    raw = bronze(lake, "crypto_listings_latest")
    ok = raw["price_usd"].notna() & (raw["price_usd"] > 0) & (raw["crypto_id"] > 0)
    rows = raw[ok].copy()
    for column in ("market_cap_usd", "volume_24h_usd", "circulating_supply", "total_supply", "max_supply",
                   "fully_diluted_market_cap_usd"):
        rows.loc[rows[column] < 0, column] = np.nan
    rows = (rows.sort_values(["quote_last_updated", "cmc_rank", "source_file"], ascending=[False, True, True],
                             na_position="last")
            .drop_duplicates(["crypto_id", "snapshot_timestamp"]))
    rows["volume_to_market_cap_ratio"] = [div(v, m) for v, m in zip(rows.volume_24h_usd, rows.market_cap_usd)]
    rows["missing_supply_ratio"] = [div(t - c, t) if not (pd.isna(t) or pd.isna(c)) else None
                                    for t, c in zip(rows.total_supply, rows.circulating_supply)]
    rows["supply_utilization"] = [div(c, m) for c, m in zip(rows.circulating_supply, rows.max_supply)]
    rows["fully_diluted_cap_ratio"] = [div(f, m) for f, m in zip(rows.fully_diluted_market_cap_usd,
                                                                  rows.market_cap_usd)]
    return rows.reset_index(drop=True), int((~ok).sum())


# -- fact_crypto_daily ------------------------------------------------------------------------------------------
def _std(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


def _corr(pairs: list[tuple[float, float]]) -> float | None:
    if len(pairs) < 2:
        return None
    x, y = np.array(pairs).T
    if np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def daily(market_rows: pd.DataFrame) -> pd.DataFrame:
    """Per coin and UTC day, from the market rows, by the definitions in docs/transform.md."""
    m = market_rows.assign(day=market_rows.snapshot_timestamp.dt.tz_convert("UTC").dt.date)
    out = []
    for (coin, day), g in m.sort_values("snapshot_timestamp").groupby(["crypto_id", "day"]):
        out.append({"crypto_id": coin, "snapshot_date": day, "open_usd": g.price_usd.iloc[0],
                    "close_usd": g.price_usd.iloc[-1], "high_usd": g.price_usd.max(), "low_usd": g.price_usd.min(),
                    "n_snapshots": len(g), "first_snapshot_timestamp": g.snapshot_timestamp.iloc[0],
                    "snapshot_timestamp": g.snapshot_timestamp.iloc[-1], "run_id": g.run_id.iloc[-1],
                    "source_file": g.source_file.iloc[-1]})
    d = pd.DataFrame(out).sort_values(["crypto_id", "snapshot_date"]).reset_index(drop=True)
    d[["log_return", "return_gap_days", "log_return_gap_scaled"]] = np.nan  # a coin's first day has no return
    scaled: dict[tuple, float] = {}  # (coin, day) -> the return over the gap, divided by sqrt(gap days)
    for coin, g in d.groupby("crypto_id"):
        previous_close, previous_day, peak = None, None, -math.inf
        for i, row in g.iterrows():
            peak = max(peak, row.close_usd)
            if previous_close is not None:
                ret, gap = math.log(row.close_usd / previous_close), (row.snapshot_date - previous_day).days
                d.loc[i, "log_return"], d.loc[i, "return_gap_days"] = ret, gap
                d.loc[i, "log_return_gap_scaled"] = scaled[(coin, row.snapshot_date)] = ret / math.sqrt(gap)
            d.loc[i, "running_max_close_usd"] = peak
            d.loc[i, "drawdown"] = row.close_usd / peak - 1
            previous_close, previous_day = row.close_usd, row.snapshot_date
    btc = {day: r for (c, day), r in scaled.items() if c == BTC}
    for i, row in d.iterrows():
        def window(days):
            lo = row.snapshot_date - timedelta(days=days - 1)
            return [(day, r) for (c, day), r in scaled.items() if c == row.crypto_id and lo <= day <= row.snapshot_date]
        for days in (7, 30):
            vol = _std([r for _, r in window(days)])
            d.loc[i, f"volatility_{days}d"] = vol
            d.loc[i, f"volatility_{days}d_annualized"] = None if vol is None else vol * math.sqrt(365)
        d.loc[i, "corr_btc_30d"] = _corr([(r, btc[day]) for day, r in window(30) if day in btc])
    return d


# -- other facts ------------------------------------------------------------------------------------------------
def category_facts(lake: Lake) -> pd.DataFrame:
    rows = bronze(lake, "crypto_categories")
    for column in ("num_tokens", "market_cap", "volume"):
        rows[column] = rows[column].astype("float64")
        rows.loc[rows[column] < 0, column] = np.nan
    rows["volume_to_market_cap_ratio"] = [div(v, m) for v, m in zip(rows.volume, rows.market_cap)]
    rows["dominance_per_token"] = [div(m, n) for m, n in zip(rows.market_cap, rows.num_tokens)]
    rows["market_cap_change_rate"] = [div(c, m) for c, m in zip(rows.market_cap_change, rows.market_cap)]
    rows["volume_change_rate"] = [div(c, v) for c, v in zip(rows.volume_change, rows.volume)]
    rows["price_change_index"] = [a * n if not (pd.isna(a) or pd.isna(n)) else None
                                  for a, n in zip(rows.avg_price_change, rows.num_tokens)]
    return rows


def global_facts(lake: Lake) -> pd.DataFrame:
    rows = bronze(lake, "global_metrics_latest")
    for column in ("btc_dominance", "eth_dominance", "btc_dominance_yesterday", "eth_dominance_yesterday"):
        rows.loc[(rows[column] < 0) | (rows[column] > 100), column] = np.nan
    rows["market_liquidity_ratio"] = [div(v, m) for v, m in zip(rows.total_volume_24h_usd, rows.total_market_cap_usd)]
    rows["defi_volume_share"] = [div(d, v) for d, v in zip(rows.defi_volume_24h, rows.total_volume_24h_usd)]
    rows["stablecoin_market_share"] = [div(s, m) for s, m in zip(rows.stablecoin_market_cap,
                                                                  rows.total_market_cap_usd)]
    rows["btc_dominance_delta"] = rows.btc_dominance - rows.btc_dominance_yesterday
    rows["eth_dominance_delta"] = rows.eth_dominance - rows.eth_dominance_yesterday
    rows["crypto_growth_rate_30d"] = [div(n, t) for n, t in zip(rows.past_30d_incremental_crypto_number,
                                                                 rows.total_cryptocurrencies)]
    return rows


def exchange_assets(lake: Lake) -> pd.DataFrame:
    """total_usd_value, and wallet_weight against the newest exchange_info spot volume (<= 45 days old)."""
    assets = bronze(lake, "exchange_assets")
    info = bronze(lake, "exchange_info")
    assets["total_usd_value"] = assets.balance * assets.currency_price_usd
    volumes = []
    for _, row in assets.iterrows():
        candidates = info[(info.exchange_id == row.exchange_id) & info.spot_volume_usd.notna()
                          & (info.snapshot_timestamp <= row.snapshot_timestamp)
                          & (info.snapshot_timestamp >= row.snapshot_timestamp - timedelta(days=45))]
        volumes.append(candidates.sort_values("snapshot_timestamp").spot_volume_usd.iloc[-1]
                       if len(candidates) else None)
    assets["spot_volume_usd"] = volumes
    assets["wallet_weight"] = [div(t, v) for t, v in zip(assets.total_usd_value, assets.spot_volume_usd)]
    return assets


# -- comparing --------------------------------------------------------------------------------------------------
def assert_close(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str], columns: list[str],
                 rel: float = 1e-9) -> None:
    """Same keys, and every column equal (floats to `rel`, NULL/NaN equal to NULL/NaN)."""
    a = actual.sort_values(keys).reset_index(drop=True)
    e = expected.sort_values(keys).reset_index(drop=True)
    assert len(a) == len(e), f"{len(a)} rows, expected {len(e)}"
    for key in keys:
        assert list(a[key]) == list(e[key]), f"key {key} differs"
    for column in columns:
        for i, (x, y) in enumerate(zip(a[column], e[column])):
            missing_x, missing_y = x is None or pd.isna(x), y is None or pd.isna(y)
            assert missing_x == missing_y, f"{column} row {i} ({a.loc[i, keys].tolist()}): {x!r} vs {y!r}"
            if not missing_x:
                if isinstance(y, float) or isinstance(x, float):
                    assert math.isclose(x, y, rel_tol=rel, abs_tol=1e-12), \
                        f"{column} row {i} ({a.loc[i, keys].tolist()}): {x!r} vs {y!r}"
                else:
                    assert x == y, f"{column} row {i}: {x!r} vs {y!r}"
