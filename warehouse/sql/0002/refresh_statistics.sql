-- Post-load SQL (the pipeline spec's post_load_sql): planner statistics for the dw tables a load changed, so BI
-- queries plan on today's row counts instead of waiting for autovacuum. ANALYZE needs the table owner
-- (PostgreSQL 15 has no MAINTAIN privilege), hence SECURITY DEFINER with a pinned search_path; the loader may
-- call it, nobody else.
CREATE OR REPLACE PROCEDURE meta.refresh_statistics()
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stale record;
BEGIN
    FOR stale IN
        SELECT schemaname, relname FROM pg_stat_user_tables
        WHERE schemaname = 'dw' AND (n_mod_since_analyze > 0 OR coalesce(last_analyze, last_autoanalyze) IS NULL)
        ORDER BY relname
    LOOP
        EXECUTE format('ANALYZE %I.%I', stale.schemaname, stale.relname);
    END LOOP;
END
$$;

REVOKE ALL ON PROCEDURE meta.refresh_statistics() FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE meta.refresh_statistics() TO cryptolake_loader, cryptolake_admin;
