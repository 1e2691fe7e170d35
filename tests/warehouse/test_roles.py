"""Group roles and login users: an analyst (BI tool) reads bi, qa and dw and can change nothing; the loader
writes dw and meta but cannot reshape the schema; the backup reads everything pg_dump dumps and writes nothing.
Roles are cluster-wide, so they may already exist."""

from __future__ import annotations

import secrets
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from cryptolake.warehouse.migrate import set_login_user, upgrade

WRITES = {
    "INSERT dw": "INSERT INTO dw.dim_crypto_id (crypto_id, name, symbol, first_seen_timestamp, snapshot_timestamp, "
                 "run_id, source_file) VALUES (1, 'Bitcoin', 'BTC', now(), now(), 'r', 'f')",
    "UPDATE dw": "UPDATE dw.dim_crypto_id SET name = 'x'",
    "DELETE dw": "DELETE FROM dw.fact_crypto_market",
    "TRUNCATE dw": "TRUNCATE dw.fact_crypto_market",
    "INSERT meta": "INSERT INTO meta.load_watermark VALUES ('t', 1, now(), 0, 'r')",
    "UPDATE meta": "UPDATE meta.runs SET status = 'x'",
    "DELETE meta": "DELETE FROM meta.rejected_rows",
    **{f"CREATE {schema}": f"CREATE TABLE {schema}.intruder (x int)" for schema in ("dw", "meta", "bi", "qa")},
    "CREATE VIEW bi": "CREATE VIEW bi.intruder AS SELECT 1 AS x",
    "DROP dw": "DROP TABLE dw.fact_crypto_market",
}


def login(database_url: str, group: str, migrated):
    password = secrets.token_urlsafe(16)
    user = set_login_user(migrated, group, password)
    set_login_user(migrated, group, password)  # a second run only sets the password again
    engine = create_engine(make_url(database_url).set(username=user, password=password))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def analyst(database_url, migrated):
    yield from login(database_url, "cryptolake_analyst", migrated)


@pytest.fixture(scope="module")
def loader(database_url, migrated):
    yield from login(database_url, "cryptolake_loader", migrated)


@pytest.fixture(scope="module")
def backup(database_url, migrated):
    yield from login(database_url, "cryptolake_backup", migrated)


def test_migrating_again_with_the_roles_in_place_changes_nothing(migrated):
    upgrade(migrated)
    with migrated.connect() as connection:
        found = connection.execute(text("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN "
                                        "('cryptolake_loader', 'cryptolake_analyst', 'cryptolake_admin', "
                                        "'cryptolake_backup')")).all()
    assert sorted(found) == [("cryptolake_admin", False), ("cryptolake_analyst", False), ("cryptolake_backup", False),
                             ("cryptolake_loader", False)]


def test_the_analyst_reads_bi_qa_and_dw(analyst):
    with analyst.connect() as connection:
        for relation in ("bi.market_overview", "bi.top_movers", "qa.table_freshness", "qa.rejected_rows_by_reason",
                         "qa.load_latency", "dw.fact_crypto_market", "dw.dim_crypto_id"):
            connection.execute(text(f"SELECT * FROM {relation} LIMIT 1")).all()


@pytest.mark.parametrize("what", list(WRITES) + ["SELECT meta"])
def test_the_analyst_cannot_write_anything_or_read_meta(analyst, what):
    sql = WRITES.get(what, "SELECT * FROM meta.load_watermark")
    with analyst.connect() as connection, pytest.raises(ProgrammingError, match="permission denied|must be owner"):
        connection.execute(text(sql))


def test_the_backup_reads_every_table_and_sequence_and_writes_nothing(backup):
    """What pg_dump reads: the tables of every warehouse schema and the sequences' positions (which the loader
    may not read, so it could not take a backup)."""
    with backup.connect() as connection:
        for relation in ("dw.fact_crypto_market", "dw.dim_crypto_id", "meta.runs", "meta.rejected_rows",
                         "meta.load_watermark", "meta.alembic_version", "bi.market_overview", "qa.table_freshness"):
            connection.execute(text(f"SELECT * FROM {relation} LIMIT 1")).all()
        sequences = connection.execute(text("SELECT schemaname || '.' || sequencename FROM pg_sequences "
                                            "WHERE schemaname IN ('dw', 'meta')")).scalars().all()
        assert sequences
        for sequence in sequences:
            connection.execute(text(f"SELECT last_value FROM {sequence}")).one()
    for what, sql in WRITES.items():
        with backup.connect() as connection, pytest.raises(ProgrammingError, match="permission denied|must be owner"):
            connection.execute(text(sql))


def test_the_loader_writes_dw_and_meta_but_cannot_change_the_schema(loader):
    with loader.connect() as connection:
        transaction = connection.begin()
        connection.execute(text(WRITES["INSERT dw"]))
        connection.execute(text(WRITES["INSERT meta"]))
        connection.execute(text("INSERT INTO meta.rejected_rows (table_name, row_key, reason, row_data, first_seen_at, "
                                "last_seen_at, attempts) VALUES ('t', '{}', 'r', '{}', now(), now(), 1)"))
        assert connection.execute(text("SELECT count(*) FROM bi.latest_quote")).scalar() == 0
        transaction.rollback()
        for what in ("CREATE dw", "CREATE bi", "DROP dw"):
            with pytest.raises(ProgrammingError, match="permission denied|must be owner"):
                connection.execute(text(WRITES[what]))
            connection.rollback()


def test_the_loader_refreshes_statistics_after_a_load_and_the_analyst_cannot(loader, analyst):
    """The spec's post-load SQL: ANALYZE runs as the tables' owner, for the tables the load changed."""
    with loader.begin() as connection:
        connection.execute(text(WRITES["INSERT dw"].replace("(1, ", "(424242, ")))
    with loader.begin() as connection:
        connection.execute(text("CALL meta.refresh_statistics()"))
    for _ in range(50):  # activity statistics reach the views asynchronously
        with loader.connect() as connection:
            analyzed = connection.execute(text(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE schemaname = 'dw' AND relname = 'dim_crypto_id'")).scalar()
        if analyzed:
            break
        time.sleep(0.1)
    assert analyzed
    with analyst.connect() as connection, pytest.raises(ProgrammingError, match="permission denied"):
        connection.execute(text("CALL meta.refresh_statistics()"))
