"""The warehouse schema, the single source of truth: Alembic autogenerates migrations from `Base.metadata`.

- `dw`: the 14 silver tables of spark_apps/transform/tables.py, same column names, plus lineage (`run_id`,
  `source_file`) on every row. Identity dims are keyed by their id (the loader updates them); facts, maps,
  info dims and the link are temporal (keys + snapshot_timestamp, append-only, info dims keep history);
  fact_crypto_daily is keyed by coin and day (its current day changes until the day ends).
- `meta`: what the loader keeps (watermarks, rejected rows) and the run ledger's mirror.
- `bi`, `qa`: views only, from warehouse/sql (applied by migrations).

Every table and column carries a comment (class docstring, `COLUMN_DOCS`), emitted as `COMMENT ON` for BI tools.
Load order is `Base.metadata.sorted_tables` (foreign keys: identity dims before what references them).
"""

from __future__ import annotations

import inspect
from datetime import date, datetime
from typing import Any

from sqlalchemy import (ARRAY, BigInteger, Date, DateTime, Double, ForeignKey, Identity, Index, Integer, MetaData,
                        Table, Text, UniqueConstraint)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMAS = ("dw", "bi", "qa", "meta")

# Load semantics per dw table (DESIGN.md, Load semantics): what ON CONFLICT does on the primary key.
IDENTITY, TEMPORAL, DAILY = "identity", "temporal", "daily"
UPSERT = {IDENTITY: "update", TEMPORAL: "nothing", DAILY: "update"}


class Base(DeclarativeBase):
    metadata = MetaData(schema="dw", naming_convention={
        "pk": "pk_%(table_name)s", "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s", "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s"})
    type_annotation_map = {int: BigInteger, float: Double, str: Text, datetime: DateTime(timezone=True),
                           date: Date, list[str]: ARRAY(Text), dict[str, Any]: JSONB}


class Lineage:
    """Where every dw row came from."""

    run_id: Mapped[str]
    source_file: Mapped[str]


def _crypto_fk(**kw) -> Any:
    return mapped_column(ForeignKey("dw.dim_crypto_id.crypto_id"), **kw)


def _exchange_fk(**kw) -> Any:
    return mapped_column(ForeignKey("dw.dim_exchange_id.exchange_id"), **kw)


def _category_fk(**kw) -> Any:
    return mapped_column(ForeignKey("dw.dim_crypto_category.category_id"), **kw)


def _snapshot_pk() -> Any:
    return mapped_column(primary_key=True, index=True)


# -- exchange domain -------------------------------------------------------------------------------------------
class DimExchangeId(Lineage, Base):
    """Exchanges by CoinMarketCap id: latest name and slug, and when the id was first seen."""

    __tablename__ = "dim_exchange_id"
    __kind__ = IDENTITY
    exchange_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    slug: Mapped[str | None]
    first_seen_timestamp: Mapped[datetime]
    snapshot_timestamp: Mapped[datetime]


class DimExchangeMap(Lineage, Base):
    """Exchange map snapshots (history of name, slug, activity and data range per exchange)."""

    __tablename__ = "dim_exchange_map"
    __kind__ = TEMPORAL
    exchange_id: Mapped[int] = _exchange_fk(primary_key=True)
    snapshot_timestamp: Mapped[datetime] = _snapshot_pk()
    name: Mapped[str | None]
    slug: Mapped[str | None]
    is_active: Mapped[bool | None]
    first_historical_data: Mapped[datetime | None]
    last_historical_data: Mapped[datetime | None]
    snapshot_date: Mapped[date]


class DimExchangeInfo(Lineage, Base):
    """Exchange metadata per scan; a rescan that corrects an attribute adds a version (history kept)."""

    __tablename__ = "dim_exchange_info"
    __kind__ = TEMPORAL
    exchange_id: Mapped[int] = _exchange_fk(primary_key=True)
    snapshot_timestamp: Mapped[datetime] = _snapshot_pk()
    name: Mapped[str | None]
    slug: Mapped[str | None]
    description: Mapped[str | None]
    date_launched: Mapped[datetime | None]
    notice: Mapped[str | None]
    type: Mapped[str | None]
    logo_url: Mapped[str | None]
    website_url: Mapped[str | None]
    twitter_url: Mapped[str | None]
    blog_url: Mapped[str | None]
    chat_url: Mapped[str | None]
    fee_url: Mapped[str | None]
    countries: Mapped[list[str] | None]
    fiats: Mapped[list[str] | None]
    maker_fee: Mapped[float | None]
    taker_fee: Mapped[float | None]
    weekly_visits: Mapped[int | None]
    spot_volume_usd: Mapped[float | None]
    spot_volume_last_updated: Mapped[datetime | None]
    snapshot_date: Mapped[date]


class FactExchangeAssets(Lineage, Base):
    """Exchange reserves: one row per exchange, wallet and asset per snapshot."""

    __tablename__ = "fact_exchange_assets"
    __kind__ = TEMPORAL
    __table_args__ = (Index(None, "crypto_id", "snapshot_timestamp"),)
    exchange_id: Mapped[int] = _exchange_fk(primary_key=True)
    wallet_address: Mapped[str] = mapped_column(primary_key=True)
    crypto_id: Mapped[int] = _crypto_fk(primary_key=True)
    snapshot_timestamp: Mapped[datetime] = _snapshot_pk()
    blockchain_crypto_id: Mapped[int | None]
    blockchain_symbol: Mapped[str | None]
    blockchain_name: Mapped[str | None]
    currency_symbol: Mapped[str | None]
    currency_name: Mapped[str | None]
    balance: Mapped[float | None]
    currency_price_usd: Mapped[float | None]
    total_usd_value: Mapped[float | None]
    spot_volume_usd: Mapped[float | None]
    spot_volume_snapshot_timestamp: Mapped[datetime | None]
    wallet_weight: Mapped[float | None]
    snapshot_date: Mapped[date]


# -- crypto domain ---------------------------------------------------------------------------------------------
class DimCryptoId(Lineage, Base):
    """Coins and tokens by CoinMarketCap id: latest name, symbol, platform, and when the id was first seen."""

    __tablename__ = "dim_crypto_id"
    __kind__ = IDENTITY
    crypto_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    symbol: Mapped[str] = mapped_column(index=True)
    slug: Mapped[str | None]
    platform_id: Mapped[int | None]
    platform_name: Mapped[str | None]
    platform_symbol: Mapped[str | None]
    platform_slug: Mapped[str | None]
    platform_token_address: Mapped[str | None]
    first_seen_timestamp: Mapped[datetime]
    snapshot_timestamp: Mapped[datetime]


class DimCryptoMap(Lineage, Base):
    """Coin map snapshots (history of rank, names, activity and platform per coin)."""

    __tablename__ = "dim_crypto_map"
    __kind__ = TEMPORAL
    crypto_id: Mapped[int] = _crypto_fk(primary_key=True)
    snapshot_timestamp: Mapped[datetime] = _snapshot_pk()
    rank: Mapped[int | None]
    name: Mapped[str | None]
    symbol: Mapped[str | None]
    slug: Mapped[str | None]
    is_active: Mapped[bool | None]
    first_historical_data: Mapped[datetime | None]
    last_historical_data: Mapped[datetime | None]
    platform_id: Mapped[int | None]
    snapshot_date: Mapped[date]


class DimCryptoInfo(Lineage, Base):
    """Coin metadata per scan; a rescan that corrects an attribute adds a version (history kept)."""

    __tablename__ = "dim_crypto_info"
    __kind__ = TEMPORAL
    crypto_id: Mapped[int] = _crypto_fk(primary_key=True)
    snapshot_timestamp: Mapped[datetime] = _snapshot_pk()
    name: Mapped[str | None]
    symbol: Mapped[str | None]
    slug: Mapped[str | None]
    category: Mapped[str | None]
    description: Mapped[str | None]
    notice: Mapped[str | None]
    tags: Mapped[list[str] | None]
    date_added: Mapped[datetime | None]
    date_launched: Mapped[datetime | None]
    logo_url: Mapped[str | None]
    website_url: Mapped[str | None]
    technical_doc_url: Mapped[str | None]
    explorer_url: Mapped[str | None]
    source_code_url: Mapped[str | None]
    twitter_url: Mapped[str | None]
    reddit_url: Mapped[str | None]
    twitter_username: Mapped[str | None]
    platform_id: Mapped[int | None]
    platform_name: Mapped[str | None]
    platform_token_address: Mapped[str | None]
    self_reported_circulating_supply: Mapped[float | None]
    self_reported_market_cap: Mapped[float | None]
    snapshot_date: Mapped[date]


class FactCryptoMarket(Lineage, Base):
    """Market quotes in USD: one row per coin per listings snapshot, with derived ratios."""

    __tablename__ = "fact_crypto_market"
    __kind__ = TEMPORAL
    __table_args__ = (Index(None, "snapshot_timestamp", "cmc_rank"),)
    crypto_id: Mapped[int] = _crypto_fk(primary_key=True)
    snapshot_timestamp: Mapped[datetime] = mapped_column(primary_key=True)
    cmc_rank: Mapped[int | None]
    num_market_pairs: Mapped[int | None]
    platform_id: Mapped[int | None]
    date_added: Mapped[datetime | None]
    last_updated: Mapped[datetime | None]
    quote_last_updated: Mapped[datetime | None]
    price_usd: Mapped[float]
    volume_24h_usd: Mapped[float | None]
    volume_change_24h: Mapped[float | None]
    percent_change_1h_usd: Mapped[float | None]
    percent_change_24h_usd: Mapped[float | None]
    percent_change_7d_usd: Mapped[float | None]
    percent_change_30d_usd: Mapped[float | None]
    market_cap_usd: Mapped[float | None]
    market_cap_dominance_usd: Mapped[float | None]
    fully_diluted_market_cap_usd: Mapped[float | None]
    self_reported_market_cap: Mapped[float | None]
    circulating_supply: Mapped[float | None]
    total_supply: Mapped[float | None]
    max_supply: Mapped[float | None]
    self_reported_circulating_supply: Mapped[float | None]
    infinite_supply: Mapped[bool | None]
    tvl_usd: Mapped[float | None]
    tvl_ratio: Mapped[float | None]
    volume_to_market_cap_ratio: Mapped[float | None]
    missing_supply_ratio: Mapped[float | None]
    supply_utilization: Mapped[float | None]
    fully_diluted_cap_ratio: Mapped[float | None]
    snapshot_date: Mapped[date]


class FactCryptoDaily(Lineage, Base):
    """Per coin and UTC day: OHLC of the day's snapshots, returns, rolling volatility, BTC correlation, drawdown."""

    __tablename__ = "fact_crypto_daily"
    __kind__ = DAILY
    crypto_id: Mapped[int] = _crypto_fk(primary_key=True)
    snapshot_date: Mapped[date] = mapped_column(primary_key=True, index=True)
    open_usd: Mapped[float]
    high_usd: Mapped[float]
    low_usd: Mapped[float]
    close_usd: Mapped[float]
    n_snapshots: Mapped[int] = mapped_column(Integer)
    first_snapshot_timestamp: Mapped[datetime]
    snapshot_timestamp: Mapped[datetime]
    log_return: Mapped[float | None]
    return_gap_days: Mapped[int | None] = mapped_column(Integer)
    log_return_gap_scaled: Mapped[float | None]
    volatility_7d: Mapped[float | None]
    volatility_30d: Mapped[float | None]
    volatility_7d_annualized: Mapped[float | None]
    volatility_30d_annualized: Mapped[float | None]
    corr_btc_30d: Mapped[float | None]
    running_max_close_usd: Mapped[float]
    drawdown: Mapped[float | None]


# -- category domain -------------------------------------------------------------------------------------------
class DimCryptoCategory(Lineage, Base):
    """Coin categories by CoinMarketCap id: latest name, title and description, and when first seen."""

    __tablename__ = "dim_crypto_category"
    __kind__ = IDENTITY
    category_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    title: Mapped[str | None]
    description: Mapped[str | None]
    first_seen_timestamp: Mapped[datetime]
    snapshot_timestamp: Mapped[datetime]


class LinkCryptoCategory(Lineage, Base):
    """Which coins belong to which category, per snapshot of the category's coin list."""

    __tablename__ = "link_crypto_category"
    __kind__ = TEMPORAL
    __table_args__ = (Index(None, "crypto_id", "snapshot_timestamp"),)
    category_id: Mapped[str] = _category_fk(primary_key=True)
    crypto_id: Mapped[int] = _crypto_fk(primary_key=True)
    snapshot_timestamp: Mapped[datetime] = _snapshot_pk()
    name: Mapped[str | None]
    symbol: Mapped[str | None]
    slug: Mapped[str | None]
    cmc_rank: Mapped[int | None]
    last_updated: Mapped[datetime | None]
    snapshot_date: Mapped[date]


class FactCryptoCategory(Lineage, Base):
    """Category market figures per snapshot, with derived ratios."""

    __tablename__ = "fact_crypto_category"
    __kind__ = TEMPORAL
    category_id: Mapped[str] = _category_fk(primary_key=True)
    snapshot_timestamp: Mapped[datetime] = _snapshot_pk()
    num_tokens: Mapped[int | None]
    avg_price_change: Mapped[float | None]
    market_cap: Mapped[float | None]
    market_cap_change: Mapped[float | None]
    volume: Mapped[float | None]
    volume_change: Mapped[float | None]
    last_updated: Mapped[datetime | None]
    volume_to_market_cap_ratio: Mapped[float | None]
    dominance_per_token: Mapped[float | None]
    market_cap_change_rate: Mapped[float | None]
    volume_change_rate: Mapped[float | None]
    price_change_index: Mapped[float | None]
    snapshot_date: Mapped[date]


# -- global market and sentiment -------------------------------------------------------------------------------
class FactGlobalMarket(Lineage, Base):
    """Whole-market figures per snapshot (CoinMarketCap global metrics), with derived ratios."""

    __tablename__ = "fact_global_market"
    __kind__ = TEMPORAL
    snapshot_timestamp: Mapped[datetime] = mapped_column(primary_key=True)
    last_updated: Mapped[datetime]
    quote_last_updated: Mapped[datetime | None]
    active_cryptocurrencies: Mapped[int | None]
    total_cryptocurrencies: Mapped[int | None]
    active_market_pairs: Mapped[int | None]
    active_exchanges: Mapped[int | None]
    total_exchanges: Mapped[int | None]
    total_crypto_dex_currencies: Mapped[int | None]
    today_incremental_crypto_number: Mapped[int | None]
    past_24h_incremental_crypto_number: Mapped[int | None]
    past_7d_incremental_crypto_number: Mapped[int | None]
    past_30d_incremental_crypto_number: Mapped[int | None]
    today_change_percent: Mapped[float | None]
    tracked_max_incremental_number: Mapped[int | None]
    tracked_min_incremental_number: Mapped[int | None]
    btc_dominance: Mapped[float | None]
    eth_dominance: Mapped[float | None]
    btc_dominance_yesterday: Mapped[float | None]
    eth_dominance_yesterday: Mapped[float | None]
    btc_dominance_24h_percentage_change: Mapped[float | None]
    eth_dominance_24h_percentage_change: Mapped[float | None]
    defi_volume_24h: Mapped[float | None]
    defi_volume_24h_reported: Mapped[float | None]
    defi_market_cap: Mapped[float | None]
    defi_24h_percentage_change: Mapped[float | None]
    stablecoin_volume_24h: Mapped[float | None]
    stablecoin_volume_24h_reported: Mapped[float | None]
    stablecoin_market_cap: Mapped[float | None]
    stablecoin_24h_percentage_change: Mapped[float | None]
    derivatives_volume_24h: Mapped[float | None]
    derivatives_volume_24h_reported: Mapped[float | None]
    derivatives_24h_percentage_change: Mapped[float | None]
    total_market_cap_usd: Mapped[float | None]
    total_volume_24h_usd: Mapped[float | None]
    total_volume_24h_reported_usd: Mapped[float | None]
    altcoin_volume_24h_usd: Mapped[float | None]
    altcoin_volume_24h_reported_usd: Mapped[float | None]
    altcoin_market_cap_usd: Mapped[float | None]
    total_market_cap_yesterday_usd: Mapped[float | None]
    total_volume_24h_yesterday_usd: Mapped[float | None]
    total_market_cap_yesterday_percentage_change: Mapped[float | None]
    total_volume_24h_yesterday_percentage_change: Mapped[float | None]
    market_liquidity_ratio: Mapped[float | None]
    defi_volume_share: Mapped[float | None]
    stablecoin_market_share: Mapped[float | None]
    btc_dominance_delta: Mapped[float | None]
    eth_dominance_delta: Mapped[float | None]
    crypto_growth_rate_30d: Mapped[float | None]


class FactMarketSentiment(Lineage, Base):
    """Fear and Greed index values (0 = extreme fear, 100 = extreme greed), latest and historical."""

    __tablename__ = "fact_market_sentiment"
    __kind__ = TEMPORAL
    source: Mapped[str] = mapped_column(primary_key=True)
    snapshot_timestamp: Mapped[datetime] = _snapshot_pk()
    fear_greed_score: Mapped[int] = mapped_column(Integer)
    sentiment_label: Mapped[str | None]
    update_time: Mapped[datetime | None]
    extracted_at: Mapped[datetime]


# -- meta ------------------------------------------------------------------------------------------------------
class LoadWatermark(Base):
    """Per dw table, the silver Delta version loaded last; advanced in the load's own transaction."""

    __tablename__ = "load_watermark"
    __table_args__ = {"schema": "meta"}
    table_name: Mapped[str] = mapped_column(primary_key=True, comment="dw table name")
    delta_version: Mapped[int] = mapped_column(comment="last silver Delta version loaded into the table")
    loaded_at: Mapped[datetime] = mapped_column(comment="when that load committed (UTC)")
    rows: Mapped[int] = mapped_column(comment="rows the load read from the change feed")
    run_id: Mapped[str | None] = mapped_column(comment="load run that advanced the watermark")


class RejectedRow(Base):
    """Rows the loader could not load (unknown foreign key, bad key); retried on later loads, never dropped."""

    __tablename__ = "rejected_rows"
    __table_args__ = (UniqueConstraint("table_name", "row_key"), {"schema": "meta"})
    id: Mapped[int] = mapped_column(Identity(), primary_key=True, comment="surrogate key")
    table_name: Mapped[str] = mapped_column(comment="dw table the row was meant for")
    row_key: Mapped[dict[str, Any]] = mapped_column(comment="the row's primary key as a JSON object")
    reason: Mapped[str] = mapped_column(index=True, comment="why it was rejected, e.g. unknown crypto_id")
    row_data: Mapped[dict[str, Any]] = mapped_column(comment="the whole row as a JSON object")
    first_seen_at: Mapped[datetime] = mapped_column(comment="first load that rejected it")
    last_seen_at: Mapped[datetime] = mapped_column(comment="latest load that tried it")
    attempts: Mapped[int] = mapped_column(Integer, comment="loads that tried it")
    resolved_at: Mapped[datetime | None] = mapped_column(comment="when a later load took it in; NULL: pending")


class Run(Base):
    """Mirror of the run ledger (<LAKE_URI>/_meta/<step>/<name>/), so BI shows pipeline health next to the data."""

    __tablename__ = "runs"
    __table_args__ = (Index(None, "step", "name", "started_at"), {"schema": "meta"})
    run_id: Mapped[str] = mapped_column(primary_key=True, comment="ledger run id (UTC start stamp + random hex)")
    step: Mapped[str] = mapped_column(primary_key=True, comment="extract, transform or load")
    name: Mapped[str] = mapped_column(primary_key=True, comment="extractor, table or group name")
    started_at: Mapped[datetime] = mapped_column(comment="run start (UTC)")
    ended_at: Mapped[datetime | None] = mapped_column(comment="run end (UTC)")
    status: Mapped[str] = mapped_column(comment="success, partial, skipped or failed")
    rows: Mapped[int] = mapped_column(comment="rows written")
    credits: Mapped[int] = mapped_column(comment="CoinMarketCap credits spent")
    files: Mapped[int] = mapped_column(Integer, comment="files written")
    upstream: Mapped[dict[str, Any]] = mapped_column(comment="runs or versions this run read, as JSON")
    error: Mapped[str | None] = mapped_column(comment="error message of a failed or partial run")


# -- comments --------------------------------------------------------------------------------------------------
# dw column definitions, once per name (the same name means the same thing in every table).
COLUMN_DOCS = {
    "run_id": "bronze extract run that produced the row (ledger run id)",
    "source_file": "lake-relative bronze Parquet file the row came from",
    "snapshot_timestamp": "UTC time of the CoinMarketCap snapshot (identity dims: the latest snapshot seen)",
    "snapshot_date": "UTC date of snapshot_timestamp (fact_crypto_daily: the day)",
    "first_seen_timestamp": "snapshot in which the id first appeared",
    "exchange_id": "CoinMarketCap exchange id",
    "crypto_id": "CoinMarketCap coin/token id",
    "category_id": "CoinMarketCap category id",
    "name": "display name",
    "slug": "URL slug",
    "symbol": "ticker symbol (not unique across coins)",
    "title": "category title",
    "description": "description text",
    "is_active": "listed as active in the map",
    "first_historical_data": "first date CoinMarketCap has data for",
    "last_historical_data": "last date CoinMarketCap has data for",
    "date_launched": "launch date",
    "date_added": "date added to CoinMarketCap",
    "notice": "CoinMarketCap notice (warnings, migrations)",
    "type": "exchange type (e.g. spot, dex)",
    "logo_url": "logo image URL",
    "website_url": "website URL",
    "twitter_url": "Twitter/X URL",
    "blog_url": "blog URL",
    "chat_url": "chat URL",
    "fee_url": "fee schedule URL",
    "technical_doc_url": "whitepaper URL",
    "explorer_url": "block explorer URL",
    "source_code_url": "source code URL",
    "reddit_url": "Reddit URL",
    "twitter_username": "Twitter/X handle",
    "countries": "countries the exchange serves",
    "fiats": "fiat currencies the exchange accepts",
    "maker_fee": "maker fee (percent)",
    "taker_fee": "taker fee (percent)",
    "weekly_visits": "weekly website visits",
    "spot_volume_usd": "exchange spot volume over 24h (USD)",
    "spot_volume_last_updated": "when spot_volume_usd was computed",
    "spot_volume_snapshot_timestamp": "exchange_info snapshot spot_volume_usd comes from",
    "wallet_address": "exchange wallet address",
    "blockchain_crypto_id": "coin id of the wallet's blockchain",
    "blockchain_symbol": "symbol of the wallet's blockchain",
    "blockchain_name": "name of the wallet's blockchain",
    "currency_symbol": "symbol of the asset held",
    "currency_name": "name of the asset held",
    "balance": "units of the asset held",
    "currency_price_usd": "asset price (USD)",
    "total_usd_value": "value held = balance x price (USD)",
    "wallet_weight": "share of the exchange's total reserves in this wallet and asset",
    "platform_id": "coin id of the platform (chain) a token lives on; NULL for coins",
    "platform_name": "platform (chain) name",
    "platform_symbol": "platform (chain) symbol",
    "platform_slug": "platform (chain) slug",
    "platform_token_address": "token contract address on its platform",
    "rank": "CoinMarketCap rank in the map",
    "category": "coin or token",
    "tags": "CoinMarketCap tags",
    "self_reported_circulating_supply": "circulating supply reported by the project",
    "self_reported_market_cap": "market cap from the self-reported supply (USD)",
    "cmc_rank": "CoinMarketCap rank by market cap",
    "num_market_pairs": "trading pairs listed",
    "last_updated": "when CoinMarketCap last updated the record",
    "quote_last_updated": "when the USD quote was last updated",
    "price_usd": "price (USD)",
    "volume_24h_usd": "trading volume over 24h (USD)",
    "volume_change_24h": "volume change over 24h (percent)",
    "percent_change_1h_usd": "price change over 1h (percent)",
    "percent_change_24h_usd": "price change over 24h (percent)",
    "percent_change_7d_usd": "price change over 7 days (percent)",
    "percent_change_30d_usd": "price change over 30 days (percent)",
    "market_cap_usd": "market cap = price x circulating supply (USD)",
    "market_cap_dominance_usd": "share of the total market cap (percent)",
    "fully_diluted_market_cap_usd": "price x max (or total) supply (USD)",
    "circulating_supply": "coins in circulation",
    "total_supply": "coins in existence",
    "max_supply": "maximum coins that will ever exist",
    "infinite_supply": "no maximum supply",
    "tvl_usd": "total value locked (USD)",
    "tvl_ratio": "market cap / TVL",
    "volume_to_market_cap_ratio": "24h volume / market cap; NULL when the cap is zero or unknown",
    "missing_supply_ratio": "1 - circulating / total supply",
    "supply_utilization": "circulating / max supply",
    "fully_diluted_cap_ratio": "market cap / fully diluted market cap",
    "open_usd": "price of the day's first snapshot (USD)",
    "high_usd": "highest snapshot price of the day (USD)",
    "low_usd": "lowest snapshot price of the day (USD)",
    "close_usd": "price of the day's last snapshot so far (USD)",
    "n_snapshots": "snapshots in the day",
    "first_snapshot_timestamp": "the day's first snapshot",
    "log_return": "ln(close / previous day's close)",
    "return_gap_days": "days since the previous day with data",
    "log_return_gap_scaled": "log_return / sqrt(return_gap_days)",
    "volatility_7d": "standard deviation of gap-scaled daily log returns over 7 days",
    "volatility_30d": "standard deviation of gap-scaled daily log returns over 30 days",
    "volatility_7d_annualized": "volatility_7d x sqrt(365)",
    "volatility_30d_annualized": "volatility_30d x sqrt(365)",
    "corr_btc_30d": "30-day correlation of daily returns with BTC (crypto_id 1)",
    "running_max_close_usd": "highest close so far (USD)",
    "drawdown": "close / running max close - 1 (0 at a high, negative below)",
    "num_tokens": "coins in the category",
    "avg_price_change": "average price change of the category's coins (percent)",
    "market_cap": "category market cap (USD)",
    "market_cap_change": "category market cap change over 24h (percent)",
    "volume": "category volume over 24h (USD)",
    "volume_change": "category volume change over 24h (percent)",
    "dominance_per_token": "market cap / num_tokens (USD)",
    "market_cap_change_rate": "market_cap_change as a fraction",
    "volume_change_rate": "volume_change as a fraction",
    "price_change_index": "avg_price_change relative to the market cap change",
    "active_cryptocurrencies": "active coins",
    "total_cryptocurrencies": "all coins listed",
    "active_market_pairs": "active trading pairs",
    "active_exchanges": "active exchanges",
    "total_exchanges": "all exchanges listed",
    "total_crypto_dex_currencies": "coins traded on DEXs",
    "today_incremental_crypto_number": "coins added today",
    "past_24h_incremental_crypto_number": "coins added in the past 24h",
    "past_7d_incremental_crypto_number": "coins added in the past 7 days",
    "past_30d_incremental_crypto_number": "coins added in the past 30 days",
    "today_change_percent": "change of the coin count today (percent)",
    "tracked_max_incremental_number": "most coins added in a day (tracked window)",
    "tracked_min_incremental_number": "fewest coins added in a day (tracked window)",
    "btc_dominance": "BTC share of total market cap (percent)",
    "eth_dominance": "ETH share of total market cap (percent)",
    "btc_dominance_yesterday": "BTC dominance yesterday (percent)",
    "eth_dominance_yesterday": "ETH dominance yesterday (percent)",
    "btc_dominance_24h_percentage_change": "BTC dominance change over 24h (percent)",
    "eth_dominance_24h_percentage_change": "ETH dominance change over 24h (percent)",
    "defi_volume_24h": "DeFi volume over 24h (USD)",
    "defi_volume_24h_reported": "DeFi volume over 24h as reported (USD)",
    "defi_market_cap": "DeFi market cap (USD)",
    "defi_24h_percentage_change": "DeFi market cap change over 24h (percent)",
    "stablecoin_volume_24h": "stablecoin volume over 24h (USD)",
    "stablecoin_volume_24h_reported": "stablecoin volume over 24h as reported (USD)",
    "stablecoin_market_cap": "stablecoin market cap (USD)",
    "stablecoin_24h_percentage_change": "stablecoin market cap change over 24h (percent)",
    "derivatives_volume_24h": "derivatives volume over 24h (USD)",
    "derivatives_volume_24h_reported": "derivatives volume over 24h as reported (USD)",
    "derivatives_24h_percentage_change": "derivatives volume change over 24h (percent)",
    "total_market_cap_usd": "total market cap (USD)",
    "total_volume_24h_usd": "total volume over 24h (USD)",
    "total_volume_24h_reported_usd": "total volume over 24h as reported (USD)",
    "altcoin_volume_24h_usd": "volume over 24h of all coins but BTC (USD)",
    "altcoin_volume_24h_reported_usd": "altcoin volume over 24h as reported (USD)",
    "altcoin_market_cap_usd": "market cap of all coins but BTC (USD)",
    "total_market_cap_yesterday_usd": "total market cap yesterday (USD)",
    "total_volume_24h_yesterday_usd": "total 24h volume yesterday (USD)",
    "total_market_cap_yesterday_percentage_change": "total market cap change since yesterday (percent)",
    "total_volume_24h_yesterday_percentage_change": "total 24h volume change since yesterday (percent)",
    "market_liquidity_ratio": "total volume / total market cap",
    "defi_volume_share": "DeFi volume / total volume",
    "stablecoin_market_share": "stablecoin market cap / total market cap",
    "btc_dominance_delta": "btc_dominance - btc_dominance_yesterday (points)",
    "eth_dominance_delta": "eth_dominance - eth_dominance_yesterday (points)",
    "crypto_growth_rate_30d": "coins added in 30 days / all coins",
    "source": "latest (the current index) or historical (the backfilled series)",
    "fear_greed_score": "Fear and Greed index, 0 (extreme fear) to 100 (extreme greed)",
    "sentiment_label": "the index's label, e.g. Fear, Greed",
    "update_time": "when CoinMarketCap updated the index",
    "extracted_at": "when the value was extracted",
}


def _document() -> None:
    """Class docstrings become table comments, COLUMN_DOCS column comments; an undocumented column fails import."""
    for mapper in Base.registry.mappers:
        mapper.local_table.comment = inspect.cleandoc(mapper.class_.__doc__)
        for column in mapper.local_table.columns:
            if column.comment is None:
                column.comment = COLUMN_DOCS[column.name]


_document()

DW_TABLES: dict[str, type[Base]] = {m.local_table.name: m.class_ for m in Base.registry.mappers
                                    if m.local_table.schema == "dw"}


def load_order() -> list[Table]:
    """dw tables in foreign-key order: every table after the tables it references."""
    return [t for t in Base.metadata.sorted_tables if t.schema == "dw"]


def upsert_kind(table_name: str) -> str:
    """`nothing` (append-only: ON CONFLICT DO NOTHING) or `update` (ON CONFLICT DO UPDATE) for a dw table."""
    return UPSERT[DW_TABLES[table_name].__kind__]
