"""A fresh PostgreSQL database per test module on the shared test stack, dropped at the end, so modules never
see each other's rows; `migrated` is one at head."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cryptolake.warehouse.migrate import engine_for, upgrade


@pytest.fixture(scope="module")
def database_url(stack_env) -> str:
    admin_url = stack_env["WAREHOUSE_URL"]
    name = f"wh_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def engine(database_url):
    engine = engine_for(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def migrated(engine):
    upgrade(engine)
    return engine
