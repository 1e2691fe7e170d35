"""Alembic environment: always online, on the connection `cryptolake.warehouse.migrate` hands over.

The version table lives in `meta`; only the warehouse schemas are compared, so autogenerate sees exactly the
models (tables in dw and meta) and nothing else of the database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from cryptolake.warehouse.migrate import VERSION_SCHEMA, VERSION_TABLE, comparison_options

connection = context.config.attributes["connection"]
connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_SCHEMA}"))
context.configure(connection=connection, version_table=VERSION_TABLE, version_table_schema=VERSION_SCHEMA,
                  **comparison_options())
with context.begin_transaction():
    context.run_migrations()
