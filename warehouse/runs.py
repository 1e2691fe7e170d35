"""The run ledger (<LAKE_URI>/_meta/<step>/<name>/<run_id>.json) mirrored into meta.runs, so BI shows pipeline
health next to the data. Each load ends with a mirror. Ledger records are immutable (written once, when their
run ends), so only records not in meta.runs yet are read: a listing plus the new records, whatever their run's
start time (backfills and late-ending runs included)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.warehouse.models import Run


def mirror_ledger(engine: Engine, lake: Lake) -> int:
    """Insert the ledger records meta.runs does not have yet (idempotent); returns how many were new."""
    with engine.begin() as conn:
        known = {tuple(row) for row in conn.execute(select(Run.step, Run.name, Run.run_id))}
        rows = [{"run_id": record.run_id, "step": record.step, "name": record.name,
                 "started_at": record.started_at, "ended_at": record.ended_at, "status": record.status,
                 "rows": record.rows, "credits": record.credits, "files": len(record.files),
                 "upstream": record.upstream, "error": record.error}
                for record in Ledger(lake).records(skip=known)]
        if rows:  # a concurrent load may mirror the same records: the first one wins, they are identical
            conn.execute(insert(Run).values(rows).on_conflict_do_nothing())
    return len(rows)
