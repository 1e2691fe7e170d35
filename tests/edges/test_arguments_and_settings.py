"""Bad CLI arguments, settings and environment: one `error:` line naming the input and what to do, exit status
non-zero, no traceback, and the lake left as it was (nothing is written before the input is checked)."""

from __future__ import annotations

import pytest

from cryptolake.settings import SETTINGS
from tests.edges.cli import error_line, run, run_process, tree_digest

# Per checker of cryptolake/settings.py: values it must refuse (they cover each checker's branches).
BAD_VALUES = {
    "_check_positive_int": ["ten", "-5", "0", "2.5"],
    "_check_number": ["abc", "-1"],  # positive numbers and fractions
    "_check_bool": ["yes", "1"],
    "_check_http_url": ["ftp://host", "localhost:9000"],
    "_check_lake_uri": ["relative/lake", "s3://", "gs://bucket", "file://host/x"],
    "_check_warehouse_url": ["postgresql://u@h/db", "mysql://h/db"],
}


def _checker(var) -> str:
    return var.check.__qualname__.split(".")[0]


UNREACHABLE_WAREHOUSE = "postgresql+psycopg2://nobody:pw-unused-4c1e@127.0.0.1:9/none"  # never touched by a usage error
CHECKED = [var for var in SETTINGS if var.check]
CASES = [(var.env, value) for var in CHECKED for value in BAD_VALUES.get(_checker(var), [])]


@pytest.fixture
def lake(tmp_path):
    """A file lake holding one bronze file and its ledger record, as a user's lake would."""
    root = tmp_path / "lake"
    (root / "bronze/key_info/snapshot_date=2026-11-26").mkdir(parents=True)
    (root / "bronze/key_info/snapshot_date=2026-11-26/key_info-20261126T080000Z.parquet").write_bytes(b"PAR1")
    (root / "_meta/extract/key_info").mkdir(parents=True)
    (root / "_meta/extract/key_info/20261126T080000Z-abc123.json").write_text('{"status": "success"}')
    before = tree_digest(root)
    yield root
    assert tree_digest(root) == before, "a refused input changed the lake"


def test_every_checked_setting_has_bad_values_here():
    missing = [var.env for var in CHECKED if _checker(var) not in BAD_VALUES]
    assert not missing, f"add bad values for the checker of {missing}"


@pytest.mark.parametrize(("variable", "value"), CASES, ids=[f"{v}={x}" for v, x in CASES])
def test_a_bad_setting_is_one_line_naming_the_variable(variable, value, lake):
    done = run("budget", "--month", "2026-12", env={"LAKE_URI": lake.as_uri(), variable: value})
    line = error_line(done, variable, "invalid configuration", ".env.example")
    if variable != "WAREHOUSE_URL":  # the URL is shown redacted; the others as given, so the user sees the typo
        assert repr(value) in line


def test_a_bad_flag_value_is_one_line_like_its_variable(lake):
    error_line(run("--lake-uri", "relative/lake", "status"), "LAKE_URI 'relative/lake'")
    error_line(run("--cmc-base-url", "ftp://x", "extract", "key_info", env={"LAKE_URI": lake.as_uri()}),
               "CMC_BASE_URL 'ftp://x' must be an http(s):// URL")
    error_line(run("--warehouse-url", "postgresql://u:hunter2-pw@h/db", "status", env={"LAKE_URI": lake.as_uri()}),
               "WAREHOUSE_URL", "postgresql+psycopg2://")


def test_several_bad_settings_are_reported_together(lake):
    line = error_line(run("budget", env={"LAKE_URI": lake.as_uri(), "CMC_RATE_LIMIT": "-1",
                                         "CMC_CREDIT_MARGIN": "2", "LAKE_CONDITIONAL_WRITES": "maybe"}),
                      "CMC_RATE_LIMIT", "CMC_CREDIT_MARGIN", "LAKE_CONDITIONAL_WRITES")
    assert line.count(";") == 2


def test_missing_required_settings_name_their_variable(lake, tmp_path):
    env = {"LAKE_URI": lake.as_uri(), "CMC_API_KEY": "", "CMC_BASE_URL": "https://pro-api.coinmarketcap.com"}
    error_line(run("extract", "key_info", env=env), "CMC_API_KEY is not set", "cryptolake local env")
    error_line(run("status", env={"LAKE_URI": lake.as_uri(), "WAREHOUSE_URL": ""}), "WAREHOUSE_URL is not set")
    missing = tmp_path / "no-jars.txt"
    error_line(run("transform", "--group", "10x", env={"LAKE_URI": lake.as_uri(),
                                                       "CRYPTOLAKE_SPARK_CLASSPATH": str(missing)}),
               str(missing), "CRYPTOLAKE_SPARK_CLASSPATH", "make jars")


ARGUMENTS = [
    (("extract",), ["give an extractor name, --group, or both"]),
    (("extract", "nope"), ["unknown extractor 'nope'", "crypto_map", "cryptolake extract --help"]),
    (("extract", "--group", "hourly"), ["'hourly' is not one of", "10x"]),
    (("extract", "crypto_category", "--group", "10x"), ["crypto_category does not run in group 10x", "daily"]),
    (("transform", "--group", "nope"), ["'nope' is not one of"]),
    (("transform", "--group", "10x", "--table", "dim_nope"), ["dim_nope not in group 10x", "fact_crypto_market"]),
    (("load",), ["Missing option '--group'"]),
    (("load", "--group", "10x", "--table", "dim_nope"), ["dim_nope not in group 10x"]),
    (("load", "--group", "10x", "--as-of-version", "-1"), ["--as-of-version", "-1"]),
    (("load", "--group", "10x", "--as-of-version", "two"), ["--as-of-version", "'two'"]),
    (("load", "--group", "10x", "--as-of-version", "3"), ["needs exactly one --table"]),
    (("load", "--group", "10x", "--table", "fact_crypto_market", "--table", "fact_crypto_daily",
      "--as-of-version", "3"), ["needs exactly one --table"]),
    (("run",), ["Missing option '--group'"]),
    (("run", "--group", "hourly"), ["'hourly' is not one of"]),
    (("budget", "--month", "2026-13"), ["'2026-13' is not a month like 2026-12"]),
    (("budget", "--month", "soon"), ["'soon' is not a month like"]),
    (("budget", "--spec", "/nonexistent/pipeline.yaml"), ["/nonexistent/pipeline.yaml", "pipeline.yaml"]),
    (("restore",), ["Missing argument 'ID'"]),
    (("restore", "not-an-id"), ["'not-an-id' is not a backup id", "20260101T000000Z"]),
    (("restore", "20990101T000000Z"), ["backup '20990101T000000Z' not found", "cryptolake backup"]),
    (("restore", "20990101T000000Z", "--target", "mysql://db-host/wh"), ["'mysql://db-host/wh'", "postgresql+psycopg2://"]),
    (("frobnicate",), ["No such command 'frobnicate'"]),
    (("status", "--verbose"), ["No such option '--verbose'"]),
    (("sandbox", "serve", "--port", "http"), ["--port", "'http' is not a valid integer"]),
    (("sandbox", "serve", "--coins", "3"), ["at least 14 coins"]),
    (("local", "--pg-port", "x", "status"), ["--pg-port"]),
]


@pytest.mark.parametrize(("args", "words"), ARGUMENTS, ids=[" ".join(a) for a, _ in ARGUMENTS])
def test_a_bad_argument_is_one_line_naming_it(args, words, lake):
    env = {"LAKE_URI": lake.as_uri(), "WAREHOUSE_URL": UNREACHABLE_WAREHOUSE}
    error_line(run(*args, env=env), *words)


def test_the_installed_command_prints_one_line_and_exits_2_on_a_usage_error(lake):
    """The same handling through a real process: exit status 2, stderr one line, stdout empty."""
    done = run_process("load", "--group", "10x", "--table", "dim_nope", env={"LAKE_URI": lake.as_uri()})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: dim_nope not in group 10x; choose from: fact_crypto_market, fact_crypto_daily, " \
                          "fact_global_market, fact_market_sentiment (see `cryptolake load --help`)\n"
