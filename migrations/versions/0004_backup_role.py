"""Group role cryptolake_backup: reads the warehouse for pg_dump, writes nothing (warehouse/sql/0004/).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 22:00:00

"""
from typing import Sequence, Union

from cryptolake.migrations import run_sql

revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    run_sql("0004/roles.sql")


def downgrade() -> None:
    run_sql("0004/revoke_backup.sql")
