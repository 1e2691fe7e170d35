"""The PostgreSQL warehouse: models (the schema's single source of truth), the SQL that migrations apply, and
`cryptolake migrate` (Alembic, from the installed package)."""
