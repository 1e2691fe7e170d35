"""Backups against the real test stack: a restore drill (migrate, seed, back up, restore into another fresh
database, same counts and checksums), refusal of a non-empty target, retention, ids, secrets, the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cryptolake import backup as backups
from cryptolake.errors import CryptolakeError
from cryptolake.settings import Settings
from cryptolake.warehouse import models
from cryptolake.warehouse.migrate import engine_for, upgrade
from tests.conftest import REPO
from tests.warehouse.conftest import add, fresh_database

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
SEEDED = {"dw.dim_crypto_id": 3, "dw.fact_crypto_market": 6, "dw.fact_global_market": 2, "meta.runs": 2,
          "meta.load_watermark": 2, "meta.rejected_rows": 1}


def seed(engine) -> None:
    with engine.begin() as conn:
        add(conn, models.DimCryptoId, *({"crypto_id": i, "name": n, "symbol": s, "snapshot_timestamp": T0}
                                        for i, n, s in ((1, "Bitcoin", "BTC"), (1027, "Ethereum", "ETH"),
                                                        (5426, "Solana", "SOL"))))
        add(conn, models.FactCryptoMarket, *({"crypto_id": i, "snapshot_timestamp": T0 + timedelta(hours=h),
                                              "price_usd": p * (1 + h / 7), "cmc_rank": r,
                                              "market_cap_usd": p * 19_700_000.123456789}
                                             for h in (0, 12) for i, p, r in ((1, 91234.56789012345, 1),
                                                                               (1027, 3012.1, 2), (5426, 0.1 + 0.2, 5))))
        add(conn, models.FactGlobalMarket, *({"snapshot_timestamp": T0 + timedelta(days=d), "last_updated": T0,
                                              "active_cryptocurrencies": 9000 + d} for d in (0, 1)))
        conn.execute(models.Run.__table__.insert(), [
            {"run_id": f"20261120T08000{k}Z-abc", "step": "extract", "name": "crypto_map", "started_at": T0,
             "ended_at": T0 + timedelta(seconds=3), "status": "success", "rows": 10, "credits": 1, "files": 1,
             "upstream": {"versions": [k, "ü €"]}, "error": None} for k in (1, 2)])
        conn.execute(models.LoadWatermark.__table__.insert(), [
            {"table_name": t, "delta_version": 4, "loaded_at": T0, "rows": 7, "run_id": None}
            for t in ("dim_crypto_id", "fact_crypto_market")])
        conn.execute(models.RejectedRow.__table__.insert(), {
            "table_name": "fact_crypto_market", "row_key": {"crypto_id": 99}, "reason": "unknown crypto_id",
            "row_data": {"crypto_id": 99, "price_usd": 1.5}, "first_seen_at": T0, "last_seen_at": T0, "attempts": 2})


@pytest.fixture(scope="module")
def admin_url(stack_env) -> str:
    return stack_env["WAREHOUSE_URL"]


@pytest.fixture(scope="module")
def source_url(admin_url):
    with fresh_database(admin_url) as url:
        engine = engine_for(url)
        upgrade(engine)
        seed(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="module")
def lake_uri() -> str:
    return f"s3://cryptolake/tests/backups-{uuid.uuid4().hex}"


def settings(stack_env, source_url, lake_uri, **extra) -> Settings:
    return Settings.load(env={**stack_env, "LAKE_URI": lake_uri, "WAREHOUSE_URL": source_url, **extra})


@pytest.fixture(scope="module")
def made(stack_env, source_url, lake_uri) -> backups.BackupResult:
    return backups.backup(settings(stack_env, source_url, lake_uri))


def _per_table(url: str, read) -> dict:
    """`read(cursor, table)` for every dw and meta table but the loader's staging ones, found here (not by
    cryptolake/backup.py) on a connection of our own, its session in UTC with ISO dates (as CHECKSUM_METHOD says)."""
    u = make_url(url)
    connection = psycopg2.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
            cursor.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('dw', 'meta') "
                           "AND tablename NOT LIKE 'load\\_stage\\_%'")
            return {f"{schema}.{name}": read(cursor, sql.Identifier(schema, name))
                    for schema, name in cursor.fetchall()}
    finally:
        connection.close()


def contents(url: str) -> dict[str, tuple[int, str]]:
    """Every table's (rows, sha256 of its sorted `COPY ... TO STDOUT` lines): an independent path to compare a
    restore with its source (not the checksum function that wrote the manifest)."""
    def read(cursor, table) -> tuple[int, str]:
        out = io.StringIO()
        cursor.copy_expert(sql.SQL("COPY {} TO STDOUT").format(table), out)
        lines = sorted(out.getvalue().splitlines())
        return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()

    return _per_table(url, read)


def manifest_checksums(url: str) -> dict:
    """Every table's count and checksum by the manifest's documented method (backup.CHECKSUM_METHOD), restated:
    the database gives each row's md5(row::text), the sums of their signed first and last 64 bits are done here."""
    def signed(hex_digits: str) -> int:
        value = int(hex_digits, 16)
        return value - (1 << 64) if value >= 1 << 63 else value

    def read(cursor, table) -> dict:
        cursor.execute(sql.SQL("SELECT md5(t::text) FROM {} AS t").format(table))
        hashes = [row[0] for row in cursor.fetchall()]
        first, last = sum(signed(h[:16]) for h in hashes), sum(signed(h[16:]) for h in hashes)
        return {"rows": len(hashes), "checksum": hashlib.md5(f"{first}:{last}".encode()).hexdigest()}

    return _per_table(url, read)


def scalar(url: str, query: str):
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar()
    finally:
        engine.dispose()


def test_restore_drill_gives_identical_tables(stack_env, admin_url, source_url, lake_uri, made):
    manifest = made.manifest
    assert re.fullmatch(r"\d{8}T\d{6}Z", made.id) and manifest["id"] == made.id
    assert manifest["tables"] == manifest_checksums(source_url)
    source = contents(source_url)
    assert set(source) == set(manifest["tables"])
    for table, rows in SEEDED.items():
        assert manifest["tables"][table]["rows"] == rows
    assert set(manifest["tables"]) >= {f"dw.{t.name}" for t in models.Base.metadata.sorted_tables
                                       if t.schema == "dw"} | {"meta.alembic_version"}
    assert manifest["schema_revision"] == scalar(source_url, "SELECT version_num FROM meta.alembic_version")
    assert manifest["server_version"] == scalar(source_url, "SHOW server_version")
    lake = backups.Lake.from_settings(settings(stack_env, source_url, lake_uri))
    assert lake.list_files(f"gold/backups/{made.id}") == [f"gold/backups/{made.id}/manifest.json",
                                                          f"gold/backups/{made.id}/warehouse.dump"]
    dump = lake.read_bytes(f"gold/backups/{made.id}/warehouse.dump")
    assert dump[:5] == b"PGDMP" and len(dump) == manifest["dump"]["bytes"]
    assert backups.hashlib.sha256(dump).hexdigest() == manifest["dump"]["sha256"]

    with fresh_database(admin_url) as target:
        lines = backups.restore(settings(stack_env, source_url, lake_uri), made.id, target=target)
        assert "verified" in lines[-1] and made.id in lines[-1]
        assert contents(target) == source
        # a row's exact text survives (floats, timestamps, JSON with non-ASCII)
        query = "SELECT string_agg(t::text, '|' ORDER BY t::text) FROM meta.runs t"
        assert scalar(target, query) == scalar(source_url, query)
        # grants re-applied by the migrations' roles SQL; objects belong to the restoring user
        assert scalar(target, "SELECT has_table_privilege('cryptolake_analyst', 'dw.fact_crypto_market', 'SELECT')")
        assert not scalar(target, "SELECT has_table_privilege('cryptolake_analyst', 'meta.runs', 'SELECT')")
        assert scalar(target, "SELECT has_table_privilege('cryptolake_loader', 'meta.runs', 'INSERT')")
        assert scalar(target, "SELECT tableowner FROM pg_tables WHERE schemaname = 'dw' "
                              "AND tablename = 'fact_crypto_market'") == make_url(admin_url).username
        assert scalar(target, "SELECT count(*) FROM bi.latest_quote") == 3  # views came along


def test_the_backup_login_takes_the_same_backup_and_its_grants_survive_a_restore(stack_env, admin_url, source_url,
                                                                                 made):
    """The Kubernetes backup pod logs in as cryptolake_backup_user (read-only), not as the owner: pg_dump and the
    checksums need nothing more, and the restored database grants the backup role again."""
    import secrets as random

    from cryptolake.warehouse.migrate import set_login_user

    password = random.token_hex(12)
    engine = engine_for(source_url)
    try:
        user = set_login_user(engine, "cryptolake_backup", password)
    finally:
        engine.dispose()
    login = make_url(source_url).set(username=user, password=password).render_as_string(hide_password=False)
    lake_uri = f"s3://cryptolake/tests/backups-{uuid.uuid4().hex}"  # its own: the module's lake keeps one backup
    result = backups.backup(settings(stack_env, login, lake_uri))
    assert result.manifest["tables"] == made.manifest["tables"] and result.manifest["database"] == made.manifest[
        "database"]
    with fresh_database(admin_url) as target:
        backups.restore(settings(stack_env, source_url, lake_uri), result.id, target=target)
        assert scalar(target, "SELECT has_sequence_privilege('cryptolake_backup', "
                              "'dw.dim_crypto_id_crypto_id_seq', 'SELECT')")
        assert not scalar(target, "SELECT has_table_privilege('cryptolake_backup', 'dw.fact_crypto_market', 'INSERT')")


def test_checksums_see_a_changed_value(made, admin_url, stack_env, source_url, lake_uri):
    with fresh_database(admin_url) as target:
        backups.restore(settings(stack_env, source_url, lake_uri), made.id, target=target)
        engine = engine_for(target)
        with engine.begin() as conn:
            conn.execute(text("UPDATE dw.fact_crypto_market SET price_usd = price_usd + 1e-9 WHERE crypto_id = 1 "
                              "AND snapshot_timestamp = :t"), {"t": T0})
        engine.dispose()
        connection = backups._connect(make_url(target))
        with connection.cursor() as cursor:
            problems = backups.verify(cursor, made.manifest)
        connection.close()
        assert len(problems) == 1 and problems[0].startswith("dw.fact_crypto_market: 6 rows, checksum")


def test_restore_refuses_a_non_empty_target_unless_forced(made, admin_url, stack_env, source_url, lake_uri):
    config = settings(stack_env, source_url, lake_uri)
    with fresh_database(admin_url) as target:
        backups.restore(config, made.id, target=target)
        engine = engine_for(target)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dw.fact_crypto_market WHERE crypto_id = 5426"))
        name = make_url(target).database
        with pytest.raises(CryptolakeError) as refused:
            backups.restore(config, made.id, target=target)
        message = str(refused.value)
        assert f"restore target database '{name}' is not empty" in message and "--force" in message
        assert "\n" not in message
        assert scalar(target, "SELECT count(*) FROM dw.fact_crypto_market") == 4  # untouched
        lines = backups.restore(config, made.id, target=target, force=True)
        assert "verified" in lines[-1]
        assert manifest_checksums(target) == made.manifest["tables"]
        engine.dispose()


def test_unknown_and_malformed_ids(made, stack_env, source_url, lake_uri):
    config = settings(stack_env, source_url, lake_uri)
    with pytest.raises(CryptolakeError, match=rf"backup '20200101T000000Z' not found .*Latest backups: {made.id}"):
        backups.restore(config, "20200101T000000Z")
    with pytest.raises(CryptolakeError, match="not a backup id"):
        backups.restore(config, "latest")
    with pytest.raises(CryptolakeError, match="no backups there yet"):
        backups.restore(settings(stack_env, source_url, f"{lake_uri}-empty"), "20200101T000000Z")


def test_ids_are_utc_seconds_and_never_reused_and_retention_keeps_backup_keep(stack_env, source_url, tmp_path):
    lake_uri = (tmp_path / "lake").as_uri()
    config = settings(stack_env, source_url, lake_uri, BACKUP_KEEP="2")
    lake = backups.Lake.from_settings(config)
    # a failed backup (dump, no manifest) from two hours ago, and one under way (fresh dump, no manifest)
    for stale_id, age in (("20261120T060000Z", timedelta(hours=2)), ("20261120T075959Z", timedelta(0))):
        lake.write_bytes(f"gold/backups/{stale_id}/warehouse.dump", b"partial")
        mtime = (datetime.now(timezone.utc) - age).timestamp()
        os.utime(tmp_path / "lake" / "gold" / "backups" / stale_id / "warehouse.dump", (mtime, mtime))
    lake.write_bytes("gold/backups/notes/readme.txt", b"not a backup: left alone")

    local = T0.astimezone(timezone(timedelta(hours=2)))  # ids are UTC whatever zone `now` comes in
    first = backups.backup(config, now=local + timedelta(microseconds=400))
    assert first.id == "20261120T080000Z" and first.deleted == ["20261120T060000Z"]
    second = backups.backup(config, now=local)  # same second: the next free one
    assert second.id == "20261120T080001Z" and second.deleted == []
    third = backups.backup(config, now=T0 + timedelta(days=1))
    assert third.id == "20261121T080000Z" and third.deleted == ["20261120T080000Z"]
    assert backups.complete_backups(lake) == ["20261120T080001Z", "20261121T080000Z"]
    assert lake.exists("gold/backups/20261120T075959Z/warehouse.dump")  # under way: kept
    assert lake.exists("gold/backups/notes/readme.txt")
    assert not (tmp_path / "lake" / "gold" / "backups" / "20261120T080000Z").exists()
    # the newest is never deleted, even when the clock went back and older ids are "newer"
    fourth = backups.backup(config, now=T0 - timedelta(days=30))
    assert fourth.id == "20261021T080000Z" and fourth.deleted == ["20261120T080001Z"]
    assert backups.complete_backups(lake) == ["20261021T080000Z", "20261121T080000Z"]


def test_lake_delete_and_staged_file(lake, tmp_path):
    with lake.staged_file("gold/x/big.bin") as path:
        Path(path).write_bytes(b"x" * 1000)
        assert not lake.exists("gold/x/big.bin")  # published only when the block ends
    assert lake.read_bytes("gold/x/big.bin") == b"x" * 1000
    assert lake.read_to_file("gold/x/big.bin", str(tmp_path / "copy")) == 1000
    assert (tmp_path / "copy").read_bytes() == b"x" * 1000
    assert abs(lake.modified("gold/x/big.bin") - datetime.now(timezone.utc)) < timedelta(minutes=5)
    with pytest.raises(CryptolakeError, match="already exists"):
        with lake.staged_file("gold/x/big.bin"):
            pass
    with pytest.raises(RuntimeError):
        with lake.staged_file("gold/x/failed.bin") as path:
            Path(path).write_bytes(b"half")
            raise RuntimeError("pg_dump died")
    assert not lake.exists("gold/x/failed.bin")
    lake.delete("gold/x/big.bin")
    lake.delete("gold/x/big.bin")  # gone already: no error
    assert lake.list_files("gold") == [] and lake.modified("gold/x/big.bin") is None


def test_clear_errors(stack_env, source_url, tmp_path, monkeypatch):
    with pytest.raises(CryptolakeError, match="WAREHOUSE_URL is not set"):
        backups.backup(Settings.load(env={"LAKE_URI": (tmp_path / "l").as_uri()}))
    closed = make_url(source_url).set(port=1).render_as_string(hide_password=False)
    with pytest.raises(CryptolakeError, match="cannot reach the warehouse database"):
        backups.backup(settings(stack_env, closed, (tmp_path / "l").as_uri()))
    (tmp_path / "file").write_text("a file where the lake should be")
    with pytest.raises(CryptolakeError, match="the lake is not writable"):
        backups.backup(settings(stack_env, source_url, (tmp_path / "file" / "lake").as_uri()))
    monkeypatch.setattr(backups.glob, "glob", lambda pattern: [])
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PG_BIN", raising=False)
    with pytest.raises(CryptolakeError, match="pg_dump was not found.*apt-get install postgresql-client"):
        backups.backup(settings(stack_env, source_url, (tmp_path / "l").as_uri()))
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    fake.chmod(0o755)
    with pytest.raises(CryptolakeError, match="pg_dump is older than the PostgreSQL 1[0-9] server"):
        backups.backup(settings(stack_env, source_url, (tmp_path / "l").as_uri()))
    assert not list((tmp_path / "l").rglob("*.dump"))


def test_cli_backup_prints_the_id_and_keeps_secrets(stack_env, admin_url, source_url, lake_uri):
    password = make_url(source_url).password
    assert password and len(password) >= 8
    env = {**os.environ, **stack_env, "LAKE_URI": lake_uri, "WAREHOUSE_URL": source_url}
    done = subprocess.run([str(REPO / ".venv/bin/cryptolake"), "--log-json", "backup"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    backup_id = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d{8}T\d{6}Z", backup_id) and done.stdout.strip() == backup_id
    logs = [json.loads(line) for line in done.stderr.splitlines()]
    assert any(backup_id in line["msg"] and "complete" in line["msg"] for line in logs)
    lake = backups.Lake.from_settings(settings(stack_env, source_url, lake_uri))
    manifest = lake.read_bytes(f"gold/backups/{backup_id}/manifest.json").decode()
    assert json.loads(manifest)["id"] == backup_id

    # restore from the CLI: refuses the non-empty source, then a drill into a fresh database
    refused = subprocess.run([str(REPO / ".venv/bin/cryptolake"), "--log-json", "restore", backup_id], env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and refused.stdout == ""
    errors = [line for line in refused.stderr.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and not refused.stderr.strip().startswith("{")
    assert errors[0].startswith(f"error: restore target database '{make_url(source_url).database}' is not empty")
    assert not [log for log in map(json.loads, (line for line in refused.stderr.splitlines() if line.startswith("{")))
                if "plugin" in log["msg"]]  # alembic's registry stays quiet
    unknown = subprocess.run([str(REPO / ".venv/bin/cryptolake"), "restore", "20200101T000000Z"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 1 and backup_id in unknown.stderr
    with fresh_database(admin_url) as target:
        restored = subprocess.run([str(REPO / ".venv/bin/cryptolake"), "--log-json", "restore", backup_id,
                                   "--target", target], env=env, capture_output=True, text=True, timeout=300)
        assert restored.returncode == 0, restored.stderr
        assert "verified" in restored.stdout
    for output in (done.stdout, done.stderr, manifest, refused.stderr, unknown.stderr, restored.stdout,
                   restored.stderr):
        assert password not in output
    # the password reaches pg_dump only through its environment, never its command line
    assert "PGPASSWORD" not in " ".join(backups._conninfo(make_url(source_url)))
    assert password not in backups._conninfo(make_url(source_url))


def test_a_database_without_the_warehouse_schema_is_refused(admin_url, stack_env, tmp_path):
    with fresh_database(admin_url) as empty:
        with pytest.raises(CryptolakeError, match="has no warehouse schema.*cryptolake migrate"):
            backups.backup(settings(stack_env, empty, (tmp_path / "l").as_uri()))


def test_consistency_backup_during_concurrent_writes(made, admin_url, stack_env, source_url, tmp_path):
    """Rows committed while the dump runs are in neither the dump nor the manifest: both come from one snapshot."""
    import threading

    engine = engine_for(source_url)
    stop = threading.Event()
    written = []

    def writer():
        k = 0
        while not stop.is_set():
            k += 1
            with engine.begin() as conn:
                conn.execute(models.LoadWatermark.__table__.insert(),
                             {"table_name": f"concurrent_{k}", "delta_version": k, "loaded_at": T0, "rows": k})
            written.append(k)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = backups.backup(settings(stack_env, source_url, (tmp_path / "lake").as_uri()))
    finally:
        stop.set()
        thread.join()
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM meta.load_watermark WHERE table_name LIKE 'concurrent\\_%'"))
    engine.dispose()
    assert written, "the writer never committed"
    with fresh_database(admin_url) as target:
        backups.restore(settings(stack_env, source_url, (tmp_path / "lake").as_uri()), result.id, target=target)
        assert manifest_checksums(target) == result.manifest["tables"]
        assert scalar(target, "SELECT count(*) FROM meta.load_watermark") == result.manifest["tables"][
            "meta.load_watermark"]["rows"]
