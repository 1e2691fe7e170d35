"""Migrations are the only way the schema changes, so they must equal the models, run up and down on an empty
database, and be idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from cryptolake.warehouse.migrate import comparison_options, current, downgrade, upgrade
from cryptolake.warehouse.models import Base


def schema_objects(engine) -> dict[str, list[str]]:
    inspector = inspect(engine)
    return {schema: sorted(inspector.get_table_names(schema) + inspector.get_view_names(schema))
            for schema in ("dw", "bi", "qa", "meta") if schema in inspector.get_schema_names()}


def test_the_migrations_create_exactly_what_the_models_describe(migrated):
    with migrated.connect() as connection:
        context = MigrationContext.configure(connection, opts=comparison_options())
        assert compare_metadata(context, Base.metadata) == []


def test_up_down_and_up_again_on_an_empty_database_and_upgrading_twice_changes_nothing(engine):
    upgrade(engine)
    at_head = schema_objects(engine)
    assert len(at_head["dw"]) == 14 and "fact_crypto_market" in at_head["dw"]
    assert {"load_watermark", "rejected_rows", "runs", "alembic_version"} <= set(at_head["meta"])
    assert "market_overview" in at_head["bi"] and "table_freshness" in at_head["qa"]
    upgrade(engine)
    assert schema_objects(engine) == at_head and current(engine) == "0004"

    downgrade(engine, "base")
    assert current(engine) is None
    assert schema_objects(engine) == {"meta": ["alembic_version"]}

    upgrade(engine)
    assert schema_objects(engine) == at_head


def test_tables_and_columns_carry_their_comments_in_the_database(migrated):
    with migrated.connect() as connection:
        table = connection.execute(text("SELECT obj_description('dw.fact_crypto_market'::regclass)")).scalar()
        column = connection.execute(text(
            "SELECT col_description('dw.fact_crypto_market'::regclass, attnum) FROM pg_attribute "
            "WHERE attrelid = 'dw.fact_crypto_market'::regclass AND attname = 'price_usd'")).scalar()
        view = connection.execute(text("SELECT obj_description('bi.market_overview'::regclass)")).scalar()
    assert table.startswith("Market quotes in USD") and column == "price (USD)" and "dominance" in view


def test_cryptolake_migrate_upgrades_idempotently_downgrades_and_never_shows_the_password(database_url, engine):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAREHOUSE_", "CMC_", "LAKE_"))}

    def migrate(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(Path(sys.executable).parent / "cryptolake"), "migrate", *args], text=True,
                              capture_output=True, env={**env, "WAREHOUSE_URL": database_url}, timeout=120)
        assert make_url(database_url).password not in done.stdout + done.stderr
        return done

    for _ in range(2):
        done = migrate()
        assert done.returncode == 0 and done.stdout == "warehouse at revision 0004 (head)\n", done.stderr
    done = migrate("--downgrade", "nope")
    assert done.returncode == 1 and done.stderr.splitlines()[-1].startswith("error: cannot migrate: ")
    done = migrate("--downgrade", "base")
    assert done.returncode == 0 and done.stdout == "warehouse at revision base\n" and current(engine) is None
    assert migrate().returncode == 0 and current(engine) == "0004"
