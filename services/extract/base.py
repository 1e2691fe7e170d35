"""What an extractor is (data) and how every extractor runs (one engine).

An extractor declares its endpoint, static parameters, how requests are planned (one call, pages, id batches),
where ids come from (incremental policies that read the ledger and the lake, never the warehouse), how credits
are charged, and its typed columns. The engine runs any of them the same way: plan chunks, fetch, type, stream
into bronze part files, quarantine what cannot be parsed, journal failed chunks for the next run, record the
run in the ledger last (so the snapshot becomes visible only when complete).
"""

from __future__ import annotations

import abc
import collections
import itertools
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Generator, Iterable, Iterator, Mapping

import pyarrow as pa

from cryptolake import logs, progress
from cryptolake.lake import Lake, bronze_path, quarantine_path, snapshot_stamp
from cryptolake.ledger import Ledger, RunRecord
from cryptolake.settings import Settings
from cryptolake.services.client import CmcClient, CmcError, PayloadError, QuotaExhausted
from cryptolake.services.extract.fields import Column, ParsedPage, ParseError, schema_of, to_batch

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
    """Cost of one call: `per_call`, or one credit per `per_items` items asked for (rounded up), plus `base`
    where the API charges a call on top of the items (/category: 1 + 1 per 200 coins)."""

    per_call: int = 1
    per_items: int | None = None
    base: int = 0

    def of(self, items_asked: int) -> int:
        if not self.per_items:
            return self.per_call
        return self.base + max(self.per_call, math.ceil(items_asked / self.per_items))


# -- request planning ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    key: str  # identity journaled when the chunk fails, e.g. "start=5001" or "id=270"
    params: dict[str, Any]
    ids: tuple = ()
    size: int = 1  # items asked for, for credit estimates


class Plan(abc.ABC):
    """Yields chunks; the engine sends back how many items each answer held, parsed or not (None when the
    call failed or its `data` was not the expected shape)."""

    part_files = True
    settings_read: tuple[str, ...] = ()  # the settings it plans with, which a job of the pipeline spec may set

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
    """start/limit paging. With `total_setting` the total is configured; otherwise page until a short page.

    Open-ended paging also ends at a failed or unreadable page: without its item count there is no telling
    whether more pages follow, and asking again would spend a credit per call for nothing.
    """

    page_size: int
    total_setting: str | None = None

    @property
    def settings_read(self) -> tuple[str, ...]:
        return (self.total_setting,) if self.total_setting else ()

    def total(self, run: "ExtractRun") -> int | None:
        return getattr(run.settings, self.total_setting) if self.total_setting else None

    def chunks(self, run):
        total = self.total(run)
        start = 1
        while total is None or start <= total:
            limit = self.page_size if total is None else min(self.page_size, total - start + 1)
            returned = yield Chunk(f"start={start}", {"start": start, "limit": limit}, size=limit)
            if (returned is None and total is None) or (returned is not None and returned < limit):
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
    """Ids from a policy, `size` per call, joined into `param` (CSV). Journaled failures are retried first.

    `items_per_id`: items one id can bring back (a category's coins, up to its `limit`), for credit estimates.
    """

    ids: "IdPolicy"
    size: int = 100
    param: str = "id"
    extra: Mapping[str, Any] = field(default_factory=dict)
    items_per_id: int = 1

    @property
    def settings_read(self) -> tuple[str, ...]:
        return self.ids.settings_read

    def chunks(self, run):
        for batch in _batched(run.ids_to_fetch, self.size):
            key = f"{self.param}={batch[0]}" if len(batch) == 1 else f"{self.param}={batch[0]}..{batch[-1]}"
            yield Chunk(key, {self.param: ",".join(map(str, batch)), **self.extra}, ids=tuple(batch),
                        size=len(batch) * self.items_per_id)

    def estimate_calls(self, run):
        return [len(b) * self.items_per_id for b in _batched(run.ids_to_fetch, self.size)]


# -- where ids come from (incremental policies) --------------------------------------------------------------
@dataclass(frozen=True)
class IdPolicy(abc.ABC):
    """Ids are read from the latest complete snapshot of `source` (column `column`)."""

    source: str
    column: str
    settings_read = ("cmc_rescan_days",)

    def source_ids(self, run: "ExtractRun") -> list:
        latest = run.ledger.latest("extract", self.source)
        if latest is None:
            return []
        table = run.lake.read_parquet(latest.files, columns=[self.column])
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
            done |= run.ids_in(record)
        return [i for i in ids if i not in done], {"full_scan": False, "already_enriched": len(done)}


class ActiveSet(IdPolicy):
    """Ids that returned items last time; every id on a full scan (every CMC_RESCAN_DAYS)."""

    def select(self, run):
        ids = self.source_ids(run)
        if self.due_full_scan(run) or run.previous is None:
            return ids, {"full_scan": True}
        active = run.ids_in(run.previous)
        return [i for i in ids if i in active], {"full_scan": False}


class RotatingSlice(IdPolicy):
    """CMC_CATEGORY_SLICE ids per run, continuing where the previous run stopped, wrapping around."""

    settings_read = ("cmc_category_slice",)

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
    params: Mapping[str, Any] = field(default_factory=dict)
    items: Callable[[Any, Chunk], Items] = listed
    plan: Plan = field(default_factory=OneCall)
    credits: Credits = field(default_factory=Credits)
    id_column: str | None = None  # the id this extractor's rows are about (for diffs and policies)
    skip_unchanged: bool = False  # maps: write nothing when no row changed since the last snapshot

    @property
    def schema(self) -> pa.Schema:
        return schema_of(self.columns)


# -- one run -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ceiling:
    """The most calls and credits one run may spend, from its own estimate: no answer can remove the bound."""

    calls: int
    credits: int

    @classmethod
    def around(cls, calls: int, credits: int, settings: Settings) -> "Ceiling":
        factor, extra = settings.cmc_run_ceiling_factor, settings.cmc_run_ceiling_extra
        return cls(math.ceil(factor * calls) + extra, math.ceil(factor * credits) + extra)

    def refuses(self, calls_made: int, credits_spent: int, next_cost: int) -> str | None:
        """None while the next call fits, else why the run stops."""
        if calls_made >= self.calls:
            return f"stopped at the run's ceiling of {self.calls} calls (CMC_RUN_CEILING_FACTOR/_EXTRA)"
        if credits_spent + next_cost > self.credits:
            return (f"stopped at the run's ceiling of {self.credits} credits: {credits_spent} spent, the next call "
                    f"costs {next_cost} (CMC_RUN_CEILING_FACTOR/_EXTRA)")
        return None


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
        self.rejected_items = 0
        self.nulled: collections.Counter = collections.Counter()
        self.requests = 0  # logical calls (a retried call counts once), for the ceiling
        self.ceiling: Ceiling | None = None
        self.stopped: str | None = None  # why the run stopped before its plan's end
        self.quota_stop: QuotaExhausted | None = None  # the plan's quota ran out: the pages already paid are kept

    def last_full_scan(self) -> RunRecord | None:
        return next((r for r in reversed(self.history) if r.details.get("full_scan")), None)

    def runs_since_last_full_scan(self) -> list[RunRecord]:
        last = self.last_full_scan()
        return [r for r in self.history if last is not None and r.run_id >= last.run_id]

    def ids_in(self, record: RunRecord | None) -> set:
        """The ids an earlier run of this extractor wrote (its id column only)."""
        if record is None or not record.files:
            return set()
        column = self.extractor.id_column
        return set(self.lake.read_parquet(record.files, columns=[column]).column(column).to_pylist())

    def plan_ids(self) -> None:
        plan = self.extractor.plan
        if not isinstance(plan, IdBatches):
            return
        ids, details = plan.ids.select(self)
        retry = [i for f in (self.previous.details.get("failed", []) if self.previous else []) for i in f["ids"]]
        self.ids_to_fetch = list(dict.fromkeys([*retry, *ids]))  # journaled failures first, no duplicates
        self.record.details.update(details, retried=len(retry), planned_ids=len(self.ids_to_fetch))

    def estimate(self) -> int:
        """Credits this run expects to spend; also sets the run's ceiling from the same estimate."""
        calls = self.extractor.plan.estimate_calls(self)
        credits = sum(self.extractor.credits.of(n) for n in calls)
        self.ceiling = Ceiling.around(len(calls), credits, self.settings)
        self.record.details.update(estimated_calls=len(calls), estimated_credits=credits,
                                   ceiling={"calls": self.ceiling.calls, "credits": self.ceiling.credits})
        return credits

    # -- fetching ------------------------------------------------------------------------------------------
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Typed batches, chunk by chunk, within the ceiling; failed and unparsable chunks are journaled."""
        ex = self.extractor
        if self.ceiling is None:
            self.estimate()
        ceiling = self.ceiling
        plan = ex.plan.chunks(self)
        with progress.bar(self.record.details.get("estimated_calls"), ex.name, "call") as bar:
            chunk = next(plan, None)
            while chunk is not None:
                self.stopped = ceiling.refuses(self.requests, self.record.credits, ex.credits.of(chunk.size))
                if self.stopped:
                    log.error("%s %s", ex.name, self.stopped)
                    plan.close()
                    return
                page = self._fetch(chunk)
                bar.update()
                if self.quota_stop:
                    plan.close()
                    return
                if page is not None and page.batch.num_rows:
                    yield page.batch
                try:
                    chunk = plan.send(None if page is None else page.items)
                except StopIteration:
                    chunk = None

    def _fetch(self, chunk: Chunk) -> ParsedPage | None:
        """One chunk's typed page; None when the call failed or the payload was not the expected shape."""
        ex = self.extractor
        self.requests += 1
        try:
            response = self.client.get(ex.path, {**ex.params, **chunk.params})
        except PayloadError as err:
            if err.http_status == 200:  # charged, but the status that would say how much is unreadable
                self.record.credits += ex.credits.of(chunk.size)
            self._quarantine(chunk, err, payload=err.raw.decode("utf-8", errors="replace"))
            return None
        except QuotaExhausted as err:  # ends the batches, so the pages fetched so far are still written
            self.quota_stop = err
            return None
        except CmcError as err:
            if err.http_status in (401, 402, 403) or (err.http_status == 400 and not chunk.ids):
                raise  # configuration: every other chunk would fail the same way
            self._journal(chunk, err)
            return None
        self.record.credits += response.credits
        try:
            page = to_batch(ex.columns, ex.items(response.data, chunk), self.snapshot_ts, self.record.run_id)
        except ParseError as err:  # `data` itself is not the expected shape: the whole page is unusable
            self._quarantine(chunk, err, payload=response.raw.decode("utf-8", errors="replace"))
            return None
        self.nulled.update(page.nulled)
        if page.rejected:
            self.rejected_items += len(page.rejected)
            self._quarantine(chunk, ParseError(f"{len(page.rejected)} of {page.items} items rejected"),
                             items=[{"key": r.key, "error": r.error, "item": r.item} for r in page.rejected],
                             journal=False)
        return page

    def _journal(self, chunk: Chunk, err: Exception) -> None:
        log.warning("chunk %s failed: %s", chunk.key, err)
        self.failed.append({"key": chunk.key, "ids": list(chunk.ids), "error": logs.redact(str(err))})

    def _quarantine(self, chunk: Chunk, err: Exception, journal: bool = True, **content: Any) -> None:
        """Keep what could not be parsed (a whole payload, or the rejected items of a page) with the reason."""
        name = f"{self.extractor.name}-{snapshot_stamp(self.snapshot_ts)}-{len(self.quarantined) + 1}.json"
        path = quarantine_path(self.extractor.name, self.snapshot_ts, name)
        envelope = {"run_id": self.record.run_id, "endpoint": self.extractor.path, "chunk": chunk.key,
                    "params": chunk.params, "error": logs.redact(str(err)), **content}
        self.lake.write_bytes(path, json.dumps(envelope, default=str).encode())
        self.quarantined.append(path)
        log.warning("chunk %s: quarantined at %s: %s", chunk.key, path, err)
        if journal:
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
        """True when the previous snapshot holds exactly these rows (every column but the lineage)."""
        previous = self.previous
        if previous is None or not previous.files:
            return False
        content = [c.name for c in self.extractor.columns]
        try:
            before = self.lake.read_parquet(previous.files, columns=content)
        except (pa.ArrowInvalid, KeyError):  # written with another schema: changed by definition
            return False
        order = [(name, "ascending") for name in content if not pa.types.is_list(table.schema.field(name).type)]
        now = table.select(content).sort_by(order)
        return before.num_rows == now.num_rows and before.cast(now.schema).sort_by(order).equals(now)

    def summary(self) -> dict[str, Any]:
        """What the ledger keeps of this run besides rows, files and credits."""
        return {"requests": self.requests, "failed": self.failed, "quarantined": self.quarantined,
                "rejected_items": self.rejected_items, "nulled_fields": dict(self.nulled),
                **({"stopped": self.stopped} if self.stopped else {})}


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
