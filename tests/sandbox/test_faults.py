"""Every fault kind, its scope (path, after, count) and its sources (control endpoint, --faults file)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.sandbox.conftest import FAST_PLAN, REPO, START

LISTINGS = "/v1/cryptocurrency/listings/latest"


@pytest.fixture(scope="module")
def server(sandbox_factory):
    return sandbox_factory("--coins", "600", "--exchanges", "40", "--categories", "30", "--clock", "simulated",
                           "--start", START, "--rate", "0", *FAST_PLAN)


@pytest.fixture(autouse=True)
def no_faults_left(server):
    yield
    server.control("DELETE", "/sandbox/faults")


def inject(server, **fault) -> None:
    server.control("POST", "/sandbox/faults", {"faults": [{"path": LISTINGS, **fault}]})


def used(server) -> int:
    return server.data("/v1/key/info")["usage"]["current_month"]["credits_used"]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_burst_then_recovery(server, status):
    inject(server, kind="error", status=status, count=2)
    before = used(server)
    answers = [server.get(LISTINGS, limit=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [status, status, 200]
    if status == 500:
        assert answers[0].json()["status"]["error_code"] == 500
        assert answers[0].json()["status"]["error_message"] == "An internal server error occurred"
    else:
        assert answers[0].headers["Content-Type"] == "text/html" and b"<html>" in answers[0].content
    assert used(server) == before + 1, "failed calls cost nothing"


def test_a_timeout_delays_the_answer(server):
    inject(server, kind="timeout", delay=1.0, count=1)
    with pytest.raises(requests.ReadTimeout):
        requests.get(server.url + LISTINGS, headers={"X-CMC_PRO_API_KEY": server.key}, timeout=0.3)
    assert server.get(LISTINGS, limit=1).status_code == 200


def test_a_dropped_connection(server):
    inject(server, kind="timeout", delay=0, drop=True, count=1)
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + LISTINGS, headers={"X-CMC_PRO_API_KEY": server.key}, timeout=5)
    assert server.get(LISTINGS, limit=1).status_code == 200


def test_a_429_storm_while_within_the_limit(server):
    inject(server, kind="rate_limit", count=3)
    answers = [server.get(LISTINGS, limit=1) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 429, 200]
    assert answers[0].json()["status"]["error_code"] == 1008


def test_truncated_and_malformed_bodies(server):
    full = server.get(LISTINGS, limit=20).content
    inject(server, kind="truncated", fraction=0.4, count=1)
    truncated = server.get(LISTINGS, limit=20)
    assert truncated.status_code == 200 and truncated.content == full[:int(len(full) * 0.4)]
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)
    inject(server, kind="malformed", count=1)
    malformed = server.get(LISTINGS, limit=20).content
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed)
    assert server.get(LISTINGS, limit=20).content == full


def test_truncation_happens_before_gzip(server):
    inject(server, kind="truncated", count=1)
    answer = requests.get(server.url + LISTINGS, params={"limit": 20},
                          headers={"X-CMC_PRO_API_KEY": server.key, "Accept-Encoding": "gzip"}, timeout=10)
    assert answer.headers["Content-Encoding"] == "gzip"  # decodes fine, the JSON inside is cut
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.content)


@pytest.mark.parametrize("op, field, check", [
    ("missing", "*.id", lambda item: "id" not in item),
    ("string", "*.quote.USD.price", lambda item: isinstance(item["quote"]["USD"]["price"], str)),
    ("null", "*.quote.USD", lambda item: item["quote"] == {"USD": None}),
    ("null", "*.circulating_supply", lambda item: item["circulating_supply"] is None),
])
def test_schema_drift(server, op, field, check):
    inject(server, kind="drift", op=op, field=field, count=1)
    drifted = server.data(LISTINGS, limit=10)
    assert len(drifted) == 10 and all(check(item) for item in drifted)
    assert all(not check(item) for item in server.data(LISTINGS, limit=10))


def test_drift_can_hit_one_item(server):
    inject(server, kind="drift", op="missing", field="1.id", count=1)
    assert ["id" in item for item in server.data(LISTINGS, limit=3)] == [True, False, True]


def test_drift_reaches_keyed_data_and_objects(server):
    server.control("POST", "/sandbox/faults", [
        {"kind": "drift", "path": "/v2/cryptocurrency/quotes/latest", "op": "string", "field": "*.cmc_rank"},
        {"kind": "drift", "path": "/v1/global-metrics/quotes/latest", "op": "missing", "field": "quote.USD"}])
    quotes = server.data("/v2/cryptocurrency/quotes/latest", id="1,1027")
    assert quotes["1"]["cmc_rank"] == "1"
    assert server.data("/v1/global-metrics/quotes/latest")["quote"] == {}


def test_shape_swaps_the_data_container(server):
    inject(server, kind="shape", path=LISTINGS, count=1)
    reshaped = server.data(LISTINGS, limit=3)
    assert sorted(reshaped) == ["0", "1", "2"] and reshaped["0"] == server.data(LISTINGS, limit=3)[0]
    inject(server, kind="shape", path="/v2/cryptocurrency/quotes/latest", count=1)
    assert [q["id"] for q in server.data("/v2/cryptocurrency/quotes/latest", id="1,1027")] == [1, 1027]


def test_scope_by_path_after_and_count(server):
    inject(server, kind="error", after=2, count=2)
    assert server.get("/v1/cryptocurrency/map", limit=1).status_code == 200, "other paths are not affected"
    codes = [server.get(LISTINGS, limit=1).status_code for _ in range(5)]
    assert codes == [200, 200, 500, 500, 200]
    listed = server.control("GET", "/sandbox/faults")["faults"]
    assert listed[0]["remaining"] == 0 and listed[0]["seen"] == 4


def test_a_fault_without_count_lasts_until_cleared(server):
    server.control("POST", "/sandbox/faults", [{"kind": "error", "status": 503, "count": None}])
    assert {server.get(path).status_code for path in ("/v1/fiat/map", "/v1/key/info", LISTINGS)} == {503}
    server.control("DELETE", "/sandbox/faults")
    assert server.get("/v1/fiat/map").status_code == 200


def test_invalid_faults_are_refused_with_a_reason(server):
    for bad, reason in (({"kind": "explode"}, "fault kind"), ({"kind": "drift", "op": "shuffle"}, "drift op"),
                        ({"kind": "error", "status": 404}, "5xx"), ({"kind": "error", "colour": "red"}, "unknown")):
        answer = requests.post(server.url + "/sandbox/faults", json=[bad], timeout=10)
        assert answer.status_code == 400 and reason in answer.json()["error"]


def test_faults_from_a_file_at_start(sandbox_factory, tmp_path):
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"faults": [{"kind": "error", "status": 502, "path": "/v1/fiat/map", "count": 1}]}))
    server = sandbox_factory("--coins", "300", "--exchanges", "30", "--categories", "30", "--faults", str(faults))
    assert [server.get("/v1/fiat/map").status_code for _ in range(2)] == [502, 200]


def test_a_bad_faults_file_stops_the_start_with_one_clear_line(tmp_path):
    faults = tmp_path / "faults.json"
    faults.write_text('[{"kind": "meteor"}]')
    result = subprocess.run([sys.executable, "-m", "cryptolake.services.sandbox", "serve", "--port", "0",
                             "--faults", str(faults)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 1
    assert "cannot start the sandbox: fault kind 'meteor'" in result.stderr


def test_one_fault_object_is_accepted_and_junk_is_refused():
    from cryptolake.services.sandbox.faults import load

    [fault] = load('{"kind": "malformed", "path": "/v1/key/info"}')
    assert fault.kind == "malformed" and fault.path == "/v1/key/info"
    with pytest.raises(ValueError, match="JSON list"):
        load('"malformed"')
