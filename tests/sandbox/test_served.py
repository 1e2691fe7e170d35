"""The served journal (GET /sandbox/served): what an independent check compares a client's storage with."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.conftest import START
from tests.sandbox.test_faults import LISTINGS, server  # noqa: F401 (the fault tests' small server, shared)


@pytest.fixture(autouse=True)
def clean(server):
    server.control("DELETE", "/sandbox/served")
    yield
    server.control("DELETE", "/sandbox/faults")


def served(server) -> list[dict]:
    return server.control("GET", "/sandbox/served")["served"]


def test_each_answer_is_journaled_with_its_ids_params_and_time_and_never_the_key(server):
    page = server.data(LISTINGS, start=11, limit=7)
    server.data("/v1/global-metrics/quotes/latest")
    category = server.data("/v1/cryptocurrency/categories")[0]["id"]
    members = server.data("/v1/cryptocurrency/category", id=category)["coins"]
    listings, metrics, categories, coins = served(server)
    assert listings["ids"] == [item["id"] for item in page] and listings["items"] == 7
    assert listings["params"] == {"limit": "7", "start": "11"}  # the key (a header here) is never kept
    assert listings["timestamp"].startswith(START[:19]) and listings["usable"] and listings["fault"] is None
    assert metrics["items"] == 1 and metrics["ids"] == [None]
    assert categories["path"] == "/v1/cryptocurrency/categories"
    assert coins["ids"] == [coin["id"] for coin in members]  # a category's rows are its coins


def test_the_key_given_as_a_query_parameter_is_not_journaled(server):
    server.get("/v1/cryptocurrency/map", key=None, CMC_PRO_API_KEY=server.key, limit=3)
    (entry,) = served(server)
    assert entry["params"] == {"limit": "3"}
    assert server.key not in str(server.control("GET", "/sandbox/served"))


def test_errors_and_dropped_connections_are_not_served_and_corrupt_answers_are_marked_unusable(server):
    server.control("POST", "/sandbox/faults", {"faults": [
        {"path": LISTINGS, "kind": "error", "status": 503},
        {"path": LISTINGS, "kind": "rate_limit", "after": 1},
        {"path": LISTINGS, "kind": "truncated", "after": 2},
        {"path": LISTINGS, "kind": "drift", "op": "null", "after": 3}]})
    assert server.get(LISTINGS, limit=5).status_code == 503
    assert server.get(LISTINGS, limit=5).status_code == 429
    assert server.get(LISTINGS, limit=5).status_code == 200  # truncated JSON
    assert server.get(LISTINGS, limit=5).status_code == 200  # drifted, still parses
    truncated, drifted = served(server)
    assert (truncated["fault"], truncated["usable"]) == ("truncated", False)
    assert (drifted["fault"], drifted["usable"], drifted["items"]) == ("drift", True, 5)


def test_clearing_the_journal_empties_it(server):
    server.data(LISTINGS, limit=2)
    assert served(server)
    assert server.control("DELETE", "/sandbox/served") == {"served": [], "dropped": 0}


def test_a_rate_limit_fault_can_answer_the_monthly_quota_code(server):
    """The fault matrix's "quota exhausted mid-run": 429 / 1010 after some answers, until cleared."""
    server.control("POST", "/sandbox/faults", {"path": "*", "kind": "rate_limit", "code": 1010, "after": 1,
                                               "count": None})
    assert server.get(LISTINGS, limit=1).status_code == 200
    for _ in range(2):
        answer = server.get(LISTINGS, limit=1)
        assert answer.status_code == 429 and answer.json()["status"]["error_code"] == 1010
    assert len(served(server)) == 1
    bad = requests.post(server.url + "/sandbox/faults", json={"kind": "rate_limit", "code": 1011}, timeout=10)
    assert bad.status_code == 400 and "code must be one of [1008, 1009, 1010]" in bad.json()["error"]
