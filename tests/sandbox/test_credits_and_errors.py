"""Credit costs, errors, rate limits and quotas follow the documented rules, as observed through HTTP."""

from __future__ import annotations

import gzip

import pytest
import requests

from tests.sandbox.conftest import START

SMALL = ("--coins", "400", "--exchanges", "40", "--categories", "30", "--clock", "simulated", "--start", START,
         "--rate", "0")


def credits(server, path: str, **params) -> int:
    response = server.get(path, **params)
    assert response.status_code == 200, response.text
    return response.json()["status"]["credit_count"]


def month_used(server) -> int:
    return server.data("/v1/key/info")["usage"]["current_month"]["credits_used"]


@pytest.mark.parametrize("limit, cost", [(1, 1), (100, 1), (200, 1), (201, 2), (1000, 5), (5000, 25)])
def test_listings_cost_one_credit_per_200_coins(sandbox, limit, cost):
    assert credits(sandbox, "/v1/cryptocurrency/listings/latest", limit=limit) == cost


def test_each_convert_beyond_the_first_costs_one_more(sandbox):
    assert credits(sandbox, "/v1/cryptocurrency/listings/latest", limit=300, convert="USD,EUR,BTC") == 2 + 2
    body = sandbox.get("/v2/cryptocurrency/quotes/latest", id="1027", convert="EUR,BTC").json()
    assert body["status"]["credit_count"] == 2
    quote = body["data"]["1027"]["quote"]
    assert set(quote) == {"EUR", "BTC"}
    usd = sandbox.data("/v2/cryptocurrency/quotes/latest", id="1027")["1027"]["quote"]["USD"]["price"]
    assert quote["EUR"]["price"] == pytest.approx(usd / 1.08)
    btc = sandbox.data("/v2/cryptocurrency/quotes/latest", id="1")["1"]["quote"]["USD"]["price"]
    assert quote["BTC"]["price"] == pytest.approx(usd / btc)
    assert credits(sandbox, "/v1/global-metrics/quotes/latest", convert="USD,EUR") == 2


@pytest.mark.parametrize("count, cost", [(1, 1), (100, 1), (101, 2), (250, 3)])
def test_info_and_quotes_cost_one_credit_per_100_coins(sandbox, count, cost):
    ids = ",".join(str(c["id"]) for c in sandbox.data("/v1/cryptocurrency/map", limit=count))
    assert credits(sandbox, "/v2/cryptocurrency/info", id=ids) == cost
    assert credits(sandbox, "/v2/cryptocurrency/quotes/latest", id=ids) == cost


def test_flat_rate_and_free_endpoints(sandbox):
    category = sandbox.data("/v1/cryptocurrency/categories", limit=1)[0]
    assert credits(sandbox, "/v1/cryptocurrency/map", limit=5000) == 1
    assert credits(sandbox, "/v1/cryptocurrency/categories", limit=5000) == 1
    assert credits(sandbox, "/v1/exchange/map", limit=5000) == 1
    assert credits(sandbox, "/v1/exchange/assets", id=270) == 1
    assert credits(sandbox, "/v1/global-metrics/quotes/latest") == 1
    assert credits(sandbox, "/v3/fear-and-greed/latest") == 1
    assert credits(sandbox, "/v3/fear-and-greed/historical", limit=500) == 1
    assert credits(sandbox, "/v1/fiat/map") == 1
    assert credits(sandbox, "/v1/key/info") == 0
    coins = min(category["num_tokens"], 1000)
    expected = 1 + -(-coins // 200)
    assert credits(sandbox, "/v1/cryptocurrency/category", id=category["id"], limit=1000) == expected
    ids = ",".join(str(e["id"]) for e in sandbox.data("/v1/exchange/map", limit=150))
    assert credits(sandbox, "/v1/exchange/info", id=ids) == 2


def test_key_info_accounts_every_credit_and_request(sandbox_factory):
    server = sandbox_factory(*SMALL, "--rate-limit", "1000")
    spent = sum(credits(server, path, **params) for path, params in [
        ("/v1/cryptocurrency/listings/latest", {"limit": 250}), ("/v1/cryptocurrency/map", {}),
        ("/v2/cryptocurrency/info", {"id": "1,2"}), ("/v1/key/info", {})])
    assert server.get("/v1/cryptocurrency/map", limit=0).status_code == 400  # errors cost nothing
    info = server.data("/v1/key/info")
    assert info["usage"]["current_month"] == {"credits_used": spent, "credits_left": 10_000 - spent}
    assert info["usage"]["current_day"] == {"credits_used": spent}
    # six requests so far this minute, key/info included; the call being answered is not counted yet
    assert info["usage"]["current_minute"] == {"requests_made": 5, "requests_left": 995}
    assert info["plan"]["credit_limit_monthly_reset_timestamp"] == "2025-04-01T00:00:00.000Z"
    assert info["plan"]["credit_limit_monthly_reset"] == "In 30 days, 12 hours"


@pytest.mark.parametrize("key, status, code, message", [
    ("not-a-key", 401, 1001, "This API Key is invalid."),
    (None, 401, 1002, "API key missing."),
])
def test_bad_or_missing_key(sandbox, key, status, code, message):
    before = month_used(sandbox)
    response = sandbox.get("/v1/cryptocurrency/listings/latest", key=key)
    assert response.status_code == status
    body = response.json()
    assert body["status"]["error_code"] == code and body["status"]["error_message"] == message
    assert body["status"]["credit_count"] == 0 and "data" not in body
    assert month_used(sandbox) == before


def test_the_key_may_come_as_a_query_parameter(sandbox):
    response = sandbox.get("/v1/key/info", key=None, CMC_PRO_API_KEY=sandbox.key)
    assert response.status_code == 200


@pytest.mark.parametrize("path, params, message", [
    ("/v1/cryptocurrency/listings/latest", {"limit": 5001}, '"limit" must be less than or equal to 5000'),
    ("/v1/cryptocurrency/listings/latest", {"start": 0}, '"start" must be larger than or equal to 1'),
    ("/v1/cryptocurrency/listings/latest", {"limit": "ten"}, '"limit" must be a number'),
    ("/v1/cryptocurrency/listings/latest", {"sort": "hype"}, '"sort" must be one of [name, symbol, date_added, '
     'market_cap, market_cap_strict, price, circulating_supply, total_supply, max_supply, num_market_pairs, '
     'volume_24h, percent_change_1h, percent_change_24h, percent_change_7d, market_cap_by_total_supply_strict, '
     'volume_7d, volume_30d]'),
    ("/v1/cryptocurrency/listings/latest", {"id": "1"}, '"id" is not allowed'),
    ("/v1/cryptocurrency/listings/latest", {"convert": "NOPE"}, 'Invalid value for "convert": "NOPE"'),
    ("/v1/cryptocurrency/listings/latest", {"aux": "cmc_rank,nonsense"},
     'Invalid value for "aux": "cmc_rank,nonsense"'),
    ("/v1/cryptocurrency/map", {"listing_status": "gone"}, 'Invalid value for "listing_status": "gone"'),
    ("/v2/cryptocurrency/info", {}, '"value" must contain at least one of [id, slug, symbol, address]'),
    ("/v2/cryptocurrency/info", {"id": "1", "symbol": "BTC"},
     '"value" contains a conflict between exclusive peers [id, slug, symbol, address]'),
    ("/v2/cryptocurrency/info", {"id": "1,99999999"}, 'Invalid value for "id": "99999999"'),
    ("/v2/cryptocurrency/info", {"id": "abc"}, 'Invalid value for "id": "abc"'),
    ("/v2/cryptocurrency/quotes/latest", {"id": "99999999"}, 'Invalid value for "id": "99999999"'),
    ("/v2/cryptocurrency/quotes/latest", {"id": "1", "skip_invalid": "maybe"}, '"skip_invalid" must be a boolean'),
    ("/v2/cryptocurrency/quotes/latest", {"id": "1", "convert": "USD", "convert_id": "2781"},
     '"value" contains a conflict between optional exclusive peers [convert, convert_id]'),
    ("/v1/cryptocurrency/category", {}, '"id" is required'),
    ("/v1/cryptocurrency/category", {"id": "nope"}, 'Invalid value for "id": "nope"'),
    ("/v1/cryptocurrency/category", {"id": "x", "limit": 1001}, '"limit" must be less than or equal to 1000'),
    ("/v1/exchange/info", {}, '"value" must contain at least one of [id, slug]'),
    ("/v1/exchange/assets", {"id": "99999999"}, 'Invalid value for "id": "99999999"'),
    ("/v3/fear-and-greed/historical", {"limit": 501}, '"limit" must be less than or equal to 500'),
])
def test_invalid_parameters_are_400_with_the_api_message(sandbox, path, params, message):
    response = sandbox.get(path, **params)
    assert response.status_code == 400
    status = response.json()["status"]
    assert (status["error_code"], status["error_message"], status["credit_count"]) == (400, message, 0)


def test_the_free_plan_allows_one_convert_currency(sandbox_factory):
    server = sandbox_factory(*SMALL)
    response = server.get("/v1/cryptocurrency/listings/latest", convert="USD,EUR")
    assert response.status_code == 400
    assert response.json()["status"]["error_message"] == "Your plan is limited to 1 convert options"


def test_skip_invalid_quotes_skip_unknown_ids_but_info_refuses_them_by_default(small):
    assert set(small.data("/v2/cryptocurrency/quotes/latest", id="1,99999999")) == {"1"}
    assert set(small.data("/v2/cryptocurrency/info", id="1,99999999", skip_invalid="true")) == {"1"}


def test_unknown_path_is_404(small):
    assert small.get("/v1/cryptocurrency/nothing").status_code == 404


def test_minute_rate_limit_answers_429_1008_until_the_next_minute(sandbox_factory):
    server = sandbox_factory(*SMALL, "--rate-limit", "3")
    assert [server.get("/v1/key/info").status_code for _ in range(3)] == [200, 200, 200]
    refused = server.get("/v1/cryptocurrency/map")
    assert refused.status_code == 429
    status = refused.json()["status"]
    assert status["error_code"] == 1008
    assert status["error_message"] == ("You've exceeded your API Key's HTTP request rate limit. "
                                       "Rate limits reset every minute.")
    assert "Retry-After" not in refused.headers, "undocumented; only with --retry-after"
    server.advance(60)
    assert server.get("/v1/cryptocurrency/map").status_code == 200


def test_retry_after_is_sent_when_asked_for(sandbox_factory):
    server = sandbox_factory(*SMALL, "--rate-limit", "1", "--retry-after")
    server.set_clock("2025-03-01T12:00:45Z")
    assert server.get("/v1/key/info").status_code == 200
    refused = server.get("/v1/key/info")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "15"


def test_monthly_quota_answers_429_1010_until_the_month_turns(sandbox_factory):
    server = sandbox_factory(*SMALL, "--rate-limit", "1000", "--monthly-credits", "30")
    assert credits(server, "/v1/cryptocurrency/listings/latest", limit=5000) == 2  # 400 coins: 2 credits
    for _ in range(14):
        credits(server, "/v1/cryptocurrency/map")
    assert month_used(server) == 16
    for _ in range(14):
        credits(server, "/v1/cryptocurrency/map")
    refused = server.get("/v1/cryptocurrency/map")
    assert refused.status_code == 429
    assert refused.json()["status"]["error_code"] == 1010
    assert refused.json()["status"]["error_message"] == "You've exceeded your API Key's monthly rate limit."
    usage = server.data("/v1/key/info")["usage"]["current_month"]  # usage stats stay readable
    assert usage == {"credits_used": 30, "credits_left": 0}
    server.set_clock("2025-04-01T00:00:00Z")
    assert server.get("/v1/cryptocurrency/map").status_code == 200


def test_daily_cap_answers_429_1009(sandbox_factory):
    server = sandbox_factory(*SMALL, "--rate-limit", "1000", "--daily-credits", "2")
    credits(server, "/v1/cryptocurrency/map")
    credits(server, "/v1/cryptocurrency/map")
    refused = server.get("/v1/cryptocurrency/map")
    assert (refused.status_code, refused.json()["status"]["error_code"]) == (429, 1009)
    server.advance(86400)
    assert server.get("/v1/cryptocurrency/map").status_code == 200


def test_usage_file_survives_a_restart(sandbox_factory, tmp_path):
    usage_file = tmp_path / "usage.json"
    first = sandbox_factory(*SMALL, "--usage-file", str(usage_file))
    spent = credits(first, "/v1/cryptocurrency/listings/latest", limit=300)
    first.stop()
    second = sandbox_factory(*SMALL, "--usage-file", str(usage_file))
    assert month_used(second) == spent


def test_more_keys_and_separate_usage(sandbox_factory):
    server = sandbox_factory(*SMALL, "--api-key", "key-one", "--api-key", "key-two")
    assert server.get("/v1/cryptocurrency/map", key="key-one").status_code == 200
    assert server.get("/v1/cryptocurrency/map", key=server.key).status_code == 401, "only the configured keys"
    two = server.get("/v1/key/info", key="key-two").json()["data"]["usage"]["current_month"]["credits_used"]
    assert two == 0


def test_gzip_when_asked(sandbox):
    plain = requests.get(sandbox.url + "/v1/cryptocurrency/listings/latest", params={"limit": 50},
                         headers={"X-CMC_PRO_API_KEY": sandbox.key, "Accept-Encoding": "identity"}, timeout=30)
    raw = requests.get(sandbox.url + "/v1/cryptocurrency/listings/latest", params={"limit": 50},
                       headers={"X-CMC_PRO_API_KEY": sandbox.key, "Accept-Encoding": "deflate, gzip"},
                       timeout=30, stream=True)
    assert "Content-Encoding" not in plain.headers
    assert raw.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw.raw.read()) == plain.content
