"""CoinMarketCap extractors to bronze: one module per domain, one engine (base.py) for all of them."""
