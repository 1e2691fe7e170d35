"""`cryptolake report --out FILE.html`: one self-contained HTML page of plots over the warehouse (market) and of
the pipeline's health (the same Status `cryptolake status` shows), readable offline.

Plotly draws the charts; plotly.js is inlined once in the page's head, so the file needs no CDN and no
network. Every plot shows only what the warehouse holds: a section whose tables are empty says so and which
group loads them, instead of failing or inventing points. Market data is read from the bi views where one
exists (top movers, daily risk, categories, sentiment) and from dw.fact_global_market otherwise.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.offline
from plotly.subplots import make_subplots

from cryptolake import logs
from cryptolake.errors import CryptolakeError
from cryptolake.ledger import STATUSES
from cryptolake.pipeline import Pipeline
from cryptolake.status import FAILING, NEVER, OK, STALE, _age, gather

TOP_CATEGORIES = 8  # categories drawn on their own in the dominance plot; the rest is "other"
MOVERS_PERIOD = "24h"  # bi.top_movers' period the top-movers plot shows
VOLATILITY_WINDOW_DAYS = 30  # fact_crypto_daily's volatility_30d window, and the return window beside it
RISK_COINS = 100  # the volatility plot's coins: the best ranked (a scatter of thousands is unreadable)
STATE_COLOURS = {OK: "#2ca02c", STALE: "#ff7f0e", FAILING: "#d62728", NEVER: "#7f7f7f"}
OUTCOME_COLOURS = dict(zip(STATUSES, ("#2ca02c", "#ff7f0e", "#9467bd", "#d62728")))  # the ledger's order
FEAR_GREED_BANDS = ((0, 25, "#d62728", "extreme fear"), (25, 45, "#ff7f0e", "fear"), (45, 55, "#bcbd22", "neutral"),
                    (55, 75, "#98df8a", "greed"), (75, 100, "#2ca02c", "extreme greed"))
PLOT_CONFIG = {"displaylogo": False, "responsive": True}

QUERIES = {
    "global": """SELECT snapshot_timestamp, total_market_cap_usd, btc_dominance, eth_dominance
                 FROM dw.fact_global_market ORDER BY snapshot_timestamp""",
    "movers": """SELECT symbol, name, direction, mover_rank, percent_change, snapshot_timestamp
                 FROM bi.top_movers WHERE period = :period ORDER BY percent_change""",
    "risk": """WITH latest AS (SELECT max(day) AS day FROM bi.daily_risk WHERE volatility_30d IS NOT NULL),
                    coins AS (SELECT r.crypto_id, r.symbol, r.name, r.day, r.volatility_30d
                              FROM latest JOIN bi.daily_risk r ON r.day = latest.day AND r.volatility_30d IS NOT NULL
                              LEFT JOIN bi.latest_quote q USING (crypto_id)
                              ORDER BY q.cmc_rank NULLS LAST, r.crypto_id LIMIT :coins)
               SELECT c.symbol, c.name, c.day, c.volatility_30d,
                      sum(w.log_return) AS window_log_return, count(w.log_return) AS returns
               FROM coins c
               JOIN bi.daily_risk w ON w.crypto_id = c.crypto_id AND w.day > c.day - :window AND w.day <= c.day
               GROUP BY c.symbol, c.name, c.day, c.volatility_30d
               HAVING count(w.log_return) > 0""",
    "categories": """WITH totals AS (SELECT snapshot_timestamp, sum(market_cap) AS total FROM bi.category_performance
                                     GROUP BY snapshot_timestamp),
                          top AS (SELECT category_id FROM bi.category_performance
                                  WHERE snapshot_timestamp = (SELECT max(snapshot_timestamp) FROM totals)
                                  ORDER BY market_cap DESC NULLS LAST, category_id LIMIT :top)
                     SELECT c.snapshot_timestamp, c.name, c.market_cap / NULLIF(t.total, 0) AS share
                     FROM bi.category_performance c JOIN totals t USING (snapshot_timestamp)
                     WHERE c.category_id IN (SELECT category_id FROM top)
                     ORDER BY c.snapshot_timestamp, c.name""",
    "sentiment": """SELECT snapshot_timestamp, source, fear_greed_score, sentiment_label
                    FROM bi.sentiment_vs_market ORDER BY source, snapshot_timestamp""",
}


@dataclass
class Written:
    path: Path
    bytes: int
    seconds: float
    sections: list[str]


def write_report(settings, spec: Pipeline, out: Path, now: datetime | None = None) -> Written:
    """Gather the status and the market data, render the page and write it to `out` (checked first, so a bad
    path fails before the warehouse is read)."""
    clock = time.monotonic()
    out = _writable(out)
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    health = gather(settings, spec, now)
    data = read_market(settings.warehouse_url)
    page, sections = render(health, data, now)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CryptolakeError(f"cannot write the report to {out}: {exc.strerror}",
                              "Choose a writable file path with --out") from None
    return Written(out.resolve(), len(page.encode()), time.monotonic() - clock, sections)


def _writable(out: Path) -> Path:
    """The path, if a file can be written there (as far as can be told without writing)."""
    if out.is_dir():
        raise CryptolakeError(f"--out {out} is a directory", "Give a file path such as report.html")
    parent = out.parent
    if not parent.is_dir():
        raise CryptolakeError(f"cannot write the report to {out}: directory {parent} does not exist",
                              "Create it or choose another --out")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise CryptolakeError(f"cannot write the report to {out}: permission denied",
                              "Choose a writable file path with --out")
    return out


def read_market(url: str) -> dict[str, list[dict[str, Any]]]:
    """Rows of every market query (status has already checked that the warehouse is reachable and migrated)."""
    from sqlalchemy import text

    from cryptolake.warehouse.migrate import engine_for

    params = {"period": MOVERS_PERIOD, "window": VOLATILITY_WINDOW_DAYS, "top": TOP_CATEGORIES, "coins": RISK_COINS}
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return {name: [dict(row) for row in connection.execute(text(sql), params).mappings()]
                    for name, sql in QUERIES.items()}
    finally:
        engine.dispose()


# -- rendering -------------------------------------------------------------------------------------------------
def render(health, data: dict[str, list[dict[str, Any]]], now: datetime) -> tuple[str, list[str]]:
    """(the HTML page, the section titles in order)"""
    groups = {t.table: t.groups for t in health.tables}
    sections = [
        ("Total market cap and BTC/ETH dominance", _market(data["global"], groups)),
        (f"Top movers ({MOVERS_PERIOD})", _movers(data["movers"], groups)),
        ("Volatility against return", _risk(data["risk"], groups)),
        ("Category dominance", _categories(data["categories"], groups)),
        ("Fear & Greed history", _sentiment(data["sentiment"], groups)),
        ("Pipeline health", _health(health)),
    ]
    body = "\n".join(f'<section id="{_slug(title)}"><h2>{_e(title)}</h2>\n{content}</section>'
                     for title, content in sections)
    page = PAGE.format(plotlyjs=plotly.offline.get_plotlyjs(), generated=_e(_stamp(now)),
                       data_range=_e(_data_range(data)), verdict=_e(logs.redact(health.verdict)), body=body)
    return page, [title for title, _ in sections]


def _data_range(data: dict[str, list[dict[str, Any]]]) -> str:
    moments = [_moment(row[key]) for name, key in (("global", "snapshot_timestamp"), ("movers", "snapshot_timestamp"),
                                                   ("risk", "day"), ("categories", "snapshot_timestamp"),
                                                   ("sentiment", "snapshot_timestamp"))
               for row in data[name] if row[key] is not None]
    if not moments:
        return "no market data yet"
    return f"data from {_stamp(min(moments))} to {_stamp(max(moments))}"


def _market(rows, groups) -> str:
    if not rows:
        return _empty("fact_global_market", groups)
    x = [r["snapshot_timestamp"] for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x, y=[r["total_market_cap_usd"] for r in rows], name="total market cap (USD)",
                             mode="lines+markers", line={"color": "#1f77b4"}), secondary_y=False)
    for column, colour in (("btc_dominance", "#f7931a"), ("eth_dominance", "#627eea")):
        fig.add_trace(go.Scatter(x=x, y=[r[column] for r in rows], name=column.replace("_", " ") + " (%)",
                                 mode="lines+markers", line={"color": colour, "dash": "dot"}), secondary_y=True)
    fig.update_yaxes(title_text="USD", secondary_y=False)
    fig.update_yaxes(title_text="dominance, % of total cap", secondary_y=True, rangemode="tozero")
    if len(set(x)) == 1:  # one snapshot: a day around it and axes from zero, not a range of milliseconds
        fig.update_xaxes(range=[x[0] - timedelta(hours=12), x[0] + timedelta(hours=12)])
        fig.update_yaxes(rangemode="tozero", tickformat=".3s", secondary_y=False)
    return _figure(fig, "Whole market per global-metrics snapshot (dw.fact_global_market)")


def _movers(rows, groups) -> str:
    if not rows:
        return _empty("fact_crypto_market", groups)
    at = _stamp(rows[0]["snapshot_timestamp"])
    # a coin can be both a gainer and a loser when fewer than 20 coins moved: draw each once
    unique = list({r["symbol"]: r for r in rows}.values())
    fig = go.Figure(go.Bar(x=[r["percent_change"] for r in unique], y=[f"{r['symbol']} ({r['name']})" for r in unique],
                           orientation="h",
                           marker_color=["#2ca02c" if r["percent_change"] >= 0 else "#d62728" for r in unique],
                           hovertemplate="%{y}: %{x:.2f}%<extra></extra>"))
    fig.update_xaxes(title_text="price change over 24h, %")
    fig.update_layout(height=max(320, 22 * len(unique) + 120))
    return _figure(fig, f"The 10 biggest gainers and losers by CoinMarketCap's latest 24h price change, at the "
                        f"latest listings snapshot ({at}; bi.top_movers)")


def _risk(rows, groups) -> str:
    if not rows:
        return _empty("fact_crypto_daily", groups, "with a 30-day volatility")
    day = rows[0]["day"]
    fig = go.Figure(go.Scatter(
        x=[r["volatility_30d"] for r in rows], y=[r["window_log_return"] for r in rows], mode="markers+text",
        text=[r["symbol"] for r in rows], textposition="top center", marker={"size": 9, "color": "#1f77b4"},
        customdata=[[r["name"], r["returns"]] for r in rows],
        hovertemplate="%{text} (%{customdata[0]})<br>volatility %{x:.4f}<br>log return %{y:.4f} "
                      "over %{customdata[1]} daily returns<extra></extra>"))
    fig.update_xaxes(title_text="30-day volatility (std of daily log returns)")
    fig.update_yaxes(title_text=f"log return over the last {VOLATILITY_WINDOW_DAYS} days", zeroline=True)
    return _figure(fig, f"{len(rows)} coins (at most the {RISK_COINS} best ranked) on {day}: 30-day volatility "
                        f"against the sum of the daily log returns over the last {VOLATILITY_WINDOW_DAYS} days "
                        "(bi.daily_risk from dw.fact_crypto_daily; rank from bi.latest_quote)")


def _categories(rows, groups) -> str:
    if not rows:
        return _empty("fact_crypto_category", groups)
    moments = sorted({r["snapshot_timestamp"] for r in rows})
    names = sorted({r["name"] for r in rows})
    share = {(r["snapshot_timestamp"], r["name"]): r["share"] or 0.0 for r in rows}
    other = [max(0.0, 1.0 - sum(share.get((m, n), 0.0) for n in names)) for m in moments]
    fig = go.Figure()
    for name in names + ["other categories"]:
        y = other if name == "other categories" else [share.get((m, name), 0.0) for m in moments]
        if len(moments) > 1:
            fig.add_trace(go.Scatter(x=moments, y=y, name=name, stackgroup="share", mode="lines"))
        else:
            fig.add_trace(go.Bar(x=[_stamp(moments[0])], y=y, name=name))
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="share of summed category market cap", tickformat=".0%", range=[0, 1])
    return _figure(fig, f"Market cap share of the {TOP_CATEGORIES} largest categories (at the latest snapshot) per "
                        "category snapshot; a coin belongs to several categories, so shares are of the categories' "
                        "summed cap (bi.category_performance)")


def _sentiment(rows, groups) -> str:
    if not rows:
        return _empty("fact_market_sentiment", groups)
    fig = go.Figure()
    for low, high, colour, label in FEAR_GREED_BANDS:
        fig.add_hrect(y0=low, y1=high, fillcolor=colour, opacity=0.12, line_width=0, annotation_text=label,
                      annotation_position="left", annotation_font_size=10)
    for source in sorted({r["source"] for r in rows}):
        mine = [r for r in rows if r["source"] == source]
        fig.add_trace(go.Scatter(x=[r["snapshot_timestamp"] for r in mine], y=[r["fear_greed_score"] for r in mine],
                                 name=source, mode="lines+markers", text=[r["sentiment_label"] for r in mine],
                                 hovertemplate="%{x}<br>%{y} (%{text})<extra>" + source + "</extra>"))
    fig.update_yaxes(title_text="index: 0 extreme fear, 100 extreme greed", range=[0, 100])
    return _figure(fig, "CoinMarketCap Fear & Greed index per source (dw.fact_market_sentiment via "
                        "bi.sentiment_vs_market)")


def _health(health) -> str:
    """Runs per step and outcome, credits against the plan, freshness per table: all from `status`."""
    c = health.credits
    latest = {(step, r.name): r.status for t in health.tables for step, runs in t.runs.items() for r in runs}
    steps = ("extract", "transform", "load")
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.12,
                        subplot_titles=("latest run of each job, by step and outcome",
                                        f"credits in {c.month}"))
    for outcome, colour in OUTCOME_COLOURS.items():
        counts = [sum(1 for (s, _), status in latest.items() if s == step and status == outcome) for step in steps]
        if any(counts):
            fig.add_trace(go.Bar(x=list(steps), y=counts, name=outcome, marker_color=colour), row=1, col=1)
    fig.add_trace(go.Bar(x=["used", "planned", "quota"], y=[c.used, c.planned, c.quota], showlegend=False,
                         marker_color=["#1f77b4", "#aec7e8", "#c7c7c7"], text=[c.used, c.planned, c.quota],
                         textposition="outside"), row=1, col=2)
    fig.update_layout(barmode="stack", height=380)
    fig.update_yaxes(title_text="jobs", row=1, col=1)
    fig.update_yaxes(title_text="credits", row=1, col=2)
    parts = [f"<p class=\"verdict\">{_e(logs.redact(health.verdict))}</p>"]
    if not latest:
        parts.append(_note("No pipeline run recorded in the ledger yet: run `cryptolake demo` or the DAGs."))
    parts.append(_figure(fig, f"From `cryptolake status` at {_stamp(health.now)}: credits used this month "
                              f"{c.used} of {c.planned} planned ({c.quota} quota, CMC_MONTHLY_CREDITS)"))
    parts.append(_freshness(health))
    return "\n".join(parts)


def _freshness(health) -> str:
    if all(t.refreshed_at is None for t in health.tables):
        return _note("No warehouse table has been loaded yet.") + _table(health)
    hours = [None if t.refreshed_at is None else (health.now - t.refreshed_at).total_seconds() / 3600
             for t in health.tables]
    fig = go.Figure(go.Bar(
        y=[t.table for t in health.tables], x=[h or 0 for h in hours], orientation="h",
        marker_color=[STATE_COLOURS.get(t.state, "#7f7f7f") for t in health.tables],
        text=[t.state if t.refreshed_at is None else f"{t.state}, {_age(health.now - t.refreshed_at)} ago"
              for t in health.tables],
        textposition="auto", hovertemplate="%{y}: %{text}<extra></extra>"))
    fig.update_xaxes(title_text="hours since last refreshed (never loaded: 0)")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=22 * len(health.tables) + 140)
    return (_figure(fig, "Freshness per warehouse table, coloured by state (OK, STALE, FAILING, NEVER)")
            + _table(health))


def _table(health) -> str:
    rows = "\n".join(
        f"<tr class=\"{t.state.lower()}\"><td>{_e(t.table)}</td><td>{_e(t.state)}</td>"
        f"<td>{_e(_stamp(t.refreshed_at) if t.refreshed_at else 'never')}</td>"
        f"<td>{_e(_stamp(t.due_since) if t.due_since else 'init only')}</td>"
        + "".join(f"<td>{_e(t.outcome(step))}</td>" for step in ("extract", "transform", "load"))
        + f"<td>{t.rejected}</td><td>{t.quarantined}</td>"
        f"<td>{_e(logs.redact('; '.join(t.problems)))}</td></tr>" for t in health.tables)
    table = ("<table><thead><tr><th>table</th><th>state</th><th>refreshed</th><th>due since</th><th>extract</th>"
             "<th>transform</th><th>load</th><th>rejected</th><th>quarantined</th><th>problems</th></tr></thead>"
             f"<tbody>\n{rows}\n</tbody></table>")
    return ("\n<details><summary>Per table: state, latest runs, rejected and quarantined rows</summary>" + table +
              "</details>")


# -- helpers ---------------------------------------------------------------------------------------------------
def _figure(fig, caption: str) -> str:
    fig.update_layout(template="plotly_white", margin={"l": 60, "r": 30, "t": 40, "b": 50},
                      legend={"orientation": "h", "y": -0.2})
    return (fig.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG)
            + f"\n<p class=\"caption\">{_e(caption)}</p>")


def _empty(table: str, groups: dict[str, tuple[str, ...]], what: str = "") -> str:
    loaders = ", ".join(g for g in groups.get(table, ()) if g != "init") or "init"
    return _note(f"No data yet: dw.{table} has no rows{' ' + what if what else ''}. Groups that load it: "
                 f"{loaders} (e.g. cryptolake run --group {loaders.split(', ')[0]}).")


def _note(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _moment(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)


def _stamp(value: datetime | date) -> str:
    return _moment(value).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _slug(title: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")


def _e(text: str) -> str:
    return html.escape(str(text))


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>CryptoLakehouse report</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; background: #f6f7f9;
       color: #222; }}
header {{ background: #14213d; color: #fff; padding: 18px 32px; }}
header h1 {{ margin: 0 0 6px 0; font-size: 26px; }}
header p {{ margin: 2px 0; color: #d8dee9; }}
main {{ max-width: 1180px; margin: 0 auto; padding: 12px 24px 40px; }}
section {{ background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); margin: 18px 0;
          padding: 8px 20px 14px; }}
h2 {{ font-size: 19px; border-bottom: 1px solid #e3e6ea; padding-bottom: 6px; }}
.caption {{ color: #555; font-size: 13px; margin: 4px 0 8px; }}
.empty {{ background: #fff8e1; border-left: 4px solid #ffb300; padding: 10px 14px; }}
.verdict {{ font-weight: 600; }}
table {{ border-collapse: collapse; font-size: 12px; margin-top: 8px; width: 100%; }}
th, td {{ border-bottom: 1px solid #e3e6ea; padding: 3px 6px; text-align: left; vertical-align: top; }}
tr.failing td:nth-child(2) {{ color: #d62728; }} tr.stale td:nth-child(2) {{ color: #ff7f0e; }}
tr.ok td:nth-child(2) {{ color: #2ca02c; }}
</style>
<script type="text/javascript">{plotlyjs}</script>
</head>
<body>
<header>
<h1>CryptoLakehouse report</h1>
<p>Generated at {generated} &middot; {data_range}</p>
<p>Pipeline: {verdict}</p>
</header>
<main>
{body}
</main>
</body>
</html>
"""
