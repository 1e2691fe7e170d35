"""Which bronze snapshots each silver table has already taken in: incremental tracking through the ledger.

A table's state is kept in its own transform ledger records (`_meta/transform/<table>/<run_id>.json`,
`details.state`): per extractor, a watermark `through` (every extract run id up to it is consumed) plus the
consumed run ids above it (`after`). Extract run ids sort by start time, and each bronze snapshot becomes
visible only when its extract record is written, so:

- finding new snapshots lists the extractor's record names (cheap) and reads only the records not yet consumed,
  never the bronze files or silver tables;
- records without data (skipped or failed runs) are consumed too, so they are read once;
- the watermark only moves past run ids that started GRACE before the newest consumed one, so an extract run
  that started earlier but finished later than its neighbours (overlapping runs) is still picked up.

State is advanced only by a successful table run, after its Delta commit. A run killed between the commit and
its ledger record leaves the previous state in place: the next run re-reads those snapshots and the MERGE /
replaceWhere writes make that a no-op, so recovery needs no cleanup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from cryptolake.errors import LakeError
from cryptolake.lake import Lake
from cryptolake.ledger import VISIBLE, RunRecord

GRACE = timedelta(days=7)
STATE_STATUSES = ("success", "skipped")


def run_started(run_id: str) -> datetime:
    """The UTC start stamp every run id begins with (see ledger.new_run_id)."""
    return datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


@dataclass
class SourceState:
    through: str = ""
    after: set[str] = field(default_factory=set)

    def consumed(self, run_id: str) -> bool:
        return (bool(self.through) and run_id <= self.through) or run_id in self.after

    def to_json(self) -> dict:
        return {"through": self.through, "after": sorted(self.after)}

    @classmethod
    def from_json(cls, data: dict) -> "SourceState":
        return cls(data.get("through", ""), set(data.get("after", [])))

    def advance(self, consumed: list[str], known: list[str]) -> "SourceState":
        """A new state with `consumed` added; the watermark moves over a fully consumed, old enough prefix."""
        after = self.after | set(consumed)
        through = self.through
        if after:
            horizon = max(run_started(r) for r in after) - GRACE
            for run_id in sorted(known):
                if run_id <= through:
                    continue
                if run_id not in after or run_started(run_id) > horizon:
                    break
                through = run_id
        return SourceState(through, {r for r in after if r > through})


@dataclass
class TableState:
    sources: dict[str, SourceState] = field(default_factory=dict)
    record: str | None = None  # run id of the ledger record it was read from

    def source(self, extractor: str) -> SourceState:
        return self.sources.get(extractor, SourceState())

    def to_json(self) -> dict:
        return {name: s.to_json() for name, s in sorted(self.sources.items())}


@dataclass
class Pending:
    """What one extractor has that a table has not taken in yet."""

    extractor: str
    snapshots: list[RunRecord]   # complete snapshots with files, oldest first
    seen: list[str]              # every new record's run id (snapshots and empty/failed runs alike)
    known: list[str]             # every record's run id (for the watermark)

    @property
    def files(self) -> list[str]:
        return [f for s in self.snapshots for f in s.files]


class Tracker:
    def __init__(self, lake: Lake):
        self.lake = lake

    def _records(self, step: str, name: str) -> list[str]:
        return self.lake.list_files(f"_meta/{step}/{name}", ".json")

    def _read(self, path: str) -> RunRecord:
        return RunRecord.from_json(self.lake.read_bytes(path))

    def state(self, table: str) -> TableState:
        """The state in the table's newest successful (or skipped) transform record; empty if none."""
        for path in reversed(self._records("transform", table)):
            record = self._read(path)
            if record.status in STATE_STATUSES and "state" in record.details:
                return TableState({k: SourceState.from_json(v) for k, v in record.details["state"].items()},
                                  record.run_id)
        return TableState()

    def pending(self, extractor: str, state: SourceState,
                also: Callable[[str], bool] | None = None) -> Pending:
        """Extract records of `extractor` not consumed yet (and accepted by `also`, e.g. consumed upstream)."""
        paths = self._records("extract", extractor)
        known = [p.rsplit("/", 1)[-1][: -len(".json")] for p in paths]
        snapshots, seen = [], []
        for run_id, path in zip(known, paths):
            if state.consumed(run_id) or (also is not None and not also(run_id)):
                continue
            record = self._read(path)
            if record.run_id != run_id:
                raise LakeError(f"ledger record {path} holds run {record.run_id}",
                                "Ledger file names must be their run id; do not rename ledger records")
            seen.append(run_id)
            if record.status in VISIBLE and record.files:
                snapshots.append(record)
        return Pending(extractor, snapshots, seen, known)
