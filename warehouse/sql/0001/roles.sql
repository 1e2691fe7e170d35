-- Group roles (NOLOGIN; cluster-wide, so created only when missing, racing migrations of other databases
-- tolerated) and their privileges in this database. Login users with passwords never come from here: see
-- `cryptolake migrate` and docs/warehouse.md.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['cryptolake_loader', 'cryptolake_analyst', 'cryptolake_admin'] LOOP
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by a concurrent migration of another database
        END;
    END LOOP;
END
$$;

-- loader: reads everything, writes dw and meta, creates its staging tables in meta
GRANT USAGE ON SCHEMA dw, bi, qa, meta TO cryptolake_loader;
GRANT CREATE ON SCHEMA meta TO cryptolake_loader;
GRANT SELECT ON ALL TABLES IN SCHEMA dw, bi, qa, meta TO cryptolake_loader;
GRANT INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA dw, meta TO cryptolake_loader;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA meta TO cryptolake_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA dw, bi, qa, meta GRANT SELECT ON TABLES TO cryptolake_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA dw, meta GRANT INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO cryptolake_loader;
ALTER DEFAULT PRIVILEGES IN SCHEMA meta GRANT USAGE, SELECT ON SEQUENCES TO cryptolake_loader;

-- analyst (BI tools): reads bi, qa and dw; nothing else
GRANT USAGE ON SCHEMA dw, bi, qa TO cryptolake_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA dw, bi, qa TO cryptolake_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA dw, bi, qa GRANT SELECT ON TABLES TO cryptolake_analyst;

-- admin: everything in the warehouse schemas
GRANT ALL ON SCHEMA dw, bi, qa, meta TO cryptolake_admin;
GRANT ALL ON ALL TABLES IN SCHEMA dw, bi, qa, meta TO cryptolake_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA dw, bi, qa, meta TO cryptolake_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA dw, bi, qa, meta GRANT ALL ON TABLES TO cryptolake_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA dw, bi, qa, meta GRANT ALL ON SEQUENCES TO cryptolake_admin;
