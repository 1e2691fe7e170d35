"""A fresh PostgreSQL database per test module on the shared test stack, dropped at the end, so modules never
see each other's rows; `migrated` is one at head."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cryptolake.warehouse.migrate import engine_for, upgrade


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the server of `admin_url` (a superuser URL); yields its URL, drops it after."""
    name = f"wh_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def database_url(stack_env) -> Iterator[str]:
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        yield url


@pytest.fixture(scope="module")
def engine(database_url):
    engine = engine_for(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def migrated(engine):
    upgrade(engine)
    return engine


@pytest.fixture
def conn(migrated):
    """A connection whose rows vanish after the test (rolled back), so each view test sees only its own rows."""
    with migrated.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


def add(connection, model, *rows: dict) -> None:
    """Insert hand-made rows (each with its own columns, the rest NULL); lineage, snapshot_date and
    first_seen_timestamp get defaults when not given."""
    columns = model.__table__.columns
    for row in rows:
        row = {"run_id": "20261126T080000Z-test01", "source_file": "bronze/test/test.parquet", **row}
        if "snapshot_date" in columns and "snapshot_date" not in row:
            row["snapshot_date"] = row["snapshot_timestamp"].date()
        if "first_seen_timestamp" in columns and "first_seen_timestamp" not in row:
            row["first_seen_timestamp"] = row["snapshot_timestamp"]
        connection.execute(model.__table__.insert(), row)


def rows(connection, sql: str, **params) -> list[dict]:
    return [dict(r) for r in connection.execute(text(sql), params).mappings()]
