"""Alembic environment and revisions of the warehouse schema (`cryptolake migrate`)."""

from __future__ import annotations

from importlib.resources import files

from alembic import op


def run_sql(name: str) -> None:
    """Execute one file of warehouse/sql/ (views, roles): each revision names the files it applies.

    Through the driver's cursor without parameters, so the SQL is sent as written (`%` stays `%`).
    """
    execute_as_written(sql_text(name))


def sql_text(name: str) -> str:
    return (files("cryptolake.warehouse") / "sql" / name).read_text()


def execute_as_written(statements: str) -> None:
    with op.get_bind().connection.dbapi_connection.cursor() as cursor:
        cursor.execute(statements)
