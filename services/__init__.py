"""Extraction microjobs: CoinMarketCap client, extractors and the local sandbox API (no Spark here)."""
