-- backup (`cryptolake backup`, pg_dump): reads every table and sequence of the warehouse schemas, writes nothing.
-- The loader cannot dump (no SELECT on dw's sequences) and should not: the backup needs no write. Cluster-wide,
-- so created only when missing, as in 0001/roles.sql.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cryptolake_backup') THEN
        CREATE ROLE cryptolake_backup NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created meanwhile by a concurrent migration of another database
END
$$;

GRANT USAGE ON SCHEMA dw, bi, qa, meta TO cryptolake_backup;
GRANT SELECT ON ALL TABLES IN SCHEMA dw, bi, qa, meta TO cryptolake_backup;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA dw, bi, qa, meta TO cryptolake_backup;
ALTER DEFAULT PRIVILEGES IN SCHEMA dw, bi, qa, meta GRANT SELECT ON TABLES TO cryptolake_backup;
ALTER DEFAULT PRIVILEGES IN SCHEMA dw, bi, qa, meta GRANT SELECT ON SEQUENCES TO cryptolake_backup;
