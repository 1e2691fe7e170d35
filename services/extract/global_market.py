"""Global market domain: totals, dominance and sector figures of the whole crypto market, flattened."""

from cryptolake.services.extract.base import Extractor, single
from cryptolake.services.extract.fields import FLOAT, INT, TS, columns

_COUNTS = ("active_cryptocurrencies", "total_cryptocurrencies", "active_market_pairs", "active_exchanges",
           "total_exchanges", "total_crypto_dex_currencies", "today_incremental_crypto_number",
           "past_24h_incremental_crypto_number", "past_7d_incremental_crypto_number",
           "past_30d_incremental_crypto_number")
_RATIOS = ("eth_dominance", "btc_dominance", "eth_dominance_yesterday", "btc_dominance_yesterday",
           "eth_dominance_24h_percentage_change", "btc_dominance_24h_percentage_change", "defi_volume_24h",
           "defi_volume_24h_reported", "defi_market_cap", "defi_24h_percentage_change", "stablecoin_volume_24h",
           "stablecoin_volume_24h_reported", "stablecoin_market_cap", "stablecoin_24h_percentage_change",
           "derivatives_volume_24h", "derivatives_volume_24h_reported", "derivatives_24h_percentage_change",
           "today_change_percent")
_USD = ("total_market_cap", "total_volume_24h", "total_volume_24h_reported", "altcoin_volume_24h",
        "altcoin_volume_24h_reported", "altcoin_market_cap", "total_market_cap_yesterday",
        "total_volume_24h_yesterday", "total_market_cap_yesterday_percentage_change",
        "total_volume_24h_yesterday_percentage_change")

global_metrics_latest = Extractor(
    name="global_metrics_latest",
    path="/v1/global-metrics/quotes/latest",
    params={"convert": "USD"},
    items=single,
    columns=columns(
        *((name, name, INT) for name in _COUNTS),
        *((name, name, FLOAT) for name in _RATIOS),
        *((f"{name}_usd" if not name.endswith("change") else name, f"quote.USD.{name}", FLOAT) for name in _USD),
        ("tracked_max_incremental_number", "tracked_yearly_number.maxIncrementalNumber", INT),
        ("tracked_min_incremental_number", "tracked_yearly_number.minIncrementalNumber", INT),
        ("last_updated", "last_updated", TS, True),
        ("quote_last_updated", "quote.USD.last_updated", TS),
    ),
)
