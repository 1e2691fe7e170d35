"""Alembic environment and revisions of the warehouse schema (`cryptolake migrate`)."""
