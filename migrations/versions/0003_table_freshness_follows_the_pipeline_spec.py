"""qa.table_freshness follows the pipeline spec's groups and schedules (warehouse/sql/0003/).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 14:55:00

"""
from typing import Sequence, Union

from cryptolake.migrations import execute_as_written, run_sql, sql_text

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    run_sql("0003/table_freshness.sql")


def downgrade() -> None:
    """Back to 0001's definition, taken from the file 0001 applied (its columns are the same)."""
    views = sql_text("0001/qa_views.sql")
    start = views.index("CREATE VIEW qa.table_freshness AS")
    statement = views[start:views.index(";\n", start) + 1]
    execute_as_written(statement.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
