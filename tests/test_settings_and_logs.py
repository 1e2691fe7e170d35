"""Settings validation, log format and context, and secret redaction everywhere a secret could leak."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from cryptolake import logs
from cryptolake.errors import SettingsError
from cryptolake.settings import SETTINGS, Settings

REPO = Path(__file__).resolve().parents[1]
API_KEY = "b54bcf4d-1bca-4e8e-9a24-22ff2c3d462c"
PG_PASSWORD = "pg-Sup3r-s3cret"


def test_defaults_and_overrides():
    settings = Settings.load(env={})
    assert settings.cmc_base_url == "https://pro-api.coinmarketcap.com"
    assert settings.lake_uri == (Path.cwd() / ".lake").as_uri()
    assert settings.cmc_monthly_credits == 10000 and settings.warehouse_url is None
    flagged = Settings.load(env={"LAKE_URI": "s3://env-bucket"}, lake_uri="s3://flag-bucket/lake/")
    assert flagged.lake_uri == "s3://flag-bucket/lake"


def test_every_problem_is_reported_at_once_with_the_variable_named():
    with pytest.raises(SettingsError) as err:
        Settings.load(env={"LAKE_URI": "/data/lake", "CMC_MONTHLY_CREDITS": "ten thousand",
                           "WAREHOUSE_URL": f"postgresql://u:{PG_PASSWORD}@db/x", "CMC_BASE_URL": "ftp://x"})
    text = str(err.value)
    assert len(err.value.problems) == 4
    for name in ("LAKE_URI", "CMC_MONTHLY_CREDITS", "WAREHOUSE_URL", "CMC_BASE_URL"):
        assert name in text
    assert "postgresql+psycopg2://" in text and PG_PASSWORD not in text


def test_required_setting_names_its_variable():
    with pytest.raises(Exception, match="CMC_API_KEY is not set. Use the sandbox"):
        Settings.load(env={}).require("cmc_api_key", "Use the sandbox")


def test_env_example_lists_every_variable():
    documented = set(re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(), re.M))
    assert documented == {v.env for v in SETTINGS}


def _capture(json_lines: bool) -> io.StringIO:
    stream = io.StringIO()
    logs.configure(job="extract", run_id="20261125T080000Z-abc123", stream=stream, json_lines=json_lines)
    return stream


def test_json_lines_carry_run_id_job_and_context():
    stream = _capture(json_lines=True)
    with logs.context(extractor="crypto_map"):
        logging.getLogger("t").info("fetched %d ids", 9000)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["run_id"] == "20261125T080000Z-abc123" and line["job"] == "extract"
    assert line["extractor"] == "crypto_map" and line["msg"] == "fetched 9000 ids" and line["level"] == "info"


def test_console_lines_are_readable():
    stream = _capture(json_lines=False)
    logging.getLogger("t").warning("credits low")
    assert re.search(r"\d\d:\d\d:\d\d WARNING extract\[20261125T080000Z-abc123\] credits low", stream.getvalue())


def test_a_known_key_never_appears_in_logs_or_tracebacks():
    Settings.load(env={"CMC_API_KEY": API_KEY, "WAREHOUSE_URL": f"postgresql+psycopg2://u:{PG_PASSWORD}@db:5432/x"})
    stream = _capture(json_lines=True)
    log = logging.getLogger("t")
    log.info("calling with key %s", API_KEY)
    log.info("headers {'X-CMC_PRO_API_KEY': 'other-unregistered-key'}")
    log.info("connecting to postgresql+psycopg2://loader:unregistered-pw@db:5432/dw")
    try:
        raise ConnectionError(f"GET /v1/key/info?CMC_PRO_API_KEY={API_KEY} failed; db={PG_PASSWORD}")
    except ConnectionError:
        log.exception("request failed")
    output = stream.getvalue()
    for secret in (API_KEY, PG_PASSWORD, "other-unregistered-key", "unregistered-pw"):
        assert secret not in output
    assert output.count("***") >= 5 and "ConnectionError" in output
