"""The silver tables as data: name, domain, kind, keys, strict schema, bronze sources, partitioning, groups.

Three kinds of table, each with one write rule (see base.py):
- temporal: one row per (keys, snapshot_timestamp); MERGE inserts rows not yet there (facts, *_map, *_info
  history, links). Re-running a snapshot changes nothing.
- identity: one row per key with the attributes of the latest snapshot seen and the first time it was seen;
  MERGE updates only from a newer snapshot, so the result does not depend on processing order.
- daily: fact_crypto_daily, recomputed per affected day range from silver fact_crypto_market
  (replaceWhere on snapshot_date).

Every table ends with the lineage columns `run_id` (the bronze extract run) and `source_file` (lake-relative
bronze file); partitioned tables carry `snapshot_date` (UTC date of snapshot_timestamp) as the partition column.
A table's frequency groups are those of the extractors it reads in the pipeline spec, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from cryptolake import pipeline
from cryptolake.groups import GROUPS

LINEAGE = ("run_id string!", "source_file string!")
PARTITION_COLUMN = "snapshot_date"
QUARANTINE = "_quarantine"
MAINTENANCE_GROUPS = ("weekly", "all")


def _field(spec: str):
    """`name type` with a trailing `!` for NOT NULL (Delta enforces it on every write). Spark is imported here
    only: the declarations are read without it (`cryptolake budget` lists each table's refresh schedule)."""
    from pyspark.sql import types as T

    types = {"long": T.LongType(), "int": T.IntegerType(), "double": T.DoubleType(), "string": T.StringType(),
             "boolean": T.BooleanType(), "timestamp": T.TimestampType(), "date": T.DateType(),
             "array<string>": T.ArrayType(T.StringType(), True)}
    name, kind = spec.split(" ", 1)
    required = kind.endswith("!")
    return T.StructField(name, types[kind.rstrip("!")], nullable=not required)


@dataclass(frozen=True)
class Table:
    name: str
    domain: str
    kind: str                      # temporal | identity | daily
    keys: tuple[str, ...]          # natural key, without snapshot_timestamp
    columns: tuple[str, ...]       # `name type[!]`, in table order, lineage excluded
    sources: tuple[str, ...]       # bronze extractors read
    partitioned: bool = False
    reads: tuple[str, ...] = ()    # silver tables read (built first in a run)

    @cached_property
    def schema(self):
        from pyspark.sql import types as T

        specs = list(self.columns) + list(LINEAGE)
        if self.partitioned:
            specs.append(f"{PARTITION_COLUMN} date!")
        return T.StructType([_field(s) for s in specs])

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.schema.fields]

    @property
    def merge_keys(self) -> tuple[str, ...]:
        return self.keys if self.kind == "identity" else (*self.keys, "snapshot_timestamp")

    @property
    def groups(self) -> tuple[str, ...]:
        spec = pipeline.default()
        found = {g for source in self.sources for g in spec.groups_of(source)}
        return tuple(g for g in GROUPS if g in found)


_SNAP = "snapshot_timestamp timestamp!"
_FIRST = "first_seen_timestamp timestamp!"

TABLE_LIST: tuple[Table, ...] = (
    # -- exchange domain ---------------------------------------------------------------------------------------
    Table("dim_exchange_id", "exchange", "identity", ("exchange_id",), (
        "exchange_id long!", "name string!", "slug string", _FIRST, _SNAP,
    ), ("exchange_map",)),
    Table("dim_exchange_map", "exchange", "temporal", ("exchange_id",), (
        "exchange_id long!", _SNAP, "name string", "slug string", "is_active boolean",
        "first_historical_data timestamp", "last_historical_data timestamp",
    ), ("exchange_map",), partitioned=True),
    Table("dim_exchange_info", "exchange", "temporal", ("exchange_id",), (
        "exchange_id long!", _SNAP, "name string", "slug string", "description string", "date_launched timestamp",
        "notice string", "type string", "logo_url string", "website_url string", "twitter_url string",
        "blog_url string", "chat_url string", "fee_url string", "countries array<string>", "fiats array<string>",
        "maker_fee double", "taker_fee double", "weekly_visits long", "spot_volume_usd double",
        "spot_volume_last_updated timestamp",
    ), ("exchange_info",), partitioned=True),
    Table("fact_exchange_assets", "exchange", "temporal", ("exchange_id", "wallet_address", "crypto_id"), (
        "exchange_id long!", "wallet_address string!", "crypto_id long!", _SNAP, "blockchain_crypto_id long",
        "blockchain_symbol string", "blockchain_name string", "currency_symbol string", "currency_name string",
        "balance double", "currency_price_usd double", "total_usd_value double", "spot_volume_usd double",
        "spot_volume_snapshot_timestamp timestamp", "wallet_weight double",
    ), ("exchange_assets",), partitioned=True, reads=("dim_exchange_info",)),
    # -- crypto domain -----------------------------------------------------------------------------------------
    Table("dim_crypto_id", "crypto", "identity", ("crypto_id",), (
        "crypto_id long!", "name string!", "symbol string!", "slug string", "platform_id long",
        "platform_name string", "platform_symbol string", "platform_slug string", "platform_token_address string",
        _FIRST, _SNAP,
    ), ("crypto_map",)),
    Table("dim_crypto_map", "crypto", "temporal", ("crypto_id",), (
        "crypto_id long!", _SNAP, "rank long", "name string", "symbol string", "slug string", "is_active boolean",
        "first_historical_data timestamp", "last_historical_data timestamp", "platform_id long",
    ), ("crypto_map",), partitioned=True),
    Table("dim_crypto_info", "crypto", "temporal", ("crypto_id",), (
        "crypto_id long!", _SNAP, "name string", "symbol string", "slug string", "category string",
        "description string", "notice string", "tags array<string>", "date_added timestamp",
        "date_launched timestamp", "logo_url string", "website_url string", "technical_doc_url string",
        "explorer_url string", "source_code_url string", "twitter_url string", "reddit_url string",
        "twitter_username string", "platform_id long", "platform_name string", "platform_token_address string",
        "self_reported_circulating_supply double", "self_reported_market_cap double",
    ), ("crypto_info",), partitioned=True),
    Table("fact_crypto_market", "crypto", "temporal", ("crypto_id",), (
        "crypto_id long!", _SNAP, "cmc_rank long", "num_market_pairs long", "platform_id long",
        "date_added timestamp", "last_updated timestamp", "quote_last_updated timestamp", "price_usd double!",
        "volume_24h_usd double", "volume_change_24h double", "percent_change_1h_usd double",
        "percent_change_24h_usd double", "percent_change_7d_usd double", "percent_change_30d_usd double",
        "market_cap_usd double", "market_cap_dominance_usd double", "fully_diluted_market_cap_usd double",
        "self_reported_market_cap double", "circulating_supply double", "total_supply double",
        "max_supply double", "self_reported_circulating_supply double", "infinite_supply boolean",
        "tvl_usd double", "tvl_ratio double",
        "volume_to_market_cap_ratio double", "missing_supply_ratio double", "supply_utilization double",
        "fully_diluted_cap_ratio double",
    ), ("crypto_listings_latest",), partitioned=True),
    Table("fact_crypto_daily", "crypto", "daily", ("crypto_id",), (
        "crypto_id long!", "open_usd double!", "high_usd double!", "low_usd double!", "close_usd double!",
        "n_snapshots int!", "first_snapshot_timestamp timestamp!", _SNAP, "log_return double",
        "return_gap_days int", "log_return_gap_scaled double", "volatility_7d double", "volatility_30d double",
        "volatility_7d_annualized double", "volatility_30d_annualized double", "corr_btc_30d double",
        "running_max_close_usd double!", "drawdown double",
    ), ("crypto_listings_latest",), partitioned=True, reads=("fact_crypto_market",)),
    # -- category domain ---------------------------------------------------------------------------------------
    Table("dim_crypto_category", "category", "identity", ("category_id",), (
        "category_id string!", "name string!", "title string", "description string", _FIRST, _SNAP,
    ), ("crypto_categories",)),
    Table("link_crypto_category", "category", "temporal", ("category_id", "crypto_id"), (
        "category_id string!", "crypto_id long!", _SNAP, "name string", "symbol string", "slug string",
        "cmc_rank long", "last_updated timestamp",
    ), ("crypto_category",), partitioned=True),
    Table("fact_crypto_category", "category", "temporal", ("category_id",), (
        "category_id string!", _SNAP, "num_tokens long", "avg_price_change double", "market_cap double",
        "market_cap_change double", "volume double", "volume_change double", "last_updated timestamp",
        "volume_to_market_cap_ratio double", "dominance_per_token double", "market_cap_change_rate double",
        "volume_change_rate double", "price_change_index double",
    ), ("crypto_categories",), partitioned=True),
    # -- global market -----------------------------------------------------------------------------------------
    Table("fact_global_market", "global_market", "temporal", (), (
        _SNAP, "last_updated timestamp!", "quote_last_updated timestamp",
        "active_cryptocurrencies long", "total_cryptocurrencies long", "active_market_pairs long",
        "active_exchanges long", "total_exchanges long", "total_crypto_dex_currencies long",
        "today_incremental_crypto_number long", "past_24h_incremental_crypto_number long",
        "past_7d_incremental_crypto_number long", "past_30d_incremental_crypto_number long",
        "today_change_percent double", "tracked_max_incremental_number long",
        "tracked_min_incremental_number long",
        "btc_dominance double", "eth_dominance double", "btc_dominance_yesterday double",
        "eth_dominance_yesterday double", "btc_dominance_24h_percentage_change double",
        "eth_dominance_24h_percentage_change double",
        "defi_volume_24h double", "defi_volume_24h_reported double", "defi_market_cap double",
        "defi_24h_percentage_change double", "stablecoin_volume_24h double",
        "stablecoin_volume_24h_reported double", "stablecoin_market_cap double",
        "stablecoin_24h_percentage_change double", "derivatives_volume_24h double",
        "derivatives_volume_24h_reported double", "derivatives_24h_percentage_change double",
        "total_market_cap_usd double", "total_volume_24h_usd double", "total_volume_24h_reported_usd double",
        "altcoin_volume_24h_usd double", "altcoin_volume_24h_reported_usd double", "altcoin_market_cap_usd double",
        "total_market_cap_yesterday_usd double", "total_volume_24h_yesterday_usd double",
        "total_market_cap_yesterday_percentage_change double", "total_volume_24h_yesterday_percentage_change double",
        "market_liquidity_ratio double", "defi_volume_share double", "stablecoin_market_share double",
        "btc_dominance_delta double", "eth_dominance_delta double", "crypto_growth_rate_30d double",
    ), ("global_metrics_latest",)),
    # -- sentiment ---------------------------------------------------------------------------------------------
    Table("fact_market_sentiment", "sentiment", "temporal", ("source",), (
        _SNAP, "source string!", "fear_greed_score int!", "sentiment_label string", "update_time timestamp",
        "extracted_at timestamp!",
    ), ("fear_greed_latest", "fear_greed_historical")),
)
TABLES: dict[str, Table] = {t.name: t for t in TABLE_LIST}

@lru_cache(maxsize=None)
def quarantine_schema():
    from pyspark.sql import types as T

    return T.StructType([_field(s) for s in (
        "table string!", "reason string!", "snapshot_timestamp timestamp", "run_id string", "source_file string",
        "record string!", "record_hash string!", "transform_run_id string!", "quarantined_at timestamp!",
    )])


def tables_of(group: str) -> list[Table]:
    """The tables a group builds, in build order (dimensions before facts, upstream silver first)."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")
    return [t for t in TABLE_LIST if group in t.groups]
