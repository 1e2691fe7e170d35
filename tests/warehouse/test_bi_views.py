"""The bi views on small hand-made data: the numbers a BI user reads off them, and NULL (not 0) where a
divisor is zero."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from cryptolake.warehouse.models import (DimCryptoCategory, DimCryptoId, DimExchangeId, FactCryptoCategory,
                                         FactCryptoDaily, FactCryptoMarket, FactExchangeAssets, FactGlobalMarket,
                                         FactMarketSentiment)
from tests.warehouse.conftest import add, rows

T1 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
T2 = T1 + timedelta(hours=2)
COINS = {1: "BTC", 1027: "ETH", 5: "XYZ", 6: "DUST"}


@pytest.fixture
def coins(conn):
    add(conn, DimCryptoId, *({"crypto_id": i, "name": s.title(), "symbol": s, "snapshot_timestamp": T1}
                             for i, s in COINS.items()))
    return conn


def quote(crypto_id: int, at: datetime, price: float = 1.0, **measures) -> dict:
    return {"crypto_id": crypto_id, "snapshot_timestamp": at, "price_usd": price, **measures}


def test_market_overview_gives_total_cap_and_btc_eth_dominance_per_snapshot(coins):
    add(coins, FactCryptoMarket,
        quote(1, T1, market_cap_usd=600.0, volume_24h_usd=60.0), quote(1027, T1, market_cap_usd=200.0),
        quote(5, T1, market_cap_usd=200.0), quote(6, T1, market_cap_usd=None),
        quote(1, T2, market_cap_usd=0.0), quote(1027, T2, market_cap_usd=0.0))
    first, second = rows(coins, "SELECT * FROM bi.market_overview ORDER BY snapshot_timestamp")
    assert (first["coins"], first["total_market_cap_usd"], first["btc_market_cap_usd"]) == (4, 1000.0, 600.0)
    assert first["btc_dominance"] == pytest.approx(0.6) and first["eth_dominance"] == pytest.approx(0.2)
    assert first["volume_to_market_cap_ratio"] == pytest.approx(0.06)
    assert second["total_market_cap_usd"] == 0.0 and second["btc_dominance"] is None  # zero divisor: NULL


def test_latest_quote_is_each_coins_newest_snapshot_with_its_symbol(coins):
    add(coins, FactCryptoMarket, quote(1, T1, 90000.0), quote(1, T2, 95000.0), quote(5, T1, 2.0))
    latest = {r["symbol"]: r for r in rows(coins, "SELECT * FROM bi.latest_quote")}
    assert set(latest) == {"BTC", "XYZ"}
    assert (latest["BTC"]["price_usd"], latest["BTC"]["snapshot_timestamp"]) == (95000.0, T2)
    assert latest["XYZ"]["snapshot_timestamp"] == T1


def test_top_movers_rank_the_latest_snapshot_by_change_per_period(coins):
    add(coins, FactCryptoMarket,
        quote(5, T1, percent_change_24h_usd=900.0),  # an older snapshot does not count
        quote(1, T2, percent_change_1h_usd=1.0, percent_change_24h_usd=5.0),
        quote(1027, T2, percent_change_1h_usd=-2.0, percent_change_24h_usd=-30.0),
        quote(5, T2, percent_change_1h_usd=0.5, percent_change_24h_usd=50.0),
        quote(6, T2))  # no change known: not a mover
    movers = rows(coins, "SELECT * FROM bi.top_movers WHERE mover_rank = 1 ORDER BY period, direction")
    assert [(m["period"], m["direction"], m["symbol"], m["percent_change"]) for m in movers] == [
        ("1h", "gainer", "BTC", 1.0), ("1h", "loser", "ETH", -2.0),
        ("24h", "gainer", "XYZ", 50.0), ("24h", "loser", "ETH", -30.0)]
    assert {m["snapshot_timestamp"] for m in movers} == {T2}
    assert rows(coins, "SELECT count(*) AS n FROM bi.top_movers WHERE period = '24h'")[0]["n"] == 6  # 3 up, 3 down


def test_daily_risk_shows_ohlc_change_and_range_and_null_for_a_zero_open(coins):
    day = {"n_snapshots": 5, "first_snapshot_timestamp": T1, "snapshot_timestamp": T2,
           "snapshot_date": date(2026, 11, 25),
           "volatility_30d": 0.04, "corr_btc_30d": 0.8, "drawdown": -0.1}
    add(coins, FactCryptoDaily,
        {**day, "crypto_id": 1, "open_usd": 100.0, "high_usd": 120.0, "low_usd": 90.0, "close_usd": 110.0,
         "running_max_close_usd": 122.0},
        {**day, "crypto_id": 6, "open_usd": 0.0, "high_usd": 0.0, "low_usd": 0.0, "close_usd": 0.0,
         "running_max_close_usd": 0.0})
    btc, dust = rows(coins, "SELECT * FROM bi.daily_risk ORDER BY crypto_id")
    assert (btc["day"], btc["symbol"], btc["close_usd"]) == (date(2026, 11, 25), "BTC", 110.0)
    assert btc["day_change"] == pytest.approx(0.1) and btc["intraday_range"] == pytest.approx(0.3)
    assert (btc["volatility_30d"], btc["corr_btc_30d"], btc["drawdown"]) == (0.04, 0.8, -0.1)
    assert dust["day_change"] is None and dust["intraday_range"] is None


def test_category_performance_ranks_categories_by_cap_within_a_snapshot(conn):
    add(conn, DimCryptoCategory, {"category_id": "a1", "name": "DeFi", "snapshot_timestamp": T1},
        {"category_id": "b2", "name": "Memes", "snapshot_timestamp": T1})
    add(conn, FactCryptoCategory, {"category_id": "a1", "snapshot_timestamp": T1, "market_cap": 5e9, "volume": 1e9},
        {"category_id": "b2", "snapshot_timestamp": T1, "market_cap": 9e9, "volume_change": -4.0})
    ranked = rows(conn, "SELECT name, market_cap_rank, volume, volume_change FROM bi.category_performance "
                        "ORDER BY market_cap_rank")
    assert ranked == [{"name": "Memes", "market_cap_rank": 1, "volume": None, "volume_change": -4.0},
                      {"name": "DeFi", "market_cap_rank": 2, "volume": 1e9, "volume_change": None}]


def test_exchange_liquidity_sums_reserves_per_exchange_and_relates_volume_to_them(coins):
    add(coins, DimExchangeId, {"exchange_id": 270, "name": "Binance", "snapshot_timestamp": T1},
        {"exchange_id": 311, "name": "Empty", "snapshot_timestamp": T1})
    wallet = {"exchange_id": 270, "snapshot_timestamp": T1, "spot_volume_usd": 200.0}
    add(coins, FactExchangeAssets, {**wallet, "wallet_address": "w1", "crypto_id": 1, "total_usd_value": 300.0},
        {**wallet, "wallet_address": "w2", "crypto_id": 1027, "total_usd_value": 100.0},
        {"exchange_id": 311, "snapshot_timestamp": T1, "wallet_address": "w3", "crypto_id": 1,
         "total_usd_value": 0.0, "spot_volume_usd": 5.0})
    binance, empty = rows(coins, "SELECT * FROM bi.exchange_liquidity ORDER BY exchange_id")
    assert (binance["exchange_name"], binance["wallets"], binance["assets"]) == ("Binance", 2, 2)
    assert (binance["reserves_usd"], binance["spot_volume_24h_usd"]) == (400.0, 200.0)
    assert binance["volume_to_reserves_ratio"] == pytest.approx(0.5)
    assert binance["largest_holding_share"] == pytest.approx(0.75)
    assert empty["volume_to_reserves_ratio"] is None and empty["largest_holding_share"] is None


def test_sentiment_vs_market_pairs_each_value_with_the_market_snapshot_before_it(conn):
    market = {"last_updated": T1}
    add(conn, FactGlobalMarket, {**market, "snapshot_timestamp": T1, "total_market_cap_usd": 3.0e12},
        {**market, "snapshot_timestamp": T1 + timedelta(hours=1), "total_market_cap_usd": 3.1e12},
        {**market, "snapshot_timestamp": T2 + timedelta(minutes=5), "total_market_cap_usd": 9.9e12})  # after
    add(conn, FactMarketSentiment,
        {"source": "latest", "snapshot_timestamp": T2, "fear_greed_score": 72, "sentiment_label": "Greed",
         "extracted_at": T2},
        {"source": "historical", "snapshot_timestamp": T1 - timedelta(days=3), "fear_greed_score": 20,
         "extracted_at": T2})
    recent, old = rows(conn, "SELECT * FROM bi.sentiment_vs_market ORDER BY snapshot_timestamp DESC")
    assert (recent["fear_greed_score"], recent["sentiment_label"]) == (72, "Greed")
    assert (recent["market_snapshot_timestamp"], recent["total_market_cap_usd"]) == (T1 + timedelta(hours=1), 3.1e12)
    assert old["fear_greed_score"] == 20 and old["total_market_cap_usd"] is None
