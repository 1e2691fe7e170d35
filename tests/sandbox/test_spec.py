"""Every endpoint answers in the shape of the real API: the official swagger's response schemas (where it covers
the endpoint) and the field lists gathered from real responses in cmc-api-facts.md.

Where the spec and real responses disagree, the sandbox follows the real responses; those few places are listed
in SPEC_ERRATA with the reason, and patched into the spec's schema before validating (nothing else is relaxed).
"""

from __future__ import annotations

import re

import jsonschema
import pytest

from cryptolake.services.sandbox.crypto import INFO_AUX, LISTING_AUX, MAP_AUX, QUOTES_AUX
from cryptolake.services.sandbox.exchange import INFO_AUX as EXCHANGE_INFO_AUX
from cryptolake.services.sandbox.exchange import MAP_AUX as EXCHANGE_MAP_AUX
from tests.sandbox import contract

# Fields that real responses never leave null; every other spec field may be null (swagger 2 cannot say so).
NEVER_NULL = {"id", "name", "symbol", "slug", "quote", "timestamp", "credit_count", "error_code", "elapsed", "data",
              "status", "coins", "plan", "usage"}
HEX_ID = {"type": "string", "pattern": "^[0-9a-f]{24}$"}
TAG_OBJECTS = {"type": ["array", "null"], "items": {"type": "object", "required": ["slug", "name", "category"]}}
STRING_ID = {"type": "string", "pattern": r"^\d+$"}

# (endpoint, schema path, replacement, why)
SPEC_ERRATA = [
    ("/v1/cryptocurrency/categories", "data.[].id", HEX_ID, "category ids are 24-hex strings (facts)"),
    ("/v1/cryptocurrency/category", "data", "category-object",
     "data is the category object itself, not keyed by id (facts: categories item plus coins)"),
    ("/v1/cryptocurrency/category", "data.id", HEX_ID, "category ids are 24-hex strings (facts)"),
    ("/v2/cryptocurrency/info", "data.*.platform.id", STRING_ID, "inside info, platform.id is a string (facts)"),
    ("/v2/cryptocurrency/quotes/latest", "data.*.tags", TAG_OBJECTS,
     "quotes/latest tags are objects {slug,name,category} (facts)"),
    ("/v1/key/info", "data.plan", "optional:credit_limit_daily,credit_limit_daily_reset,"
     "credit_limit_daily_reset_timestamp", "plans without a daily cap (the free plan) omit the daily fields (facts)"),
    ("/v1/key/info", "data.usage.current_day", "optional:credits_left", "the same, for usage (facts)"),
]


def to_json_schema(node: dict, defs: dict, name: str | None = None) -> dict:
    """A swagger 2 schema as JSON Schema: $refs resolved, "$key" as any key, nullable except NEVER_NULL."""
    while "$ref" in node:
        node = defs[node["$ref"].split("/")[-1]]
    if "properties" in node:
        props = {k: to_json_schema(v, defs, k) for k, v in node["properties"].items() if k != "$key"}
        out = {"type": "object", "properties": props,
               "required": [r for r in node.get("required", []) if r != "$key"]}
        if "$key" in node["properties"]:
            out.update(additionalProperties=to_json_schema(node["properties"]["$key"], defs), minProperties=1)
    elif node.get("type") == "array":
        out = {"type": "array", "items": to_json_schema(node.get("items", {}), defs)}
    else:
        out = {"type": node["type"]} if "type" in node else {}
    if "enum" in node:
        out["enum"] = list(node["enum"])
    if name not in NEVER_NULL and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"].append(None)
    return out


def _locate(schema: dict, path: str) -> tuple[dict, str]:
    """The parent schema and key of a dotted path: [] is array items, * is any key of a keyed object."""
    *parents, last = path.split(".")
    node = schema
    for part in parents:
        node = node["items"] if part == "[]" else node["additionalProperties"] if part == "*" else \
            node["properties"][part]
    return node, last


def response_schema(spec: dict, endpoint: str, errata: bool = True) -> dict:
    defs = spec["definitions"]
    schema = to_json_schema(spec["paths"][endpoint]["get"]["responses"]["200"]["schema"], defs)
    for path, dotted, replacement, _ in SPEC_ERRATA:
        if path != endpoint or not errata:
            continue
        parent, key = _locate(schema, dotted)
        if replacement.startswith("optional:") if isinstance(replacement, str) else False:
            node = parent["properties"][key]
            node["required"] = [r for r in node["required"] if r not in replacement[9:].split(",")]
        elif replacement == "category-object":
            parent["properties"][key] = parent["properties"][key]["additionalProperties"]
        elif key == "[]":
            parent["items"] = replacement
        else:
            parent["properties"][key] = replacement
    return schema


@pytest.fixture(scope="module")
def spec():
    return contract.load()["swagger"]


@pytest.fixture(scope="module")
def facts():
    examples = contract.load()["facts"]
    # "quotes/latest tags are objects {slug,name,category} instead of strings"; otherwise a listings item
    examples["quotes item"] = {**examples["listings item"], "tags": [dict.fromkeys(("slug", "name", "category"))]}
    return examples


def _kind(value) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}[type(value)]


def check_against_facts(ours, reference, where: str = "") -> None:
    """Every field the facts show is there (with the same JSON type, unless the facts show null or a list of
    names), nested objects recursively; wildcard names (defi_*) match by prefix."""
    if isinstance(reference, list):
        assert isinstance(ours, list), where
        if reference and reference[0] is not None and ours:
            check_against_facts(ours[0], reference[0], where + "[0]")
        return
    if not isinstance(reference, dict):
        if reference is not None and ours is not None:
            assert _kind(ours) == _kind(reference), f"{where}: {ours!r} is not a {_kind(reference)}"
        return
    assert isinstance(ours, dict), f"{where} should be an object"
    for key, value in reference.items():
        if key.endswith("*"):
            assert any(k.startswith(key[:-1]) for k in ours), f"{where}: no {key} field"
            continue
        if key == "USD" and "USD" not in ours:
            continue
        assert key in ours, f"{where}: missing {key}"
        check_against_facts(ours[key], value, f"{where}.{key}")


def unknown_fields(ours, schema: dict, reference, aux: frozenset = frozenset(), where: str = "") -> list[str]:
    """Fields we send that neither the spec (properties, or `aux` options) nor the facts know: invented names
    would break real clients' code."""
    found: list[str] = []
    if isinstance(ours, list):
        for item in ours[:3]:
            found += unknown_fields(item, schema.get("items", {}), (reference or [None])[0]
                                    if isinstance(reference, list) else reference, aux, where + "[]")
        return found
    if not isinstance(ours, dict):
        return found
    props = schema.get("properties", {})
    known = set(props) | set(reference or {} if isinstance(reference, dict) else {}) | aux
    keyed = "additionalProperties" in schema and not props
    for key, value in ours.items():
        if keyed:
            child = reference[key] if isinstance(reference, dict) and key in reference else reference
            found += unknown_fields(value, schema["additionalProperties"], child, aux, f"{where}.{key}")
            continue
        prefix_known = any(k.endswith("*") and key.startswith(k[:-1]) for k in known)
        if key not in known and not prefix_known:
            found.append(f"{where}.{key}")
            continue
        child_ref = reference.get(key) if isinstance(reference, dict) else None
        found += unknown_fields(value, props.get(key, {}), child_ref, aux, f"{where}.{key}")
    return found


def aux_names(spec: dict, endpoint: str) -> frozenset:
    """The supplemental fields an endpoint's `aux` parameter documents (they may appear in responses)."""
    for param in spec["paths"][endpoint]["get"]["parameters"]:
        if param["name"] == "aux":
            return frozenset(re.match(r"\^\(([^)]*)\)", param["pattern"]).group(1).split("|"))
    return frozenset()


def _all(aux: tuple[str, ...]) -> str:
    return ",".join(aux)


# endpoint, params, facts item label, where the item sits in `data` ("[]": array items, "*": keyed values, "": data)
CASES = [
    ("/v1/cryptocurrency/map", {"limit": 50, "aux": _all(MAP_AUX), "listing_status": "active,inactive,untracked"},
     "crypto map item", "[]"),
    ("/v1/cryptocurrency/listings/latest", {"limit": 200, "aux": _all(LISTING_AUX)}, "listings item", "[]"),
    ("/v1/cryptocurrency/listings/latest", {"limit": 50}, "listings item", "[]"),
    ("/v2/cryptocurrency/info", {"id": "1,825,1027,3408", "aux": _all(INFO_AUX)}, "info item", "*"),
    ("/v2/cryptocurrency/quotes/latest", {"id": "1,825,1027", "aux": _all(QUOTES_AUX)}, "quotes item", "*"),
    ("/v1/cryptocurrency/categories", {"limit": 50}, "categories item", "[]"),
    ("/v1/exchange/map", {"limit": 50, "aux": _all(EXCHANGE_MAP_AUX)}, "exchange map item", "[]"),
    ("/v1/exchange/info", {"id": "270,89,24", "aux": _all(EXCHANGE_INFO_AUX)}, "exchange info item", "*"),
    ("/v1/global-metrics/quotes/latest", {}, "global metrics", ""),
    ("/v1/key/info", {}, "key info", ""),
    ("/v1/fiat/map", {"include_metals": "true"}, None, "[]"),
]


def _items(data, where: str) -> list:
    return data if where == "[]" else list(data.values()) if where == "*" else [data]


@pytest.mark.parametrize("endpoint, params, label, where", CASES, ids=[f"{c[0]}{'+aux' if 'aux' in c[1] else ''}"
                                                                       for c in CASES])
def test_matches_spec_schema_and_facts(sandbox, spec, facts, endpoint, params, label, where):
    body = sandbox.get(endpoint, **params).json()
    schema = response_schema(spec, endpoint)
    jsonschema.Draft7Validator(schema).validate(body)
    item_schema = schema["properties"]["data"]
    item_schema = item_schema.get("items") if where == "[]" else item_schema.get("additionalProperties") \
        if where == "*" else item_schema
    reference = facts.get(label) if label else None
    items = _items(body["data"], where)
    assert items, f"{endpoint} returned no data"
    for item in items:
        assert unknown_fields(item, item_schema, reference, aux_names(spec, endpoint)) == []
        if reference is not None:
            check_against_facts(item, reference, endpoint)


def test_category_matches_spec_and_facts(sandbox, spec, facts):
    category_id = sandbox.data("/v1/cryptocurrency/categories", limit=1)[0]["id"]
    body = sandbox.get("/v1/cryptocurrency/category", id=category_id, limit=20).json()
    schema = response_schema(spec, "/v1/cryptocurrency/category")
    jsonschema.Draft7Validator(schema).validate(body)
    data = body["data"]
    check_against_facts({k: v for k, v in data.items() if k != "coins"}, facts["categories item"])
    assert data["coins"], "the biggest category has coins"
    for coin in data["coins"]:
        check_against_facts(coin, facts["listings item"], "category.coins")
        assert unknown_fields(coin, schema["properties"]["data"]["properties"]["coins"]["items"],
                              facts["listings item"]) == []


def test_key_info_with_a_daily_cap_has_every_spec_field(sandbox_factory, spec):
    """Plans with a daily cap add the daily fields the spec marks as required; the free plan has none."""
    capped = sandbox_factory("--coins", "300", "--exchanges", "30", "--categories", "30", "--daily-credits", "333")
    body = capped.get("/v1/key/info").json()
    jsonschema.Draft7Validator(response_schema(spec, "/v1/key/info", errata=False)).validate(body)
    assert body["data"]["usage"]["current_day"] == {"credits_used": 0, "credits_left": 333}


def test_free_plan_key_info_omits_the_daily_fields(sandbox, facts):
    data = sandbox.data("/v1/key/info")
    assert set(data["plan"]) == set(facts["key info"]["plan"])
    assert set(data["usage"]["current_day"]) == {"credits_used"}


@pytest.mark.parametrize("endpoint, params, label, many", [
    ("/v1/exchange/assets", {"id": 270}, "exchange assets item", True),
    ("/v3/fear-and-greed/latest", {}, "fear & greed latest", False),
    ("/v3/fear-and-greed/historical", {"limit": 10}, "fear & greed historical item", True),
])
def test_endpoints_outside_the_spec_match_the_facts(sandbox, facts, endpoint, params, label, many):
    data = sandbox.data(endpoint, **params)
    items = data if many else [data]
    assert items
    for item in items:
        check_against_facts(item, facts[label], endpoint)
        assert set(item) == set(facts[label]), "no field beyond those of real responses"


def test_v3_status_reports_success_as_strings(sandbox):
    """v3 endpoints answer error_code "0" and error_message "SUCCESS" (a quirk clients must accept)."""
    status = sandbox.get("/v3/fear-and-greed/latest").json()["status"]
    assert (status["error_code"], status["error_message"], status["credit_count"]) == ("0", "SUCCESS", 1)
    assert isinstance(status["elapsed"], str)


def test_success_status_and_error_bodies_match_the_spec(sandbox, spec):
    ok = sandbox.get("/v1/cryptocurrency/map", limit=1).json()["status"]
    assert ok["error_code"] == 0 and ok["error_message"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ok["timestamp"])
    defs = spec["definitions"]
    for status_code, params in (("400", {"limit": 0}), ("401", None)):
        response = sandbox.get("/v1/cryptocurrency/map", key=None if params is None else "default", **(params or {}))
        assert str(response.status_code) == status_code
        jsonschema.Draft7Validator(to_json_schema(
            spec["paths"]["/v1/cryptocurrency/map"]["get"]["responses"][status_code]["schema"], defs)).validate(
            response.json())
        assert "data" not in response.json(), "errors carry only status"


def test_the_facts_parser_reads_the_lists(facts):
    """Guard the test's own parser: a silent empty list would make the checks above vacuous."""
    assert {"urls", "contract_address", "tag-names", "platform"} <= set(facts["info item"])
    assert facts["info item"]["contract_address"][0]["platform"]["coin"] == dict.fromkeys(
        ("id", "name", "symbol", "slug"))
    assert "spot_volume_usd" in facts["exchange info item"] and "fee" in facts["exchange info item"]["urls"]
    assert "defi_*" in facts["global metrics"]["quote"]["USD"]
    assert {"crypto map item", "listings item", "categories item", "exchange map item", "exchange assets item",
            "fear & greed latest", "fear & greed historical item", "key info"} <= set(facts)


@pytest.mark.skipif(not contract.SWAGGER.exists() or not contract.FACTS.exists(),
                    reason=f"drift check only: the API reference is not at {contract.REFERENCE}")
def test_the_vendored_contract_matches_the_reference():
    assert contract.load() == contract.build(), "run `make sandbox-contract` and review the diff"
