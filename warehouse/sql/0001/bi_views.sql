-- Business views for BI tools (Metabase, Power BI, SQL): plain columns, no arrays; a ratio whose divisor is
-- zero or NULL is NULL. Dominance and shares are fractions (0..1); CoinMarketCap's own columns stay in percent.

CREATE VIEW bi.market_overview AS
SELECT m.snapshot_timestamp,
       count(*) AS coins,
       sum(m.market_cap_usd) AS total_market_cap_usd,
       sum(m.volume_24h_usd) AS total_volume_24h_usd,
       sum(m.market_cap_usd) FILTER (WHERE m.crypto_id = 1) AS btc_market_cap_usd,
       sum(m.market_cap_usd) FILTER (WHERE m.crypto_id = 1027) AS eth_market_cap_usd,
       sum(m.market_cap_usd) FILTER (WHERE m.crypto_id = 1) / NULLIF(sum(m.market_cap_usd), 0) AS btc_dominance,
       sum(m.market_cap_usd) FILTER (WHERE m.crypto_id = 1027) / NULLIF(sum(m.market_cap_usd), 0) AS eth_dominance,
       sum(m.volume_24h_usd) / NULLIF(sum(m.market_cap_usd), 0) AS volume_to_market_cap_ratio
FROM dw.fact_crypto_market m
GROUP BY m.snapshot_timestamp;
COMMENT ON VIEW bi.market_overview IS
    'Per listings snapshot: total cap and volume of the listed coins, BTC and ETH dominance as fractions of that cap';

CREATE VIEW bi.latest_quote AS
SELECT DISTINCT ON (m.crypto_id)
       m.crypto_id, c.symbol, c.name, c.slug, m.snapshot_timestamp, m.cmc_rank, m.price_usd, m.volume_24h_usd,
       m.market_cap_usd, m.percent_change_1h_usd, m.percent_change_24h_usd, m.percent_change_7d_usd,
       m.percent_change_30d_usd, m.circulating_supply, m.volume_to_market_cap_ratio
FROM dw.fact_crypto_market m
JOIN dw.dim_crypto_id c USING (crypto_id)
ORDER BY m.crypto_id, m.snapshot_timestamp DESC;
COMMENT ON VIEW bi.latest_quote IS 'Each coin''s most recent quote, with its name and symbol';

CREATE VIEW bi.top_movers AS
WITH latest AS (
    SELECT m.* FROM dw.fact_crypto_market m
    WHERE m.snapshot_timestamp = (SELECT max(snapshot_timestamp) FROM dw.fact_crypto_market)
), changes AS (
    SELECT l.crypto_id, l.snapshot_timestamp, l.cmc_rank, l.price_usd, l.market_cap_usd, w.period, w.percent_change
    FROM latest l
    CROSS JOIN LATERAL (VALUES ('1h', l.percent_change_1h_usd), ('24h', l.percent_change_24h_usd),
                               ('7d', l.percent_change_7d_usd)) AS w(period, percent_change)
    WHERE w.percent_change IS NOT NULL
), ranked AS (
    SELECT ch.*,
           row_number() OVER (PARTITION BY ch.period ORDER BY ch.percent_change DESC, ch.crypto_id) AS gain_rank,
           row_number() OVER (PARTITION BY ch.period ORDER BY ch.percent_change ASC, ch.crypto_id) AS loss_rank
    FROM changes ch
)
SELECT r.period, v.direction, v.mover_rank, r.crypto_id, c.symbol, c.name, r.percent_change, r.price_usd,
       r.market_cap_usd, r.cmc_rank, r.snapshot_timestamp
FROM ranked r
JOIN dw.dim_crypto_id c USING (crypto_id)
CROSS JOIN LATERAL (VALUES ('gainer', r.gain_rank), ('loser', r.loss_rank)) AS v(direction, mover_rank)
WHERE v.mover_rank <= 10;
COMMENT ON VIEW bi.top_movers IS
    'Latest listings snapshot: the 10 biggest gainers and losers by price change over 1h, 24h and 7d (period)';

CREATE VIEW bi.daily_risk AS
SELECT d.snapshot_date AS day, d.crypto_id, c.symbol, c.name, d.open_usd, d.high_usd, d.low_usd, d.close_usd,
       d.n_snapshots, d.close_usd / NULLIF(d.open_usd, 0) - 1 AS day_change,
       (d.high_usd - d.low_usd) / NULLIF(d.open_usd, 0) AS intraday_range, d.log_return, d.volatility_7d,
       d.volatility_30d, d.volatility_7d_annualized, d.volatility_30d_annualized, d.corr_btc_30d, d.drawdown,
       d.running_max_close_usd
FROM dw.fact_crypto_daily d
JOIN dw.dim_crypto_id c USING (crypto_id);
COMMENT ON VIEW bi.daily_risk IS
    'Per coin and UTC day: OHLC, day change, intraday range, log return, volatility, BTC correlation, drawdown';

CREATE VIEW bi.category_performance AS
SELECT f.snapshot_timestamp, f.category_id, k.name, k.title, f.num_tokens, f.market_cap, f.market_cap_change,
       f.volume, f.volume_change, f.avg_price_change, f.volume_to_market_cap_ratio, f.dominance_per_token,
       rank() OVER (PARTITION BY f.snapshot_timestamp ORDER BY f.market_cap DESC NULLS LAST) AS market_cap_rank
FROM dw.fact_crypto_category f
JOIN dw.dim_crypto_category k USING (category_id);
COMMENT ON VIEW bi.category_performance IS
    'Per category snapshot: cap, volume and their 24h changes, average price change, rank by cap in the snapshot';

CREATE VIEW bi.exchange_liquidity AS
SELECT a.snapshot_timestamp, a.exchange_id, e.name AS exchange_name, e.slug,
       count(DISTINCT a.wallet_address) AS wallets, count(DISTINCT a.crypto_id) AS assets,
       sum(a.total_usd_value) AS reserves_usd, max(a.spot_volume_usd) AS spot_volume_24h_usd,
       max(a.spot_volume_usd) / NULLIF(sum(a.total_usd_value), 0) AS volume_to_reserves_ratio,
       max(a.total_usd_value) / NULLIF(sum(a.total_usd_value), 0) AS largest_holding_share
FROM dw.fact_exchange_assets a
JOIN dw.dim_exchange_id e USING (exchange_id)
GROUP BY a.snapshot_timestamp, a.exchange_id, e.name, e.slug;
COMMENT ON VIEW bi.exchange_liquidity IS
    'Per exchange and reserves snapshot: reserves in USD, spot volume, volume / reserves, largest holding''s share';

CREATE VIEW bi.sentiment_vs_market AS
SELECT s.snapshot_timestamp, s.source, s.fear_greed_score, s.sentiment_label,
       g.snapshot_timestamp AS market_snapshot_timestamp, g.total_market_cap_usd, g.total_volume_24h_usd,
       g.total_market_cap_yesterday_percentage_change AS market_cap_change_24h_percent, g.btc_dominance,
       g.market_liquidity_ratio
FROM dw.fact_market_sentiment s
LEFT JOIN LATERAL (
    SELECT * FROM dw.fact_global_market g
    WHERE g.snapshot_timestamp <= s.snapshot_timestamp
      AND g.snapshot_timestamp > s.snapshot_timestamp - interval '1 day'
    ORDER BY g.snapshot_timestamp DESC LIMIT 1
) g ON true;
COMMENT ON VIEW bi.sentiment_vs_market IS
    'Each Fear and Greed value beside the global market snapshot at or up to a day before it (NULL when none)';
