"""Gold feature table crypto_daily_features: point in time, incremental, hand-checked values, plain Delta.

Sandbox bronze: twelve weekdays of listings and fear & greed extracted from the real sandbox API on its
simulated clock at 09, 13 and 17 h (and the fear & greed history once). The features of a full lake are
compared with those of lakes holding only the data up to a past moment: a feature that used later data differs.
"""

from __future__ import annotations

import math
import re
import shutil
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.spark_apps.transform.features import CRYPTO_DAILY_FEATURES, compute
from cryptolake.spark_apps.transform.runner import run_group
from tests.conftest import settings_for
from tests.transform import expected as E
from tests.transform.conftest import EXTRACT_ENV, start_sandbox

pytestmark = pytest.mark.spark
FEATURES = CRYPTO_DAILY_FEATURES
FIRST = date(2026, 11, 2)  # a Monday
DAYS = [d for d in (FIRST + timedelta(days=n) for n in range(16)) if d.weekday() < 5]  # 12 weekdays
HOURS = (9, 13, 17)
PAST = DAYS[8]              # the past date whose features are recomputed without the later data
STAMP = re.compile(r"(\d{8}T\d{6}Z)")


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sandbox_master(tmp_path_factory) -> Path:
    from cryptolake.services.extract.registry import job
    from cryptolake.services.extract.runner import run_many

    root = tmp_path_factory.mktemp("features-bronze") / "lake"
    sandbox = start_sandbox(at(FIRST, 8))
    try:
        settings = settings_for(root.as_uri(), {**EXTRACT_ENV, "CMC_BASE_URL": sandbox.url})
        for day in DAYS:
            for hour in HOURS:
                jobs = [job("crypto_listings_latest", "10x"), job("fear_greed_latest", "10x")]
                if (day, hour) == (FIRST, HOURS[0]):
                    jobs.append(job("fear_greed_historical", "init"))
                moment = at(day, hour)
                sandbox.set_clock(moment)
                assert run_many(jobs, settings, clock=lambda moment=moment: moment) == 0
    finally:
        sandbox.process.terminate()
        sandbox.process.wait(10)
    return root


def copy_until(master: Path, target: Path, until: datetime) -> Lake:
    """A lake with the bronze files and extract records of the snapshots taken at or before `until`."""
    for root in ("bronze", "_meta/extract"):
        for path in sorted((master / root).rglob("*")):
            stamp = STAMP.search(path.name)
            if path.is_file() and stamp and datetime.strptime(stamp[1], "%Y%m%dT%H%M%SZ").replace(
                    tzinfo=timezone.utc) <= until:
                dest = target / path.relative_to(master)
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, dest)
    return Lake.from_settings(settings_for(target.as_uri(), {}))


def features(lake: Lake, storage_options: dict | None = None) -> pd.DataFrame:
    """The feature table as delta-rs reads it, without Spark."""
    frame = DeltaTable(lake.uri_of(FEATURES.path), storage_options=storage_options).to_pandas()
    return frame.sort_values(["crypto_id", "feature_date"]).reset_index(drop=True)


def files_of(lake: Lake, until: date) -> set[str]:
    """The data files of the partitions up to `until` (a rewrite replaces them)."""
    actions = pa.table(DeltaTable(lake.uri_of(FEATURES.path)).get_add_actions(flatten=True)).to_pandas()
    return set(actions[pd.to_datetime(actions["partition.feature_date"]).dt.date <= until].path)


def ten_x(spark, lake: Lake):
    outcome = run_group(spark, settings_for(lake.uri, {}), "10x", lake)
    assert outcome.exit_code == 0, outcome.failed
    return {r.table: r for r in outcome.results}[FEATURES.name]


@pytest.fixture(scope="module")
def runs(sandbox_master, spark, tmp_path_factory):
    """A full lake built in one run; a lake with the data up to PAST, then PAST's next day arriving in two
    parts (13 h, then 17 h) and a run with nothing new."""
    base = tmp_path_factory.mktemp("features")
    out = SimpleNamespace()
    full = copy_until(sandbox_master, base / "full", at(DAYS[-1], 23))
    out.full_result = ten_x(spark, full)
    out.full, out.full_lake = features(full), full

    lake = copy_until(sandbox_master, base / "past", at(PAST, 23))
    out.past_result = ten_x(spark, lake)
    out.past, out.past_files = features(lake), files_of(lake, PAST)
    nxt = DAYS[DAYS.index(PAST) + 1]
    copy_until(sandbox_master, base / "past", at(nxt, 13))
    out.midday_result = ten_x(spark, lake)
    out.midday, out.midday_files = features(lake), files_of(lake, PAST)
    copy_until(sandbox_master, base / "past", at(nxt, 17))
    out.evening_result = ten_x(spark, lake)
    out.evening = features(lake)
    version = DeltaTable(lake.uri_of(FEATURES.path)).version()
    out.again_result = ten_x(spark, lake)
    out.versions = (version, DeltaTable(lake.uri_of(FEATURES.path)).version())
    out.lake, out.next = lake, nxt
    return out


def test_a_past_date_recomputed_without_the_later_data_has_the_same_features(runs):
    full, past = runs.full, runs.past
    assert list(full.columns) == [f.name for f in FEATURES.schema.fields]
    assert full.feature_date.max() == DAYS[-1] and len(full) == len(E.silver(runs.full_lake, "fact_crypto_daily"))
    assert (past.feature_date <= PAST).all() and past.feature_date.nunique() == DAYS.index(PAST) + 1
    # every row up to PAST, every column (as_of_timestamp included), to the last bit
    pd.testing.assert_frame_equal(past, full[full.feature_date <= PAST].reset_index(drop=True), check_exact=True)
    # and the data after PAST exists and moved the later rows: the comparison could have failed
    later = full[full.feature_date > PAST]
    assert later.log_return_1d.notna().any() and later.fear_greed_score.notna().all()


def test_the_features_follow_silver_on_the_sandbox_data(runs):
    full, lake = runs.full, runs.full_lake
    daily = E.silver(lake, "fact_crypto_daily").rename(columns={"snapshot_date": "feature_date"})
    rows = full.merge(daily, on=["crypto_id", "feature_date"], suffixes=("", "_daily"))
    assert len(rows) == len(full)
    for column in ("close_usd", "n_snapshots", "volatility_7d", "volatility_30d", "corr_btc_30d", "drawdown"):
        pd.testing.assert_series_equal(rows[column], rows[f"{column}_daily"], check_names=False)
    # 7-day return of each coin: ln(close_D / close of the newest day on or before D - 7), by brute force
    closes = {(r.crypto_id, r.feature_date): r.close_usd for r in daily.itertuples()}
    for r in full.itertuples():
        back = [d for (c, d) in closes if c == r.crypto_id and r.feature_date - timedelta(days=14) <= d
                <= r.feature_date - timedelta(days=7)]
        expected = math.log(r.close_usd / closes[(r.crypto_id, max(back))]) if back else None
        assert (pd.isna(r.log_return_7d) if expected is None else r.log_return_7d == pytest.approx(expected)), r
    mondays = full[pd.to_datetime(full.feature_date).dt.weekday == 0]
    assert mondays[mondays.feature_date > FIRST].log_return_1d.notna().all()  # Friday's close bridges the weekend
    # the day's last snapshot: rank, volume / market cap (NULL on a zero or missing market cap)
    market = E.silver(lake, "fact_crypto_market")
    last = market.sort_values("snapshot_timestamp").groupby(["crypto_id", "snapshot_date"]).tail(1)
    last = last.rename(columns={"snapshot_date": "feature_date"}).merge(full, on=["crypto_id", "feature_date"],
                                                                         suffixes=("_market", ""))
    assert (last.cmc_rank_market == last.cmc_rank).all()
    for volume, cap, actual in zip(last.volume_24h_usd_market, last.market_cap_usd_market,
                                   last.volume_to_market_cap_ratio):
        expected = E.div(volume, cap)
        assert pd.isna(actual) if expected is None else actual == pytest.approx(expected, rel=1e-12)
    # fear & greed of the day: its last published value (the 17 h snapshot on these days), the newest input
    sentiment = E.silver(lake, "fact_market_sentiment")
    at_17 = sentiment[(sentiment.source == "latest") & (sentiment.snapshot_timestamp.dt.hour == 17)]
    score_of = dict(zip(at_17.snapshot_timestamp.dt.date, at_17.fear_greed_score))
    assert (full.fear_greed_score == full.feature_date.map(score_of)).all()
    assert (full.as_of_timestamp.dt.hour == 17).all()


def test_a_new_day_rewrites_only_its_own_rows_and_its_first_row_is_provisional(runs):
    nxt = runs.next
    assert runs.midday_result.details["recomputed"] == [nxt.isoformat(), nxt.isoformat()]
    assert runs.midday_files == runs.past_files  # no file of an earlier day was rewritten
    pd.testing.assert_frame_equal(runs.midday[runs.midday.feature_date <= PAST].reset_index(drop=True), runs.past,
                                  check_exact=True)
    provisional = runs.midday[runs.midday.feature_date == nxt]
    assert (provisional.as_of_timestamp == pd.Timestamp(at(nxt, 13))).all() and (provisional.n_snapshots == 2).all()
    # the day's last snapshot lands: its rows are recomputed, and now equal those of the full lake
    assert runs.evening_result.details["recomputed"] == [nxt.isoformat(), nxt.isoformat()]
    final = runs.evening[runs.evening.feature_date == nxt]
    assert (final.as_of_timestamp == pd.Timestamp(at(nxt, 17))).all() and (final.n_snapshots == 3).all()
    pd.testing.assert_frame_equal(runs.evening, runs.full[runs.full.feature_date <= nxt].reset_index(drop=True),
                                  check_exact=True)
    # nothing new: no run of its own, no commit
    assert runs.again_result.status == "up-to-date" and runs.versions[0] == runs.versions[1]
    record = Ledger(runs.lake).latest("transform", FEATURES.name)
    assert record.run_id == runs.evening_result.run_id and record.files == [FEATURES.path]
    assert record.upstream["crypto_listings_latest"] and record.details["delta_version"] == runs.versions[0]


def test_the_table_is_plain_delta(runs):
    dt = DeltaTable(runs.full_lake.uri_of(FEATURES.path))
    protocol = dt.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert not protocol.reader_features and "delta.enableDeletionVectors" not in dt.metadata().configuration
    assert dt.metadata().partition_columns == ["feature_date"]
    assert [(f.name, f.nullable) for f in dt.schema().fields] == [(f.name, f.nullable) for f in FEATURES.schema]


def test_hand_checked_values_on_a_tiny_frame(spark):
    """Coin 1: closes 100 * 1.01^n on days 0..10 but day 3; days 0-7 are stored rows, 8-10 are recomputed."""
    day0 = date(2026, 1, 1)
    closes = {n: 100 * 1.01 ** n for n in range(11) if n != 3}
    ranks = {n: 5 + n % 3 for n in closes}
    rows = [(1, day0 + timedelta(days=n), closes[n], ranks[n], at(day0 + timedelta(days=n), 17)) for n in closes]
    schema = "crypto_id long, feature_date date, close_usd double, cmc_rank long, snapshot_timestamp timestamp"
    current = spark.createDataFrame([r for r in rows if r[1] >= day0 + timedelta(days=8)], schema)
    prior = spark.createDataFrame([r for r in rows if r[1] < day0 + timedelta(days=8)], schema)
    fear_greed = spark.createDataFrame([
        (at(day0, 12), "latest", 10, "Extreme fear"),                           # 8 days before day 8: too old
        (at(day0 + timedelta(days=9), 0), "historical", 30, "Fear"),
        (at(day0 + timedelta(days=10), 0) + timedelta(hours=23, minutes=59, seconds=59), "latest", 40, "Fear"),
        (at(day0 + timedelta(days=11), 0), "latest", 90, "Extreme greed"),      # after day 10 ended
    ], "snapshot_timestamp timestamp, source string, fear_greed_score int, sentiment_label string")
    out = {(r.feature_date - day0).days: r for r in compute(current, prior, fear_greed).collect()}
    assert sorted(out) == [8, 9, 10]
    assert out[8].log_return_1d == pytest.approx(math.log(closes[8] / closes[7]), rel=1e-12)
    assert out[10].log_return_7d == pytest.approx(math.log(closes[10] / closes[2]), rel=1e-12)  # no day 3: day 2
    assert out[9].log_return_7d == pytest.approx(math.log(closes[9] / closes[2]), rel=1e-12)
    assert out[8].log_return_7d == pytest.approx(math.log(closes[8] / closes[1]), rel=1e-12)
    assert all(out[n].log_return_30d is None for n in out)  # no close on or before D - 30
    assert out[10].cmc_rank_change_1d == ranks[10] - ranks[9] and out[8].cmc_rank_change_7d == ranks[8] - ranks[1]
    assert out[10].cmc_rank_change_7d == ranks[10] - ranks[2]
    assert [out[n].fear_greed_score for n in (8, 9, 10)] == [None, 30, 40]
    assert out[9].fear_greed_label == "Fear"
    assert out[8].as_of_timestamp == at(day0 + timedelta(days=8), 17).replace(tzinfo=None)
    assert out[10].as_of_timestamp == datetime.combine(day0 + timedelta(days=10), time(23, 59, 59))
    # a lake without sentiment yet: no fear & greed, and the market snapshot is the newest input
    without = compute(current, prior).collect()
    assert {r.fear_greed_score for r in without} == {None}
    assert all(r.as_of_timestamp == r.snapshot_timestamp for r in without)
