"""Every parser, fed real-shaped, drifted and arbitrary payloads: typed rows or a ParseError, never a crash."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptolake.services.extract.base import Chunk
from cryptolake.services.extract.fields import ParseError, to_batch
from cryptolake.services.extract.registry import EXTRACTORS

TS = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
CHUNK = Chunk("id=270", {"id": "270"}, ids=(270,))

LISTING = json.loads('{"id":1,"name":"Bitcoin","symbol":"BTC","slug":"bitcoin","num_market_pairs":10496,'
                     '"date_added":"2010-07-13T00:00:00.000Z","tags":["mineable","pow"],"max_supply":21000000,'
                     '"circulating_supply":19522056,"total_supply":19522056,"infinite_supply":false,"platform":null,'
                     '"cmc_rank":1,"self_reported_circulating_supply":null,"self_reported_market_cap":null,'
                     '"tvl_ratio":null,"last_updated":"2023-10-23T19:50:00.000Z","quote":{"USD":{"price":31343.47,'
                     '"volume_24h":25528524333.0,"volume_change_24h":149.5893,"percent_change_1h":1.077,'
                     '"percent_change_24h":4.95,"percent_change_7d":9.98,"percent_change_30d":17.76,'
                     '"market_cap":611889140907.62,"market_cap_dominance":51.8437,'
                     '"fully_diluted_market_cap":658213046774.38,"tvl":null,'
                     '"last_updated":"2023-10-23T19:50:00.000Z"}}}')
ASSET = {"wallet_address": "0x5a52e96bacdabb82fd05763e25335261b270efcb", "balance": 45000000,
         "platform": {"crypto_id": 1027, "symbol": "ETH", "name": "Ethereum"},
         "currency": {"crypto_id": 5117, "price_usd": 0.1024, "symbol": "OGN", "name": "Origin Protocol"}}
INFO = {"1": {"id": 1, "name": "Bitcoin", "symbol": "BTC", "category": "coin", "slug": "bitcoin",
              "tags": ["mineable"], "urls": {"website": ["https://bitcoin.org/"], "twitter": []},
              "platform": {"id": "1839", "name": "BNB", "token_address": "0xabc"},
              "date_added": "2010-07-13T00:00:00.000Z", "date_launched": None}}


def parse(name: str, data):
    ex = EXTRACTORS[name]
    return to_batch(ex.columns, ex.items(data, CHUNK), TS, "run-1")


def test_listing_item_is_typed():
    row = parse("crypto_listings_latest", [LISTING]).to_pylist()[0]
    assert row["crypto_id"] == 1 and row["price_usd"] == 31343.47 and row["max_supply"] == 21000000.0
    assert row["tags"] == ["mineable", "pow"] and row["infinite_supply"] is False and row["platform_id"] is None
    assert row["date_added"] == datetime(2010, 7, 13, tzinfo=timezone.utc)
    assert row["snapshot_timestamp"] == TS and row["run_id"] == "run-1"


def test_info_keyed_by_id_with_the_string_platform_id_quirk():
    row = parse("crypto_info", INFO).to_pylist()[0]
    assert row["platform_id"] == 1839 and row["website_url"] == "https://bitcoin.org/" and row["twitter_url"] is None


def test_assets_carry_the_exchange_they_were_asked_for():
    row = parse("exchange_assets", [ASSET]).to_pylist()[0]
    assert row["exchange_id"] == 270 and row["crypto_id"] == 5117 and row["balance"] == 45000000.0


def test_fear_greed_history_timestamps_are_unix_second_strings():
    row = parse("fear_greed_historical", [{"timestamp": "1726617600", "value": 38,
                                           "value_classification": "Fear"}]).to_pylist()[0]
    assert row["index_timestamp"] == datetime(2024, 9, 18, tzinfo=timezone.utc)


def test_category_ids_stay_strings():
    row = parse("crypto_categories", [{"id": "605e2ce9d41eae1066535f7c", "name": "A16Z", "num_tokens": 12}]
                ).to_pylist()[0]
    assert row["category_id"] == "605e2ce9d41eae1066535f7c" and row["num_tokens"] == 12


@pytest.mark.parametrize("drift, message", [
    (lambda item: item["quote"]["USD"].update(price="n/a"), "quote.USD.price"),
    (lambda item: item.pop("id"), "required field 'id'"),
    (lambda item: item.update(last_updated="yesterday"), "last_updated"),
    (lambda item: item.update(id=2**80), "schema"),
])
def test_schema_drift_is_a_parse_error_naming_the_field(drift, message):
    item = copy.deepcopy(LISTING)
    drift(item)
    with pytest.raises(ParseError, match=message):
        parse("crypto_listings_latest", [item])


def test_a_null_quote_is_null_prices_not_an_error():
    item = copy.deepcopy(LISTING)
    item["quote"]["USD"] = None
    assert parse("crypto_listings_latest", [item]).to_pylist()[0]["price_usd"] is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=True)
    | st.text(max_size=30) | st.sampled_from(["1839", "2024-01-01T00:00:00Z", "1726617600", ""]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "name", "quote", "USD", "price", "coins", "platform", "tags", "urls", "value",
                         "timestamp", "plan", "usage", "last_updated", "wallet_address", "currency", "x"]),
        children, max_size=6),
    max_leaves=25,
)


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values)
def test_arbitrary_payloads_give_rows_or_a_parse_error(name, data):
    try:
        batch = parse(name, data)
    except ParseError:
        return
    assert isinstance(batch, pa.RecordBatch)
    assert batch.schema == EXTRACTORS[name].schema
