"""Load benchmark (issue 9, Bulk-load speed): rows/s of the full load path for silver fact_crypto_market beside a
plain PostgreSQL COPY of the same rows into the same indexed table, as a ratio (target >= 0.75 of COPY).
Results go in docs/warehouse.md, Load speed.

    .venv/bin/python bench/load_bench.py [--coins 5000] [--snapshots 200] [--repeat 2]

Set up once: a PostgreSQL of the local stack of its own (state dir and port under a temp dir, so neither a
`make demo` stack nor the test stack is disturbed or measured), a fresh database at head, dim_crypto_id rows for
the coins (the fact's foreign key), and silver fact_crypto_market on a file:// lake created by the transform's
own CryptoTransformer.ensure (schema, partitioning, change data feed), as version 0 (empty), loaded once so the
watermark is 0, then coins x snapshots rows appended as version 1. Every measured load therefore reads the
change feed of version 1, as a production load after a transform run does.

Measured in one run, interleaved per repeat (machine drift hits all alike), each into dw.fact_crypto_market
emptied by TRUNCATE (indexes, primary key and foreign key in place), after a CHECKPOINT:
  copy       psycopg2 `COPY ... FROM STDIN (FORMAT csv)` of the silver rows, exported once to one CSV file
  jdbc       a plain Spark JDBC append of silver into the dw table (reWriteBatchedInserts, batchsize 5000)
  load       `load_group(..., "5x", tables=["fact_crypto_market"])`, i.e. `cryptolake load --group 5x --table
             fact_crypto_market`: advisory lock, change feed, latest per key, JDBC into the UNLOGGED staging
             table, one transaction (rejects, insert, watermark, drop staging); its steps timed from outside
  load_copy  the same load with only the staging write replaced by `copy_stage` below (COPY from each Spark
             partition), the candidate of the JDBC-vs-COPY choice
Every measurement is checked: row count and a fingerprint of every row's text must equal the COPY's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from cryptolake import logs  # noqa: E402
from cryptolake.lake import Lake  # noqa: E402
from cryptolake.local.stack import LocalStack  # noqa: E402
from cryptolake.settings import Settings  # noqa: E402

TABLE = "fact_crypto_market"
GROUP = "5x"  # a group that loads fact_crypto_market (tables.py)
SNAPSHOT_HOURS = (9, 11, 13, 15, 17)  # 5 listings snapshots a weekday, as the 5x group takes them
BASE_EPOCH = 1_780_000_000 // 86400 * 86400  # a UTC midnight in 2026


# -- the candidate: COPY from Spark partitions into the staging table -------------------------------------------
def copy_stage(frame, warehouse_url: str, stage: str, columns: list[str], chunk_bytes: int = 32 << 20) -> int:
    """Write `frame` into the (UNLOGGED) staging table with COPY, one connection per Spark partition.

    A drop-in for TableLoader._write_stage (call it as `copy_stage(frame, <warehouse url>, self.stage,
    self.columns)`). Spark hands each partition to Python as Arrow batches (no per-row Python objects),
    pyarrow writes them as PostgreSQL CSV (NULL unquoted-empty, strings always quoted, so '' stays ''; ISO
    timestamps with Z), and psycopg2 streams ~32 MiB chunks through `COPY ... FROM STDIN`. Each partition
    commits its own rows, as Spark JDBC does (the staging table is read only by the later move transaction);
    as with JDBC, a retried task can stage a row twice, which DO NOTHING absorbs and DO UPDATE refuses. The
    password travels inside the task closure, never as Spark conf. Measured, not adopted: see docs/warehouse.md.
    """
    url = make_url(warehouse_url)
    params = {"host": url.host or "localhost", "port": url.port or 5432, "dbname": url.database,
              "user": url.username, "password": url.password, **dict(url.query)}
    sql = f"COPY {stage} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"

    def write(batches):
        import psycopg2
        import pyarrow as pa
        import pyarrow.csv as pacsv

        options = pacsv.WriteOptions(include_header=False)
        rows, buffer = 0, io.BytesIO()
        with contextlib.closing(psycopg2.connect(**params)) as connection:
            with connection, connection.cursor() as cursor:
                for batch in batches:
                    pacsv.write_csv(batch, buffer, write_options=options)
                    rows += batch.num_rows
                    if buffer.tell() >= chunk_bytes:
                        buffer.seek(0)
                        cursor.copy_expert(sql, buffer)
                        buffer = io.BytesIO()
                if buffer.tell():
                    buffer.seek(0)
                    cursor.copy_expert(sql, buffer)
        yield pa.RecordBatch.from_pydict({"rows": [rows]})

    counts = frame.select(*columns).mapInArrow(write, "rows long").collect()
    return sum(r["rows"] for r in counts)


# -- set-up ----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def silver_rows(spark, coins: int, snapshots: int):
    """coins x snapshots rows in the silver schema: plausible magnitudes, NULLs where listings have them."""
    from pyspark.sql import functions as F

    from cryptolake.spark_apps.transform.tables import TABLES

    def r(seed: int):
        return F.rand(seed)

    snap = (F.col("id") / coins).cast("long")
    hours = F.element_at(F.array(*[F.lit(h) for h in SNAPSHOT_HOURS]), (snap % len(SNAPSHOT_HOURS) + 1).cast("int"))
    seconds = F.lit(BASE_EPOCH) + (snap / len(SNAPSHOT_HOURS)).cast("long") * 86400 + hours * 3600
    ts = F.timestamp_seconds(seconds)
    price = F.exp(r(1) * 16 - 8)
    supply = F.exp(r(2) * 10 + 10)
    cap = price * supply
    frame = spark.range(coins * snapshots).select(
        (F.col("id") % coins + 1).alias("crypto_id"), ts.alias("snapshot_timestamp"),
        (F.col("id") % coins + 1).alias("cmc_rank"), (r(3) * 900).cast("long").alias("num_market_pairs"),
        F.when(r(4) < 0.5, F.lit(1027).cast("long")).alias("platform_id"),
        F.timestamp_seconds(F.lit(1_400_000_000) + (F.col("id") % coins) * 40_000).alias("date_added"),
        (ts - F.expr("INTERVAL 60 SECONDS")).alias("last_updated"),
        (ts - F.expr("INTERVAL 30 SECONDS")).alias("quote_last_updated"),
        price.alias("price_usd"), (cap * r(5) * 0.2).alias("volume_24h_usd"),
        (r(6) * 40 - 20).alias("volume_change_24h"), (r(7) * 4 - 2).alias("percent_change_1h_usd"),
        (r(8) * 20 - 10).alias("percent_change_24h_usd"), (r(9) * 40 - 20).alias("percent_change_7d_usd"),
        (r(10) * 80 - 40).alias("percent_change_30d_usd"), cap.alias("market_cap_usd"),
        (r(11) * 0.01).alias("market_cap_dominance_usd"), (cap * 1.3).alias("fully_diluted_market_cap_usd"),
        F.when(r(12) < 0.1, cap * 0.9).alias("self_reported_market_cap"), supply.alias("circulating_supply"),
        (supply * 1.2).alias("total_supply"), F.when(r(13) < 0.6, supply * 2).alias("max_supply"),
        F.when(r(14) < 0.1, supply).alias("self_reported_circulating_supply"),
        (r(15) < 0.3).alias("infinite_supply"), F.when(r(16) < 0.05, cap * 0.4).alias("tvl_usd"),
        F.when(r(16) < 0.05, F.lit(2.5)).alias("tvl_ratio"), (r(5) * 0.2).alias("volume_to_market_cap_ratio"),
        F.when(r(13) < 0.6, F.lit(0.4)).alias("missing_supply_ratio"),
        F.when(r(13) < 0.6, F.lit(0.5)).alias("supply_utilization"), F.lit(1.3).alias("fully_diluted_cap_ratio"),
        F.concat(F.date_format(ts, "yyyyMMdd'T'HHmmss'Z'"), F.lit("-3f9c2a1b")).alias("run_id"),
        F.concat(F.lit("bronze/crypto_listings_latest/snapshot_date="), F.to_date(ts),
                 F.lit("/"), F.date_format(ts, "HHmmss"), F.lit("-listings.json.gz")).alias("source_file"),
        F.to_date(ts).alias("snapshot_date"))
    schema = TABLES[TABLE].schema
    return frame.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])


def build_silver(spark, settings: Settings, lake: Lake, coins: int, snapshots: int) -> None:
    """Version 0 empty (the transform's own CREATE TABLE, change data feed on) and loaded, so the watermark is
    0; version 1 the rows, so every measured load reads them from the change feed."""
    from cryptolake.spark_apps.load.loader import load_group
    from cryptolake.spark_apps.transform.crypto import CryptoTransformer
    from cryptolake.spark_apps.transform.tables import TABLES

    CryptoTransformer(spark, settings, lake).ensure(TABLES[TABLE])
    if load_group(spark, settings, GROUP, tables=[TABLE], lake=lake).exit_code:
        raise RuntimeError("the load of the empty version 0 failed")
    silver_rows(spark, coins, snapshots).write.format("delta").mode("append").save(
        lake.spark_uri(f"silver/{TABLE}"))


def add_coins(engine, coins: int) -> None:
    with engine.begin() as tx:
        tx.execute(text(
            "INSERT INTO dw.dim_crypto_id (crypto_id, name, symbol, slug, first_seen_timestamp, snapshot_timestamp, "
            "run_id, source_file) SELECT i, 'Coin ' || i, 'C' || i, 'coin-' || i, to_timestamp(:t), "
            "to_timestamp(:t), 'bench', 'bench' FROM generate_series(1, :n) i"), {"n": coins, "t": BASE_EPOCH})


def export_csv(spark, lake: Lake, columns: list[str], out: Path) -> Path:
    """The silver rows as one CSV file in the dw column order, in a form PostgreSQL's COPY csv reads as is."""
    (spark.read.format("delta").load(lake.spark_uri(f"silver/{TABLE}")).select(*columns).coalesce(1)
     .write.option("header", "false").option("timestampFormat", "yyyy-MM-dd HH:mm:ss.SSSSSSXXX")
     .option("dateFormat", "yyyy-MM-dd").csv(str(out)))
    return next(out.glob("part-*.csv"))


# -- measurements ----------------------------------------------------------------------------------------------
def reset(engine, watermark: int | None) -> None:
    """An empty target (same indexes), no staging left, the watermark before version 1, dirty pages flushed."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"TRUNCATE dw.{TABLE}"))
        c.execute(text(f"DROP TABLE IF EXISTS meta.load_stage_{TABLE}"))
        c.execute(text("DELETE FROM meta.rejected_rows"))
        if watermark is not None:
            c.execute(text("UPDATE meta.load_watermark SET delta_version = :v WHERE table_name = :t"),
                      {"v": watermark, "t": TABLE})
        c.execute(text("CHECKPOINT"))


def fingerprint(engine) -> tuple[int, str]:
    """Row count and a sum of hashes of every row's text: equal only if every value arrived the same."""
    with engine.connect() as c:
        c.execute(text("SET TimeZone = 'UTC'"))
        return tuple(c.execute(text(
            f"SELECT count(*), sum(hashtextextended(t::text, 0)::numeric)::text FROM dw.{TABLE} t")).one())


def time_copy(url: str, csv: Path) -> dict:
    import psycopg2

    u = make_url(url)
    with contextlib.closing(psycopg2.connect(host=u.host, port=u.port, dbname=u.database, user=u.username,
                                             password=u.password)) as connection:
        started = time.monotonic()
        with connection, connection.cursor() as cursor, csv.open("rb") as f:
            cursor.copy_expert(f"COPY dw.{TABLE} FROM STDIN WITH (FORMAT csv)", f)
        return {"seconds": time.monotonic() - started}


def time_jdbc(spark, lake: Lake, jdbc, columns: list[str]) -> dict:
    started = time.monotonic()
    (spark.read.format("delta").load(lake.spark_uri(f"silver/{TABLE}")).select(*columns)
     .write.format("jdbc").mode("append").option("url", jdbc.url).option("dbtable", f"dw.{TABLE}")
     .option("driver", "org.postgresql.Driver").option("user", jdbc.user).option("password", jdbc.password)
     .option("batchsize", 5000).option("reWriteBatchedInserts", "true").save())
    return {"seconds": time.monotonic() - started}


@contextlib.contextmanager
def timed_steps(cls, names: tuple[str, ...]):
    """Time the loader's own steps from outside (wrapping, not changing, its methods) for the split."""
    spent: dict[str, float] = {}
    originals = {n: cls.__dict__.get(n) for n in names}

    def wrap(name, method):
        def timed(self, *args, **kwargs):
            started = time.monotonic()
            try:
                return method(self, *args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.monotonic() - started
        return timed

    for n in names:
        setattr(cls, n, wrap(n, getattr(cls, n)))
    try:
        yield spent
    finally:
        for n, original in originals.items():
            if original is None:
                delattr(cls, n)
            else:
                setattr(cls, n, original)


def time_load(spark, settings: Settings, lake: Lake, rows: int, copy: bool) -> dict:
    """One `cryptolake load --group 5x --table fact_crypto_market`; with `copy`, only the staging write differs."""
    from cryptolake.spark_apps.load import loader

    original = loader.TableLoader
    if copy:
        class CopyStageLoader(original):
            def _write_stage(self, frame) -> None:
                copy_stage(frame, settings.warehouse_url, self.stage, self.columns)
        loader.TableLoader = CopyStageLoader
    try:
        with timed_steps(loader.TableLoader, ("_write_stage", "_move")) as spent:
            started = time.monotonic()
            outcome = loader.load_group(spark, settings, GROUP, tables=[TABLE], lake=lake)
            seconds = time.monotonic() - started
    finally:
        loader.TableLoader = original
    result = outcome.tables[0] if outcome.tables else None
    if outcome.exit_code or result is None or result.rows_loaded != rows or result.from_version != 0:
        raise RuntimeError(f"load did not load {rows} rows from the change feed: {outcome}")
    return {"seconds": seconds, "stage_seconds": spent["_write_stage"], "move_seconds": spent["_move"],
            "other_seconds": seconds - spent["_write_stage"] - spent["_move"]}


def time_feed(spark, engine, jdbc, lake: Lake) -> float:
    """The change feed read alone (the loader's own `_changes`, into Spark's noop sink): the staging write's
    time includes it, Spark being lazy, so this splits read from write."""
    from cryptolake.spark_apps.load.loader import TableLoader
    from cryptolake.warehouse.models import DW_TABLES

    loader = TableLoader(spark, engine, jdbc, lake, DW_TABLES[TABLE].__table__, GROUP)
    started = time.monotonic()
    loader._changes(0, 1).write.format("noop").mode("overwrite").save()
    return time.monotonic() - started


def warm_up(spark, engine, lake: Lake, jdbc, url: str, columns: list[str], rows: int = 20_000) -> None:
    """Both staging writers once on a few rows into a scratch table, so neither measurement pays for first use
    (JDBC driver classes, Spark's Python workers importing pyarrow and psycopg2)."""
    scratch = "meta.load_bench_warm_up"
    with engine.begin() as tx:
        tx.execute(text(f"CREATE UNLOGGED TABLE {scratch} AS SELECT * FROM dw.{TABLE} WITH NO DATA"))
    frame = spark.read.format("delta").load(lake.spark_uri(f"silver/{TABLE}")).select(*columns).limit(rows)
    (frame.write.format("jdbc").mode("append").option("url", jdbc.url).option("dbtable", scratch)
     .option("driver", "org.postgresql.Driver").option("user", jdbc.user).option("password", jdbc.password)
     .option("batchsize", 5000).option("reWriteBatchedInserts", "true").save())
    copy_stage(frame.repartition(2), url, scratch, columns)
    with engine.begin() as tx:
        tx.execute(text(f"DROP TABLE {scratch}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coins", type=int, default=5000)
    parser.add_argument("--snapshots", type=int, default=200)
    parser.add_argument("--rows", type=int, default=None, help="shortcut: this many rows (snapshots = rows/coins)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-copy-stage", action="store_true", help="skip the COPY-staging candidate")
    parser.add_argument("--work-dir", type=Path, default=None, help="kept afterwards (default: a temp dir)")
    args = parser.parse_args()
    if args.rows:
        args.snapshots = max(1, args.rows // args.coins)
    rows = args.coins * args.snapshots
    logs.configure(json_lines=False, level=40)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the COPY writer's workers need this venv

    from cryptolake.spark_apps.load.loader import Jdbc
    from cryptolake.spark_apps.session import build_spark_session
    from cryptolake.warehouse.migrate import engine_for, upgrade
    from cryptolake.warehouse.models import DW_TABLES

    base = args.work_dir or Path(tempfile.mkdtemp(prefix="cryptolake-bench-load-"))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    # only its PostgreSQL is started; the S3 and sandbox ports are recorded, never bound
    stack = LocalStack(base / "stack", pg_port=free_port(), s3_port=19300, sandbox_port=18380)
    stack.postgres.up()
    spark = None
    try:
        admin = create_engine(stack.postgres.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text('DROP DATABASE IF EXISTS "load_bench" WITH (FORCE)'))
            c.execute(text('CREATE DATABASE "load_bench"'))
            pg_version = c.execute(text("SHOW server_version")).scalar()
            pg_conf = {k: c.execute(text(f"SHOW {k}")).scalar()
                       for k in ("shared_buffers", "max_wal_size", "synchronous_commit", "wal_level")}
        admin.dispose()
        url = make_url(stack.postgres.url()).set(database="load_bench").render_as_string(hide_password=False)
        engine = engine_for(url)
        upgrade(engine)
        add_coins(engine, args.coins)
        settings = Settings.load(env={"LAKE_URI": (base / "lake").as_uri(), "WAREHOUSE_URL": url})
        lake = Lake.from_settings(settings)
        jdbc = Jdbc.from_settings(settings)
        columns = [c.name for c in DW_TABLES[TABLE].__table__.columns]
        spark = build_spark_session("cryptolake-bench-load", settings, conf={"spark.ui.enabled": "false"})

        print(f"building silver {TABLE}: {args.coins} coins x {args.snapshots} snapshots = {rows} rows in {base}",
              file=sys.stderr)
        started = time.monotonic()
        build_silver(spark, settings, lake, args.coins, args.snapshots)
        csv = export_csv(spark, lake, columns, base / "export")
        build_seconds = time.monotonic() - started

        print("warm-up (JIT, class loading, Python workers, page cache)", file=sys.stderr)
        time_feed(spark, engine, jdbc, lake)
        warm_up(spark, engine, lake, jdbc, url, columns)
        reset(engine, 0)
        time_copy(url, csv)
        reference = fingerprint(engine)
        if reference[0] != rows:
            raise RuntimeError(f"COPY loaded {reference[0]} rows, not {rows}")

        kinds = ["copy", "jdbc", "load"] + ([] if args.no_copy_stage else ["load_copy"])
        runs: dict[str, list[dict]] = {k: [] for k in kinds}
        feed: list[float] = []
        for n in range(args.repeat):
            feed.append(time_feed(spark, engine, jdbc, lake))
            for kind in kinds:
                reset(engine, 0)
                print(f"  repeat {n + 1}/{args.repeat}: {kind}", file=sys.stderr)
                if kind == "copy":
                    run = time_copy(url, csv)
                elif kind == "jdbc":
                    run = time_jdbc(spark, lake, jdbc, columns)
                else:
                    run = time_load(spark, settings, lake, rows, copy=kind == "load_copy")
                got = fingerprint(engine)
                if got != reference:
                    raise RuntimeError(f"{kind} loaded different rows: {got} != {reference}")
                runs[kind].append(run)
                print(f"    {run['seconds']:.1f}s, {rows / run['seconds']:,.0f} rows/s", file=sys.stderr)

        median = {k: statistics.median(r["seconds"] for r in rs) for k, rs in runs.items()}
        rate = {k: rows / s for k, s in median.items()}
        split = {}
        for kind in ("load", "load_copy"):
            if kind in runs:
                stage = statistics.median(r["stage_seconds"] for r in runs[kind])
                split[kind] = {"change_feed_read": round(statistics.median(feed), 2),
                               "staging_write_after_read": round(stage - statistics.median(feed), 2),
                               "move_transaction": round(statistics.median(r["move_seconds"] for r in runs[kind]), 2),
                               "lock_version_ledger_etc": round(statistics.median(
                                   r["other_seconds"] for r in runs[kind]), 2)}
        with engine.connect() as c:
            size = c.execute(text(f"SELECT pg_size_pretty(pg_total_relation_size('dw.{TABLE}'))")).scalar()
        jvm = spark.sparkContext._jvm.java.lang.System
        report = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "java": jvm.getProperty("java.version"), "spark": spark.version,
                        "spark_master": spark.sparkContext.master, "postgresql": pg_version, "postgresql_conf": pg_conf,
                        "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
            "data": {"rows": rows, "coins": args.coins, "snapshots": args.snapshots, "csv_bytes": csv.stat().st_size,
                     "dw_table_size_loaded": size, "setup_seconds": round(build_seconds)},
            "seconds_per_run": {k: [round(r["seconds"], 2) for r in rs] for k, rs in runs.items()},
            "median_seconds": {k: round(v, 2) for k, v in median.items()},
            "rows_per_second": {k: round(v) for k, v in rate.items()},
            "ratio_to_copy": {k: round(v / rate["copy"], 3) for k, v in rate.items() if k != "copy"},
            "load_split_seconds": split,
        }
        print(json.dumps(report, indent=2))
    finally:
        if spark is not None:
            spark.stop()
        stack.postgres.down()
        if not args.work_dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
