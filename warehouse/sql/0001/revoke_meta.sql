-- Downgrade to base keeps the meta schema (Alembic's version table): take back what roles.sql granted on it.
ALTER DEFAULT PRIVILEGES IN SCHEMA meta REVOKE ALL ON TABLES FROM cryptolake_loader, cryptolake_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA meta REVOKE ALL ON SEQUENCES FROM cryptolake_loader, cryptolake_admin;
REVOKE ALL ON SCHEMA meta FROM cryptolake_loader, cryptolake_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA meta FROM cryptolake_loader, cryptolake_admin;
