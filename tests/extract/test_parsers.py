"""Every parser, fed real-shaped, documented, drifted and arbitrary payloads: typed rows, items rejected one by
one with their reason, NULLs counted per field; never a crash and never a lost page."""

from __future__ import annotations

import collections
import copy
import json
import math
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptolake.services.extract import fields
from cryptolake.services.extract.base import Chunk, keyed, listed, listed_per_request_id, single
from cryptolake.services.extract.category import category_coins
from cryptolake.services.extract.fields import FLOAT, INT, TS as TIMESTAMP, ParseError, to_batch
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


def page(name: str, data):
    ex = EXTRACTORS[name]
    return to_batch(ex.columns, ex.items(data, CHUNK), TS, "run-1")


def parse(name: str, data) -> pa.RecordBatch:
    parsed = page(name, data)
    assert not parsed.rejected, parsed.rejected
    return parsed.batch


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


@pytest.mark.parametrize("drift, field", [
    (lambda item: item["quote"]["USD"].update(price="n/a"), "quote.USD.price"),
    (lambda item: item.update(last_updated="yesterday"), "last_updated"),
    (lambda item: item.update(num_market_pairs=2**80), "num_market_pairs"),
    (lambda item: item.update(max_supply=float("nan")), "max_supply"),
    (lambda item: item.update(tags="mineable"), "tags"),
])
def test_a_non_key_field_that_does_not_fit_becomes_null_and_is_counted(drift, field):
    bad = copy.deepcopy(LISTING)
    drift(bad)
    parsed = page("crypto_listings_latest", [LISTING, bad])
    assert parsed.rejected == [] and parsed.batch.num_rows == 2 and dict(parsed.nulled) == {field: 1}
    good, drifted = parsed.batch.to_pylist()
    column = next(c.name for c in EXTRACTORS["crypto_listings_latest"].columns if c.path == field)
    assert drifted[column] is None and good[column] is not None and drifted["crypto_id"] == 1


@pytest.mark.parametrize("drift, reason", [
    (lambda item: item.pop("id"), "required field 'id' is missing"),
    (lambda item: item.update(id="bitcoin"), "field 'id': expected an integer"),
    (lambda item: item.update(id=2**80), "does not fit 64 bits"),
])
def test_an_item_whose_key_does_not_fit_is_rejected_alone(drift, reason):
    bad = copy.deepcopy(LISTING)
    drift(bad)
    second = {**copy.deepcopy(LISTING), "id": 1027}
    parsed = page("crypto_listings_latest", [LISTING, bad, second, "not an object"])
    assert parsed.items == 4 and parsed.batch.column("crypto_id").to_pylist() == [1, 1027]
    [key_problem, not_object] = parsed.rejected
    assert reason in key_problem.error and key_problem.item == bad
    assert "str, not an object" in not_object.error and not_object.key == 3


def test_a_payload_that_is_not_the_documented_container_is_a_parse_error():
    with pytest.raises(ParseError, match="expected an array"):
        page("crypto_listings_latest", {"1": LISTING})
    with pytest.raises(ParseError, match="expected an object keyed by id"):
        page("crypto_info", [INFO["1"]])


# -- documented and observed value shapes ---------------------------------------------------------------------
EPOCH = datetime(2024, 9, 18, tzinfo=timezone.utc)


@pytest.mark.parametrize("raw", [
    "2024-09-18T00:00:00.000Z", "2024-09-18T00:00:00Z", "2024-09-18T02:00:00+02:00", "2024-09-18 00:00:00",
    "2024-09-18", 1726617600, 1726617600.0, "1726617600", 1726617600000, "1726617600000", "1.7266176e9",
])
def test_documented_timestamp_shapes(raw):
    assert TIMESTAMP.convert(raw) == EPOCH


@pytest.mark.parametrize("raw, number", [
    ("31343.47", 31343.47), ("1.5e-7", 1.5e-7), ("2.1E7", 2.1e7), (" 42 ", 42.0), (21000000, 21e6), ("-3", -3.0),
])
def test_numbers_sent_as_text(raw, number):
    assert FLOAT.convert(raw) == number


@pytest.mark.parametrize("raw, number", [("1839", 1839), (" 7 ", 7), (12.0, 12), ("12.0", 12), ("1e3", 1000)])
def test_ids_and_counts_sent_as_text_or_float(raw, number):
    assert INT.convert(raw) == number


@pytest.mark.parametrize("raw", ["12.5", "abc", "", True, [1], 2**63, "NaN", "inf"])
def test_values_that_are_not_integers(raw):
    with pytest.raises(ParseError):
        INT.convert(raw)


@settings(max_examples=300, deadline=None)
# Seconds and milliseconds are told apart by size: milliseconds before March 1973 would read as seconds.
@given(moment=st.datetimes(min_value=datetime(1974, 1, 1), max_value=datetime(2200, 1, 1),
                           timezones=st.just(timezone.utc)),
       shape=st.sampled_from(["iso", "iso-z", "seconds", "seconds-text", "millis", "millis-text"]))
def test_every_timestamp_shape_gives_the_same_instant(moment, shape):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # the API's precision: milliseconds
    seconds = moment.timestamp()
    raw = {"iso": moment.isoformat(), "iso-z": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
           "seconds": seconds, "seconds-text": repr(seconds), "millis": round(seconds * 1000),
           "millis-text": str(round(seconds * 1000))}[shape]
    assert abs(TIMESTAMP.convert(raw) - moment) <= timedelta(microseconds=1)


@settings(max_examples=300, deadline=None)
@given(number=st.floats(allow_nan=False, allow_infinity=False, width=64),
       shape=st.sampled_from(["number", "repr", "exponent", "padded"]))
def test_every_number_shape_gives_the_same_value(number, shape):
    raw = {"number": number, "repr": repr(number), "exponent": f"{number:.17e}", "padded": f" {number!r} "}[shape]
    assert FLOAT.convert(raw) == number


@settings(max_examples=200, deadline=None)
@given(value=st.integers(min_value=-2**63, max_value=2**63 - 1), as_text=st.booleans())
def test_every_id_shape_gives_the_same_integer(value, as_text):
    assert INT.convert(str(value) if as_text else value) == value


def test_a_null_quote_is_null_prices_not_an_error():
    item = copy.deepcopy(LISTING)
    item["quote"]["USD"] = None
    assert parse("crypto_listings_latest", [item]).to_pylist()[0]["price_usd"] is None


json_leaves = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=True)
               | st.text(max_size=30) | st.sampled_from(["1839", "2024-01-01T00:00:00Z", "1726617600", ""]))
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "name", "quote", "USD", "price", "coins", "platform", "tags", "urls", "value",
                         "timestamp", "plan", "usage", "last_updated", "wallet_address", "currency", "x"]),
        children, max_size=6),
    max_leaves=25,
)


# Values each kind of field takes when the API sends what it documents.
FITTING = {fields.INT: st.integers(min_value=-2**63, max_value=2**63 - 1),
           fields.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
           fields.STR: st.text(max_size=20), fields.BOOL: st.booleans(),
           fields.TS: st.datetimes(min_value=datetime(1974, 1, 1), max_value=datetime(2200, 1, 1),
                                   timezones=st.just(timezone.utc)).map(datetime.isoformat),
           fields.STR_LIST: st.lists(st.text(max_size=10), max_size=3),
           fields.FIRST_STR: st.lists(st.text(max_size=10), min_size=1, max_size=2)}


def _nest(values: dict[str, object]) -> dict:
    """{"quote.USD.price": 1} -> {"quote": {"USD": {"price": 1}}}"""
    item: dict = {}
    for path, value in values.items():
        *parents, last = path.split(".")
        node = item
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return item


def documented_pages(name: str):
    """Pages in the extractor's documented container whose items fill each field with a value of its kind or,
    now and then, with anything at all: pages that give rows, and items rejected for a broken key."""
    extractor = EXTRACTORS[name]
    item = st.fixed_dictionaries({c.path: st.one_of(FITTING[c.kind], json_leaves)
                                  for c in extractor.columns if c.path != "@key"}).map(_nest)
    items = st.lists(item, min_size=1, max_size=4)
    return {listed: items, listed_per_request_id: items, single: item,
            keyed: items.map(lambda found: {str(i): it for i, it in enumerate(found)}),
            category_coins: st.fixed_dictionaries({"id": FITTING[fields.STR], "coins": items}),
            }[extractor.items]


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_arbitrary_payloads_give_rows_or_a_parse_error(name):
    """A page is either not the documented container (ParseError: quarantined whole) or every item ends up as
    a typed row or a rejected item with a reason. Each outcome is met by some example."""
    outcomes = collections.Counter()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=json_values | documented_pages(name))
    def check(data):
        try:
            parsed = page(name, data)
        except ParseError:
            outcomes["not the container"] += 1
            return
        assert isinstance(parsed.batch, pa.RecordBatch) and parsed.batch.schema == EXTRACTORS[name].schema
        assert parsed.batch.num_rows + len(parsed.rejected) == parsed.items
        assert all(r.error.startswith("item ") for r in parsed.rejected)
        json.dumps([r.item for r in parsed.rejected], default=str)  # what quarantine stores
        if parsed.batch.num_rows:
            outcomes["rows"] += 1
        if parsed.rejected:
            outcomes["rejected items"] += 1

    check()
    whole = EXTRACTORS[name].items is single  # any payload is the one item: no container to get wrong
    assert set(outcomes) == {"rows", "rejected items"} | (set() if whole else {"not the container"}), outcomes


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(json_values, min_size=1, max_size=8))
def test_any_listing_field_value_never_costs_the_item(values):
    """Whatever a non-key field holds, the item lands (the field NULL when it does not fit)."""
    columns = [c for c in EXTRACTORS["crypto_listings_latest"].columns if not c.required and "." not in c.path]
    item = copy.deepcopy(LISTING)
    for column, value in zip(columns, values):
        item[column.path] = value
    parsed = page("crypto_listings_latest", [item])
    assert parsed.batch.num_rows == 1 and not parsed.rejected
    assert all(math.isfinite(v) for v in parsed.batch.to_pylist()[0].values() if isinstance(v, float))
