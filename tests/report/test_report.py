"""`cryptolake report` on a warehouse loaded by a real pipeline run (sandbox bronze -> Spark transform -> load on
the test stack's PostgreSQL), rendered in headless Chromium (Debian's package) the way a person would open it:
offline, every section drawn, no console error, no secret. Also an empty warehouse and bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from sqlalchemy.engine import make_url

from cryptolake.lake import Lake
from cryptolake.spark_apps.load.loader import load_group
from cryptolake.spark_apps.transform.runner import run_group
from cryptolake.warehouse.migrate import engine_for, upgrade
from tests.conftest import settings_for
from tests.sandbox_process import free_port
from tests.transform.conftest import DAYS, copy_bronze
from tests.warehouse.conftest import fresh_database

pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]  # Spark on 2 shared cores: the fixture takes minutes
CLI = str(Path(sys.executable).parent / "cryptolake")
LAST_DAY = DAYS[2]  # three days: the first two daily log returns, so a volatility
CHROMIUM = "/usr/bin/chromium"
API_KEY = "report-test-key-5f0c9a1e7d"  # a key the report must never show
SECTIONS = ("Total market cap and BTC/ETH dominance", "Top movers (24h)", "Volatility against return",
            "Category dominance", "Fear &amp; Greed history", "Pipeline health")
MARKET_SECTIONS = SECTIONS[:5]
REMOTE = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?\s*(https?:)?//""", re.I)
CONSOLE = re.compile(r"CONSOLE[(:].*")
# a screenshot with plots: many colours, little bare background (the empty report's: ~1,200 colours, 88 %)
MIN_COLOURS, MAX_BACKGROUND = 2000, 0.85


def report_command(out: Path, lake_uri: str, warehouse_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAKE_URI": lake_uri, "WAREHOUSE_URL": warehouse_url, "CMC_API_KEY": API_KEY}
    return subprocess.run([CLI, "report", "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)


def chromium(page: Path, png: Path, height: int = 4200) -> list[str]:
    """Screenshot the page in headless Chromium; returns the console messages it logged (errors among them)."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size=1280,{height}", "--virtual-time-budget=10000", "--enable-logging=stderr",
                           "--v=0", f"--screenshot={png}", page.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert png.exists(), done.stderr[-3000:]
    return CONSOLE.findall(done.stderr)


def painted(png: Path) -> tuple[int, float]:
    """(distinct colours, share of pixels that are page or card background) of a screenshot."""
    image = Image.open(png).convert("RGB")
    assert image.size[0] == 1280
    counts = {colour: n for n, colour in image.getcolors(maxcolors=image.width * image.height)}
    background = counts.get((255, 255, 255), 0) + counts.get((246, 247, 249), 0)  # white cards, grey page
    return len(counts), background / (image.width * image.height)


@pytest.fixture(scope="module")
def loaded(sandbox_bronze, spark, stack_env, tmp_path_factory):
    """A warehouse after the init group's transform and load over three days of sandbox bronze (ledger in the
    lake)."""
    root = tmp_path_factory.mktemp("report") / "lake"
    copy_bronze(sandbox_bronze, root, LAST_DAY)
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        pipeline = settings_for(root.as_uri(), {"WAREHOUSE_URL": url})
        engine = engine_for(url)
        upgrade(engine)
        engine.dispose()
        for step in (run_group, load_group):  # transform, then load, the init group: every table
            assert step(spark, pipeline, "init", lake=Lake.from_settings(pipeline)).exit_code == 0
        out = root.parent / "report.html"
        done = report_command(out, root.as_uri(), url)
        assert done.returncode == 0, done.stderr[-3000:]
        yield SimpleNamespace(url=url, out=out, done=done, html=out.read_text())


def test_the_report_prints_its_path_and_is_self_contained(loaded):
    assert loaded.done.stdout.strip() == str(loaded.out.resolve())
    assert REMOTE.search(loaded.html) is None  # nothing fetched from a CDN or any other host
    assert loaded.html.count("* plotly.js v") == 1  # plotly.js inlined once for every figure


def test_every_section_has_its_plot_drawn_from_the_warehouse(loaded):
    headings = re.findall(r"<h2>(.*?)</h2>", loaded.html)
    assert headings == list(SECTIONS)
    assert "No data yet" not in loaded.html
    # the five market plots, the pipeline's runs and credits, the freshness per table
    assert loaded.html.count('class="plotly-graph-div"') == 7
    assert re.search(rf"data from \d{{4}}-\d\d-\d\d \d\d:\d\d UTC to {LAST_DAY} \d\d:\d\d UTC", loaded.html)
    assert "24h price change" in loaded.html and "30-day volatility" in loaded.html
    assert "dim_crypto_id</td><td>OK</td>" in loaded.html


def test_chromium_renders_it_with_no_console_error_and_not_blank(loaded, tmp_path):
    png = tmp_path / "report.png"
    assert chromium(loaded.out, png) == []
    colours, background = painted(png)
    assert colours > MIN_COLOURS, f"only {colours} distinct colours: the plots were not drawn"
    assert background < MAX_BACKGROUND


def test_the_console_capture_catches_an_error(tmp_path):
    """The check above can fail: a page that throws shows up in what `chromium` returns."""
    page = tmp_path / "throws.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><script>throw new Error("boom in page")</script>'
                    "</body></html>")
    messages = chromium(page, tmp_path / "throws.png", height=300)
    assert any("Uncaught Error: boom in page" in m for m in messages), messages


def test_no_secret_reaches_the_report(loaded):
    password = make_url(loaded.url).password
    assert password and password not in loaded.html
    assert API_KEY not in loaded.html
    assert password not in loaded.done.stdout + loaded.done.stderr


def test_an_empty_warehouse_still_renders_with_no_data_notes(stack_env, tmp_path):
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        engine = engine_for(url)
        upgrade(engine)
        engine.dispose()
        out = tmp_path / "empty.html"
        done = report_command(out, (tmp_path / "lake").as_uri(), url)
    assert done.returncode == 0, done.stderr[-3000:]
    page = out.read_text()
    assert re.findall(r"<h2>(.*?)</h2>", page) == list(SECTIONS)
    notes = re.findall(r'<p class="empty">(No data yet: dw\.\w+)', page)
    assert notes == ["No data yet: dw.fact_global_market", "No data yet: dw.fact_crypto_market",
                     "No data yet: dw.fact_crypto_daily", "No data yet: dw.fact_crypto_category",
                     "No data yet: dw.fact_market_sentiment"]
    assert "no market data yet" in page and "No pipeline run recorded" in page
    # rendered, it has no console error either, and the screenshot check above would call it empty of plots
    png = tmp_path / "empty.png"
    assert chromium(out, png) == []
    colours, background = painted(png)
    assert colours <= MIN_COLOURS or background >= MAX_BACKGROUND


def test_bad_input_fails_with_one_line(stack_env, tmp_path):
    missing_dir = report_command(tmp_path / "nope" / "r.html", (tmp_path / "lake").as_uri(), stack_env["WAREHOUSE_URL"])
    assert missing_dir.returncode == 1
    assert missing_dir.stderr.strip().splitlines() == [
        f"error: cannot write the report to {tmp_path / 'nope' / 'r.html'}: directory {tmp_path / 'nope'} "
        "does not exist. Create it or choose another --out"]
    unreachable = make_url(stack_env["WAREHOUSE_URL"]).set(port=free_port()).render_as_string(hide_password=False)
    down = report_command(tmp_path / "r.html", (tmp_path / "lake").as_uri(), unreachable)
    assert down.returncode == 1 and not (tmp_path / "r.html").exists()
    [line] = down.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the warehouse") and "Check WAREHOUSE_URL" in line
    assert make_url(unreachable).password not in line
