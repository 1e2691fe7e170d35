-- Monitoring views: is each table fresh against its schedule, do counts and NULL rates look normal, are there
-- dangling references or impossible values, how late do loads land, what did the loader reject.

-- Schedules (DESIGN: Airflow, weekdays only but weekly): daily 08:20, weekly Monday 08:00, 5x 09-17 every 2h,
-- 10x 10:30-19:30 hourly. max_gap is the longest gap between two weekday runs plus one hour of grace; weekend
-- days between the latest snapshot and now are allowed on top. A table's group follows tables.py (tested).
CREATE VIEW qa.table_freshness AS
WITH schedule(table_name, frequency_group, max_gap, weekdays_only) AS (VALUES
    ('dim_exchange_id', 'daily', interval '25 hours', true),
    ('dim_exchange_map', 'daily', interval '25 hours', true),
    ('fact_exchange_assets', 'daily', interval '25 hours', true),
    ('dim_crypto_id', 'daily', interval '25 hours', true),
    ('dim_crypto_map', 'daily', interval '25 hours', true),
    ('link_crypto_category', 'daily', interval '25 hours', true),
    ('dim_exchange_info', 'weekly', interval '169 hours', false),
    ('dim_crypto_info', 'weekly', interval '169 hours', false),
    ('fact_crypto_market', '5x', interval '17 hours', true),
    ('fact_crypto_daily', '5x', interval '17 hours', true),
    ('dim_crypto_category', '10x', interval '16 hours', true),
    ('fact_crypto_category', '10x', interval '16 hours', true),
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
COMMENT ON VIEW qa.table_freshness IS
    'Per dw table: latest snapshot, its age and the age its schedule allows (hours); is_stale when older or empty';

CREATE VIEW qa.snapshot_row_counts AS
WITH counts(table_name, snapshot_timestamp, row_count) AS (
    SELECT 'dim_exchange_map', snapshot_timestamp, count(*) FROM dw.dim_exchange_map GROUP BY 2
    UNION ALL SELECT 'dim_exchange_info', snapshot_timestamp, count(*) FROM dw.dim_exchange_info GROUP BY 2
    UNION ALL SELECT 'fact_exchange_assets', snapshot_timestamp, count(*) FROM dw.fact_exchange_assets GROUP BY 2
    UNION ALL SELECT 'dim_crypto_map', snapshot_timestamp, count(*) FROM dw.dim_crypto_map GROUP BY 2
    UNION ALL SELECT 'dim_crypto_info', snapshot_timestamp, count(*) FROM dw.dim_crypto_info GROUP BY 2
    UNION ALL SELECT 'fact_crypto_market', snapshot_timestamp, count(*) FROM dw.fact_crypto_market GROUP BY 2
    UNION ALL SELECT 'link_crypto_category', snapshot_timestamp, count(*) FROM dw.link_crypto_category GROUP BY 2
    UNION ALL SELECT 'fact_crypto_category', snapshot_timestamp, count(*) FROM dw.fact_crypto_category GROUP BY 2
    UNION ALL SELECT 'fact_global_market', snapshot_timestamp, count(*) FROM dw.fact_global_market GROUP BY 2
    UNION ALL SELECT 'fact_market_sentiment', snapshot_timestamp, count(*) FROM dw.fact_market_sentiment GROUP BY 2
)
SELECT c.table_name, c.snapshot_timestamp, c.row_count,
       lag(c.row_count) OVER w AS previous_row_count,
       c.row_count::double precision / NULLIF(lag(c.row_count) OVER w, 0) - 1 AS change_ratio
FROM counts c
WINDOW w AS (PARTITION BY c.table_name ORDER BY c.snapshot_timestamp);
COMMENT ON VIEW qa.snapshot_row_counts IS
    'Rows per snapshot of each temporal table, beside the previous snapshot''s count and the relative change';

CREATE VIEW qa.null_rates AS
WITH measures(table_name, snapshot_timestamp, column_name, row_count, null_count) AS (
    SELECT 'fact_crypto_market', m.snapshot_timestamp, v.column_name, count(*), count(*) - count(v.value)
    FROM dw.fact_crypto_market m
    CROSS JOIN LATERAL (VALUES ('market_cap_usd', m.market_cap_usd), ('volume_24h_usd', m.volume_24h_usd),
                               ('circulating_supply', m.circulating_supply),
                               ('percent_change_24h_usd', m.percent_change_24h_usd)) AS v(column_name, value)
    GROUP BY m.snapshot_timestamp, v.column_name
    UNION ALL
    SELECT 'fact_global_market', g.snapshot_timestamp, v.column_name, count(*), count(*) - count(v.value)
    FROM dw.fact_global_market g
    CROSS JOIN LATERAL (VALUES ('total_market_cap_usd', g.total_market_cap_usd),
                               ('total_volume_24h_usd', g.total_volume_24h_usd),
                               ('btc_dominance', g.btc_dominance)) AS v(column_name, value)
    GROUP BY g.snapshot_timestamp, v.column_name
    UNION ALL
    SELECT 'fact_crypto_category', f.snapshot_timestamp, v.column_name, count(*), count(*) - count(v.value)
    FROM dw.fact_crypto_category f
    CROSS JOIN LATERAL (VALUES ('market_cap', f.market_cap), ('volume', f.volume)) AS v(column_name, value)
    GROUP BY f.snapshot_timestamp, v.column_name
    UNION ALL
    SELECT 'fact_exchange_assets', a.snapshot_timestamp, v.column_name, count(*), count(*) - count(v.value)
    FROM dw.fact_exchange_assets a
    CROSS JOIN LATERAL (VALUES ('currency_price_usd', a.currency_price_usd),
                               ('total_usd_value', a.total_usd_value)) AS v(column_name, value)
    GROUP BY a.snapshot_timestamp, v.column_name
)
SELECT table_name, column_name, snapshot_timestamp, row_count, null_count,
       null_count::double precision / NULLIF(row_count, 0) AS null_rate
FROM measures;
COMMENT ON VIEW qa.null_rates IS 'Share of NULLs in the key measures of each fact table, per snapshot';

-- References without a foreign key (a token's platform, a wallet's chain) that name no known coin.
CREATE VIEW qa.orphan_keys AS
WITH refs(table_name, column_name, orphan_key, snapshot_timestamp) AS (
    SELECT 'fact_crypto_market', 'platform_id', platform_id, snapshot_timestamp FROM dw.fact_crypto_market
    UNION ALL SELECT 'dim_crypto_id', 'platform_id', platform_id, snapshot_timestamp FROM dw.dim_crypto_id
    UNION ALL SELECT 'dim_crypto_map', 'platform_id', platform_id, snapshot_timestamp FROM dw.dim_crypto_map
    UNION ALL SELECT 'dim_crypto_info', 'platform_id', platform_id, snapshot_timestamp FROM dw.dim_crypto_info
    UNION ALL SELECT 'fact_exchange_assets', 'blockchain_crypto_id', blockchain_crypto_id, snapshot_timestamp
              FROM dw.fact_exchange_assets
)
SELECT r.table_name, r.column_name, 'dim_crypto_id' AS referenced_table, r.orphan_key, count(*) AS row_count,
       min(r.snapshot_timestamp) AS first_seen, max(r.snapshot_timestamp) AS last_seen
FROM refs r
WHERE r.orphan_key IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM dw.dim_crypto_id c WHERE c.crypto_id = r.orphan_key)
GROUP BY r.table_name, r.column_name, r.orphan_key;
COMMENT ON VIEW qa.orphan_keys IS
    'Coin ids referenced without a foreign key (platform_id, blockchain_crypto_id) that dim_crypto_id lacks';

CREATE VIEW qa.out_of_range_kpis AS
SELECT 'fact_crypto_market' AS table_name, v.column_name, v.rule, m.crypto_id::text AS row_key,
       m.snapshot_timestamp, v.value
FROM dw.fact_crypto_market m
CROSS JOIN LATERAL (VALUES
    ('price_usd', '> 0', m.price_usd, m.price_usd <= 0),
    ('market_cap_usd', '>= 0', m.market_cap_usd, m.market_cap_usd < 0),
    ('volume_24h_usd', '>= 0', m.volume_24h_usd, m.volume_24h_usd < 0),
    ('percent_change_24h_usd', '>= -100', m.percent_change_24h_usd, m.percent_change_24h_usd < -100),
    ('market_cap_dominance_usd', '0..100', m.market_cap_dominance_usd,
     m.market_cap_dominance_usd NOT BETWEEN 0 AND 100),
    ('circulating_supply', '<= max_supply', m.circulating_supply,
     m.max_supply > 0 AND m.circulating_supply > m.max_supply * (1 + 1e-9))
) AS v(column_name, rule, value, violated)
WHERE v.violated
UNION ALL
SELECT 'fact_global_market', v.column_name, v.rule, g.snapshot_timestamp::text, g.snapshot_timestamp, v.value
FROM dw.fact_global_market g
CROSS JOIN LATERAL (VALUES
    ('total_market_cap_usd', '> 0', g.total_market_cap_usd, g.total_market_cap_usd <= 0),
    ('btc_dominance', '0..100', g.btc_dominance, g.btc_dominance NOT BETWEEN 0 AND 100),
    ('eth_dominance', '0..100', g.eth_dominance, g.eth_dominance NOT BETWEEN 0 AND 100)
) AS v(column_name, rule, value, violated)
WHERE v.violated
UNION ALL
SELECT 'fact_market_sentiment', 'fear_greed_score', '0..100', s.source, s.snapshot_timestamp, s.fear_greed_score
FROM dw.fact_market_sentiment s
WHERE s.fear_greed_score NOT BETWEEN 0 AND 100
UNION ALL
SELECT 'fact_crypto_daily', v.column_name, v.rule, d.crypto_id || ' ' || d.snapshot_date, d.snapshot_timestamp,
       v.value
FROM dw.fact_crypto_daily d
CROSS JOIN LATERAL (VALUES
    ('close_usd', 'low_usd..high_usd', d.close_usd, d.close_usd NOT BETWEEN d.low_usd AND d.high_usd),
    ('drawdown', '-1..0', d.drawdown, d.drawdown NOT BETWEEN -1 AND 0),
    ('corr_btc_30d', '-1..1', d.corr_btc_30d, d.corr_btc_30d NOT BETWEEN -1 - 1e-9 AND 1 + 1e-9),
    ('volatility_30d', '>= 0', d.volatility_30d, d.volatility_30d < 0)
) AS v(column_name, rule, value, violated)
WHERE v.violated;
COMMENT ON VIEW qa.out_of_range_kpis IS 'Rows whose KPI breaks a sanity rule (negative price, dominance over 100, ...)';

CREATE VIEW qa.load_latency AS
SELECT w.table_name, w.delta_version, w.loaded_at, w.rows AS rows_loaded, f.latest_snapshot,
       extract(epoch FROM w.loaded_at - f.latest_snapshot)::double precision / 60 AS minutes_snapshot_to_load,
       extract(epoch FROM now() - w.loaded_at)::double precision / 3600 AS hours_since_load
FROM meta.load_watermark w
LEFT JOIN qa.table_freshness f USING (table_name);
COMMENT ON VIEW qa.load_latency IS
    'Per loaded table: last load (Delta version, rows), minutes from its newest snapshot to that load, hours since';

CREATE VIEW qa.rejected_rows_by_reason AS
SELECT table_name, reason, count(*) FILTER (WHERE resolved_at IS NULL) AS pending_rows,
       count(*) FILTER (WHERE resolved_at IS NOT NULL) AS resolved_rows, sum(attempts) AS attempts,
       min(first_seen_at) AS first_seen_at, max(last_seen_at) AS last_seen_at
FROM meta.rejected_rows
GROUP BY table_name, reason;
COMMENT ON VIEW qa.rejected_rows_by_reason IS 'Rows the loader rejected, per table and reason: pending and resolved';
