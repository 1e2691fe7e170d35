-- qa.table_freshness for the schedules of the pipeline spec (cryptolake/pipeline.yaml): each table by the most
-- frequent group that refreshes it; max_gap is that group's longest gap between two runs (weekday groups: between
-- two weekday runs, weekend days allowed on top) plus one hour of grace. tests/warehouse/test_qa_views.py derives
-- the same rows from the spec, so a schedule change that is not migrated here fails the tests.
CREATE OR REPLACE VIEW qa.table_freshness AS
WITH schedule(table_name, frequency_group, max_gap, weekdays_only) AS (VALUES
    ('dim_exchange_id', 'daily', interval '25 hours', true),
    ('dim_exchange_map', 'daily', interval '25 hours', true),
    ('dim_exchange_info', 'weekly', interval '169 hours', false),
    ('fact_exchange_assets', 'weekly', interval '169 hours', false),
    ('dim_crypto_id', 'daily', interval '25 hours', true),
    ('dim_crypto_map', 'daily', interval '25 hours', true),
    ('dim_crypto_info', 'weekly', interval '169 hours', false),
    ('fact_crypto_market', '10x', interval '16 hours', true),
    ('fact_crypto_daily', '10x', interval '16 hours', true),
    ('dim_crypto_category', '5x', interval '17 hours', true),
    ('link_crypto_category', 'daily', interval '25 hours', true),
    ('fact_crypto_category', '5x', interval '17 hours', true),
    ('fact_global_market', '10x', interval '16 hours', true),
    ('fact_market_sentiment', '10x', interval '16 hours', true)
), latest(table_name, latest_snapshot) AS (
    SELECT 'dim_exchange_id', max(snapshot_timestamp) FROM dw.dim_exchange_id
    UNION ALL SELECT 'dim_exchange_map', max(snapshot_timestamp) FROM dw.dim_exchange_map
    UNION ALL SELECT 'fact_exchange_assets', max(snapshot_timestamp) FROM dw.fact_exchange_assets
    UNION ALL SELECT 'dim_crypto_id', max(snapshot_timestamp) FROM dw.dim_crypto_id
    UNION ALL SELECT 'dim_crypto_map', max(snapshot_timestamp) FROM dw.dim_crypto_map
    UNION ALL SELECT 'link_crypto_category', max(snapshot_timestamp) FROM dw.link_crypto_category
    UNION ALL SELECT 'dim_exchange_info', max(snapshot_timestamp) FROM dw.dim_exchange_info
    UNION ALL SELECT 'dim_crypto_info', max(snapshot_timestamp) FROM dw.dim_crypto_info
    UNION ALL SELECT 'fact_crypto_market', max(snapshot_timestamp) FROM dw.fact_crypto_market
    UNION ALL SELECT 'fact_crypto_daily', max(snapshot_timestamp) FROM dw.fact_crypto_daily
    UNION ALL SELECT 'dim_crypto_category', max(snapshot_timestamp) FROM dw.dim_crypto_category
    UNION ALL SELECT 'fact_crypto_category', max(snapshot_timestamp) FROM dw.fact_crypto_category
    UNION ALL SELECT 'fact_global_market', max(snapshot_timestamp) FROM dw.fact_global_market
    UNION ALL SELECT 'fact_market_sentiment', max(snapshot_timestamp) FROM dw.fact_market_sentiment
), allowed AS (
    SELECT s.table_name, s.frequency_group, l.latest_snapshot,
           s.max_gap + CASE WHEN s.weekdays_only AND l.latest_snapshot IS NOT NULL THEN interval '1 day' * (
               SELECT count(*) FROM generate_series((l.latest_snapshot AT TIME ZONE 'UTC')::date,
                                                    (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d(day)
               WHERE extract(isodow FROM d.day) >= 6) ELSE interval '0' END AS max_age
    FROM schedule s JOIN latest l USING (table_name)
)
SELECT a.table_name, a.frequency_group, a.latest_snapshot,
       extract(epoch FROM now() - a.latest_snapshot)::double precision / 3600 AS age_hours,
       extract(epoch FROM a.max_age)::double precision / 3600 AS max_age_hours,
       a.latest_snapshot IS NULL OR now() - a.latest_snapshot > a.max_age AS is_stale
FROM allowed a;
