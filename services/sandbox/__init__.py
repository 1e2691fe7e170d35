"""A local CoinMarketCap-compatible API (`cryptolake sandbox serve`): the demo and the tests need no key or network.

It answers the endpoints the extractors use with the real paths, parameters, envelopes, field names, credit
costs and errors, from a deterministic synthetic market (a pure function of seed and clock). docs/sandbox.md
describes the control endpoints, the fault injection and what deliberately differs from the real API.
"""

# CoinMarketCap's own documented key for its public sandbox; accepted by default here too.
DEFAULT_API_KEY = "b54bcf4d-1bca-4e8e-9a24-22ff2c3d462c"
