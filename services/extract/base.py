"""What an extractor is (data) and how every extractor runs (one engine).

An extractor declares its endpoint, static parameters, how requests are planned (one call, pages, id batches),
where ids come from (incremental policies that read the ledger and the lake, never the warehouse), how credits
are charged, and its typed columns. The engine runs any of them the same way: plan chunks, fetch, type, stream
into bronze part files, quarantine what cannot be parsed, journal failed chunks for the next run, record the
run in the ledger last (so the snapshot becomes visible only when complete).
"""

from __future__ import annotations

import abc
import itertools
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Generator, Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from cryptolake import logs
from cryptolake.lake import Lake, bronze_path, quarantine_path, snapshot_stamp
from cryptolake.ledger import Ledger, RunRecord
from cryptolake.settings import Settings
from cryptolake.services.client import CmcClient, CmcError, PayloadError, QuotaExhausted
from cryptolake.services.extract.fields import Column, ParseError, schema_of, to_batch

log = logs.get(__name__)
Items = Iterable[tuple[Any, Any]]


# -- how the payload holds its items ------------------------------------------------------------------------
def listed(data: Any, chunk: "Chunk") -> Items:
    if not isinstance(data, list):
        raise ParseError(f"expected an array of items, got {type(data).__name__}")
    return ((None, item) for item in data)


def keyed(data: Any, chunk: "Chunk") -> Items:
    if not isinstance(data, dict):
        raise ParseError(f"expected an object keyed by id, got {type(data).__name__}")
    return data.items()


def single(data: Any, chunk: "Chunk") -> Items:
    return [(None, data)]


def listed_per_request_id(data: Any, chunk: "Chunk") -> Items:
    """Items that do not repeat the id they were asked for (exchange assets): the key carries it."""
    return ((chunk.ids[0], item) for _, item in listed(data, chunk))


# -- credits ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Credits:
    """Cost of one call: `per_call`, or one credit per `per_items` items asked for (rounded up)."""

    per_call: int = 1
    per_items: int | None = None

    def of(self, items_asked: int) -> int:
        return max(self.per_call, math.ceil(items_asked / self.per_items)) if self.per_items else self.per_call


# -- request planning ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    key: str  # identity journaled when the chunk fails, e.g. "start=5001" or "id=270"
    params: dict[str, Any]
    ids: tuple = ()
    size: int = 1  # items asked for, for credit estimates


class Plan(abc.ABC):
    """Yields chunks; the engine sends back how many items each one returned (None when it failed)."""

    part_files = True

    @abc.abstractmethod
    def chunks(self, run: "ExtractRun") -> Generator[Chunk, int | None, None]:
        """The requests of one run, in order."""

    @abc.abstractmethod
    def estimate_calls(self, run: "ExtractRun") -> list[int]:
        """Items asked for by each call this run is expected to make (for the credit estimate)."""


class OneCall(Plan):
    part_files = False

    def chunks(self, run):
        yield Chunk("all", {})

    def estimate_calls(self, run):
        return [1]


@dataclass(frozen=True)
class Pages(Plan):
    """start/limit paging. With `total_setting` the total is configured; otherwise page until a short page."""

    page_size: int
    total_setting: str | None = None

    def total(self, run: "ExtractRun") -> int | None:
        return getattr(run.settings, self.total_setting) if self.total_setting else None

    def chunks(self, run):
        total = self.total(run)
        start = 1
        while total is None or start <= total:
            limit = self.page_size if total is None else min(self.page_size, total - start + 1)
            returned = yield Chunk(f"start={start}", {"start": start, "limit": limit}, size=limit)
            if returned is not None and returned < limit:
                return
            start += limit

    def estimate_calls(self, run):
        total = self.total(run)
        if total is None:
            previous = run.previous
            total = previous.rows if previous and previous.rows else self.page_size
        return [min(self.page_size, total - s) for s in range(0, total, self.page_size)]


@dataclass(frozen=True)
class IdBatches(Plan):
    """Ids from a policy, `size` per call, joined into `param` (CSV). Journaled failures are retried first."""

    ids: "IdPolicy"
    size: int = 100
    param: str = "id"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def chunks(self, run):
        for batch in _batched(run.ids_to_fetch, self.size):
            key = f"{self.param}={batch[0]}" if len(batch) == 1 else f"{self.param}={batch[0]}..{batch[-1]}"
            yield Chunk(key, {self.param: ",".join(map(str, batch)), **self.extra}, ids=tuple(batch), size=len(batch))

    def estimate_calls(self, run):
        return [len(b) for b in _batched(run.ids_to_fetch, self.size)]


# -- where ids come from (incremental policies) --------------------------------------------------------------
@dataclass(frozen=True)
class IdPolicy(abc.ABC):
    """Ids are read from the latest complete snapshot of `source` (column `column`)."""

    source: str
    column: str

    def source_ids(self, run: "ExtractRun") -> list:
        latest = run.ledger.latest("extract", self.source)
        if latest is None:
            return []
        table = run.lake.read_parquet(latest.files).select([self.column])
        return sorted(set(table.column(self.column).drop_null().to_pylist()))

    @abc.abstractmethod
    def select(self, run: "ExtractRun") -> tuple[list, dict]:
        """(ids to fetch this run, details for the ledger)"""

    @staticmethod
    def due_full_scan(run: "ExtractRun") -> bool:
        last_full = run.last_full_scan()
        return last_full is None or run.snapshot_ts - last_full.started_at >= timedelta(days=run.settings.cmc_rescan_days)


class NewIds(IdPolicy):
    """Only ids not enriched since the last full rescan; a full rescan every CMC_RESCAN_DAYS."""

    def select(self, run):
        ids = self.source_ids(run)
        if self.due_full_scan(run):
            return ids, {"full_scan": True}
        done: set = set()
        for record in run.runs_since_last_full_scan():
            if record.files:
                done |= set(run.lake.read_parquet(record.files).column(run.extractor.id_column).to_pylist())
        return [i for i in ids if i not in done], {"full_scan": False, "already_enriched": len(done)}


class ActiveSet(IdPolicy):
    """Ids that returned items last time; every id on a full scan (every CMC_RESCAN_DAYS)."""

    def select(self, run):
        ids = self.source_ids(run)
        if self.due_full_scan(run) or run.previous is None:
            return ids, {"full_scan": True}
        active = set()
        if run.previous.files:
            active = set(run.lake.read_parquet(run.previous.files).column(run.extractor.id_column).to_pylist())
        return [i for i in ids if i in active], {"full_scan": False}


class RotatingSlice(IdPolicy):
    """CMC_CATEGORY_SLICE ids per run, continuing where the previous run stopped, wrapping around."""

    def select(self, run):
        ids = self.source_ids(run)
        if not ids:
            return [], {"offset": 0, "next_offset": 0}
        size = min(run.settings.cmc_category_slice, len(ids))
        offset = (run.previous.details.get("next_offset", 0) if run.previous else 0) % len(ids)
        chosen = [ids[(offset + i) % len(ids)] for i in range(size)]
        return chosen, {"offset": offset, "next_offset": (offset + size) % len(ids)}


# -- the extractor -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Extractor:
    name: str
    path: str
    columns: tuple[Column, ...]
    groups: tuple[str, ...]
    priority: str = "high"  # "low": skipped when the month's credits run short
    params: Mapping[str, Any] = field(default_factory=dict)
    items: Callable[[Any, Chunk], Items] = listed
    plan: Plan = field(default_factory=OneCall)
    credits: Credits = field(default_factory=Credits)
    id_column: str | None = None  # the id this extractor's rows are about (for diffs and policies)
    skip_unchanged: bool = False  # maps: write nothing when the id set did not change

    @property
    def schema(self) -> pa.Schema:
        return schema_of(self.columns)


# -- one run -----------------------------------------------------------------------------------------------
class ExtractRun:
    """State of one run of one extractor: the ledger record, the planned ids, counters."""

    def __init__(self, extractor: Extractor, settings: Settings, lake: Lake, client: CmcClient,
                 record: RunRecord):
        self.extractor, self.settings, self.lake, self.client, self.record = extractor, settings, lake, client, record
        self.ledger = Ledger(lake)
        self.snapshot_ts: datetime = record.started_at
        # The ledger only grows: read the runs a policy can need (one rescan period, and a margin), not all.
        since = self.snapshot_ts - timedelta(days=settings.cmc_rescan_days + 7)
        self.history = self.ledger.runs("extract", extractor.name, ("success", "partial", "skipped"), since=since)
        self.previous = next((r for r in reversed(self.history) if r.status != "skipped"), None)
        self.ids_to_fetch: list = []
        self.failed: list[dict] = []
        self.quarantined: list[str] = []

    def last_full_scan(self) -> RunRecord | None:
        return next((r for r in reversed(self.history) if r.details.get("full_scan")), None)

    def runs_since_last_full_scan(self) -> list[RunRecord]:
        last = self.last_full_scan()
        return [r for r in self.history if last is not None and r.run_id >= last.run_id]

    def plan_ids(self) -> None:
        plan = self.extractor.plan
        if not isinstance(plan, IdBatches):
            return
        ids, details = plan.ids.select(self)
        retry = [i for f in (self.previous.details.get("failed", []) if self.previous else []) for i in f["ids"]]
        self.ids_to_fetch = list(dict.fromkeys([*retry, *ids]))  # journaled failures first, no duplicates
        self.record.details.update(details, retried=len(retry), planned_ids=len(self.ids_to_fetch))

    def estimate_credits(self) -> int:
        return sum(self.extractor.credits.of(n) for n in self.extractor.plan.estimate_calls(self))

    # -- fetching ------------------------------------------------------------------------------------------
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Typed batches, chunk by chunk; failed and unparsable chunks are journaled, not raised."""
        ex = self.extractor
        plan = ex.plan.chunks(self)
        chunk = next(plan, None)
        while chunk is not None:
            returned = None
            try:
                response = self.client.get(ex.path, {**ex.params, **chunk.params})
                self.record.credits += response.credits
                try:
                    batch = to_batch(ex.columns, ex.items(response.data, chunk), self.snapshot_ts,
                                     self.record.run_id)
                except ParseError as err:
                    self._quarantine(chunk, response.raw, err)
                else:
                    returned = batch.num_rows
                    if batch.num_rows:
                        yield batch
            except PayloadError as err:
                self._quarantine(chunk, err.raw, err)
            except QuotaExhausted:
                raise
            except CmcError as err:
                if err.http_status in (401, 402, 403) or (err.http_status == 400 and not chunk.ids):
                    raise  # configuration: every other chunk would fail the same way
                self._journal(chunk, err)
            try:
                chunk = plan.send(returned)
            except StopIteration:
                chunk = None

    def _journal(self, chunk: Chunk, err: Exception) -> None:
        log.warning("chunk %s failed: %s", chunk.key, err)
        self.failed.append({"key": chunk.key, "ids": list(chunk.ids), "error": logs.redact(str(err))})

    def _quarantine(self, chunk: Chunk, raw: bytes, err: Exception) -> None:
        name = f"{self.extractor.name}-{snapshot_stamp(self.snapshot_ts)}-{len(self.quarantined) + 1}.json"
        path = quarantine_path(self.extractor.name, self.snapshot_ts, name)
        envelope = {"run_id": self.record.run_id, "endpoint": self.extractor.path, "chunk": chunk.key,
                    "params": chunk.params, "error": logs.redact(str(err)),
                    "payload": raw.decode("utf-8", errors="replace")}
        self.lake.write_bytes(path, json.dumps(envelope).encode())
        self.quarantined.append(path)
        log.warning("chunk %s quarantined at %s: %s", chunk.key, path, err)
        self._journal(chunk, err)

    # -- writing -------------------------------------------------------------------------------------------
    def write(self, batches: Iterator[pa.RecordBatch], part_rows: int) -> None:
        """Stream batches into part files of about `part_rows` rows; no file at all when nothing came back."""
        ex = self.extractor
        batches = iter(batches)
        for part in itertools.count(1):
            first = next(batches, None)
            if first is None:
                return
            path = bronze_path(ex.name, self.snapshot_ts, part if ex.plan.part_files else None)
            result = self.lake.write_parquet(path, ex.schema, _until_rows(first, batches, part_rows))
            self.record.files.append(path)
            self.record.rows += result.rows

    def unchanged_since_previous(self, table: pa.Table) -> bool:
        previous = self.previous
        if previous is None or not previous.files:
            return False
        column = self.extractor.id_column
        before = self.lake.read_parquet(previous.files).column(column)
        return set(pc.unique(before).to_pylist()) == set(pc.unique(table.column(column)).to_pylist())


def _batched(items: list, size: int) -> Iterator[tuple]:
    for start in range(0, len(items), size):
        yield tuple(items[start:start + size])


def _until_rows(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch], limit: int) -> Iterator[pa.RecordBatch]:
    yield first
    rows = first.num_rows
    while rows < limit:
        batch = next(rest, None)
        if batch is None:
            return
        rows += batch.num_rows
        yield batch
