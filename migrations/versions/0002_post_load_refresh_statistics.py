"""Post-load procedure meta.refresh_statistics(): ANALYZE the dw tables a load changed (warehouse/sql/0002/).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 14:40:00

"""
from typing import Sequence, Union

from alembic import op

from cryptolake.migrations import run_sql

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    run_sql("0002/refresh_statistics.sql")


def downgrade() -> None:
    op.execute("DROP PROCEDURE meta.refresh_statistics()")
