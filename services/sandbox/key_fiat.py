"""/v1/key/info (plan and usage of the calling key; free, but it counts toward the minute) and /v1/fiat/map."""

from __future__ import annotations

from cryptolake.services.sandbox.api import Call, CreditRule, Endpoint, Param, Result, page, start_limit
from cryptolake.services.sandbox.quotes import FIATS, METALS


def _key_info(call: Call) -> Result:
    return Result(call.usage.key_info(call.key, call.now), 0)


def _fiat_map(call: Call) -> Result:
    a = call.args
    rows = list(FIATS + METALS) if a["include_metals"] else list(FIATS)
    rows.sort(key=(lambda r: r[1]) if a["sort"] == "name" else (lambda r: r[0]))
    data = [{"id": fid, "name": name, "sign": sign, "symbol": symbol} for fid, name, sign, symbol, _ in page(rows, a)]
    return Result(data, len(data))


ENDPOINTS = (
    Endpoint("/v1/key/info", (), _key_info, CreditRule(base=0, minimum=0), quota_exempt=True),
    Endpoint("/v1/fiat/map", (
        *start_limit(None, 5000), Param("sort", "enum", "id", choices=("name", "id")),
        Param("include_metals", "bool", False)),
        _fiat_map, CreditRule(base=1)),
)
