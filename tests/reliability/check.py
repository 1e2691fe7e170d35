"""The fault matrix's independent check: nothing lost, nothing duplicated, nothing silently missing.

It trusts none of the pipeline's own counters. It compares what the sandbox says it served (its served journal,
GET /sandbox/served) with bronze read by pyarrow, bronze with silver read by delta-rs, silver with the
warehouse read by SQL, and the ledger's partial or failed runs with what `cryptolake status --json` shows:

- bronze: every row of every usable served answer is in the bronze files of the extract run that fetched it
  (matched by wall time), or rejected by that run into its quarantine; an unusable answer (truncated, malformed,
  wrong shape, late) is quarantined by its run or the run is recorded partial/failed; an answer fetched by a
  failed run may be missing (the run says so). Skipped-as-unchanged map runs store nothing by design. No
  (row id, snapshot) twice, no bronze file outside the ledger (unless `allow_orphans`: a killed run's leftovers).
- silver: each table's (keys, snapshot_timestamp) once (identity tables: keys once; fact_crypto_daily: keys
  and snapshot_date), and every key tuple of the table's visible bronze in the table or in silver/_quarantine.
  Keys with a NULL part count like any other (silver quarantines such rows with their reason). Derived keys are
  derived here as the transform documents them: fact_crypto_daily's snapshot_date is the snapshot's UTC date,
  fact_market_sentiment's (source, snapshot_timestamp) is ("latest", the extraction time) or ("historical",
  the index's own time) (spark_apps/transform/sentiment.py).
- warehouse: each dw row key once, and every silver key in its dw table or in meta.rejected_rows with a reason.
- status: the latest run of every job that the ledger records as partial or failed is listed by status.

A table that exists but cannot be read (a Delta log that does not parse, a store that fails) fails the check
loudly; only a table with no Delta log at all counts as absent.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable

import pandas as pd
import requests
from deltalake import DeltaTable
from sqlalchemy import text

from cryptolake.lake import Lake
from cryptolake.ledger import VISIBLE, Ledger, RunRecord
from cryptolake.services.extract.registry import EXTRACTORS
from cryptolake.spark_apps.transform.tables import QUARANTINE, TABLE_LIST, Table
from cryptolake.warehouse.migrate import engine_for

CLI = os.path.join(os.path.dirname(sys.executable), "cryptolake")
GOVERNOR_PATH = "/v1/key/info"  # the credit governor reads it before every group: that answer is no snapshot
SLACK = timedelta(seconds=0.05)  # ledger durations are rounded to the millisecond


@dataclass
class Tally:
    """Per place (bronze:<extractor>, silver:<table>, dw:<table>, status): what was compared and found wrong."""

    checked: collections.Counter = field(default_factory=collections.Counter)
    lost: collections.Counter = field(default_factory=collections.Counter)
    duplicated: collections.Counter = field(default_factory=collections.Counter)
    accounted: collections.Counter = field(default_factory=collections.Counter)  # missing, but recorded as such
    problems: list[str] = field(default_factory=list)

    def fail(self, place: str, what: str, lost: int = 0, duplicated: int = 0) -> None:
        self.lost[place] += lost
        self.duplicated[place] += duplicated
        self.problems.append(f"{place}: {what}")

    def summary(self) -> str:
        places = sorted(set(self.checked) | set(self.lost) | set(self.duplicated))
        return "\n".join(f"  {p}: checked {self.checked[p]}, lost {self.lost[p]}, duplicated {self.duplicated[p]}"
                         + (f", recorded as not stored {self.accounted[p]}" if self.accounted[p] else "")
                         for p in places)


# -- reading -------------------------------------------------------------------------------------------------
def served(world) -> list[dict]:
    answer = requests.get(f"{world.sandbox.url}/sandbox/served", timeout=30)
    answer.raise_for_status()
    journal = answer.json()
    assert journal["dropped"] == 0, f"the sandbox's served journal dropped {journal['dropped']} answers"
    return journal["served"]


def delta_options(settings) -> dict[str, str]:
    """delta-rs storage options for the world's lake (its S3 server)."""
    if settings.lake_uri.startswith("file:"):
        return {}
    return {"AWS_ENDPOINT_URL": settings.aws_endpoint_url, "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key, "AWS_REGION": settings.aws_region or "us-east-1",
            "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}


def lake_of(world) -> Lake:
    """The world's lake, from its settings alone (the contract: a world has `settings` and `sandbox`)."""
    return Lake.from_settings(world.settings)


def status_json(world) -> tuple[dict | None, str]:
    """(`cryptolake status --json` of the world's lake and warehouse, stderr); kept in world.outputs if any."""
    done = subprocess.run([CLI, "status", "--json"], env={**os.environ, **world.settings.as_env()},
                          capture_output=True, text=True, timeout=600)
    outputs = getattr(world, "outputs", None)
    if outputs is not None:
        outputs["status.stdout"], outputs["status.stderr"] = done.stdout, done.stderr
    try:
        return json.loads(done.stdout), done.stderr
    except ValueError:
        return None, done.stderr


def read_silver(world, name: str, columns: list[str]) -> pd.DataFrame | None:
    """The table's columns; None when the lake holds no Delta log for it (never built). A table that is there
    but cannot be read fails: taking it for absent would pass a check that saw nothing."""
    lake = lake_of(world)
    if not lake.list_files(f"silver/{name}/_delta_log"):
        return None
    try:
        return DeltaTable(lake.uri_of(f"silver/{name}"), storage_options=delta_options(world.settings)
                          ).to_pandas(columns=columns)
    except Exception as exc:  # noqa: BLE001 (delta-rs raises plain Exception subclasses)
        raise AssertionError(f"silver:{name}: the table is in the lake but cannot be read: "
                             f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}") from exc


def norm(column: str, value: Any) -> str:
    """One spelling per value whichever reader produced it (pyarrow, delta-rs, psycopg2, JSON)."""
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return "NULL"
    if column.endswith("timestamp") or column.endswith("_date"):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.date().isoformat() if column.endswith("_date") else stamp.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def key_tuples(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    return [tuple(norm(c, v) for c, v in zip(columns, row)) for row in frame[columns].itertuples(index=False)]


def natural_key(extractor: str, id_column: str | None) -> list[str]:
    """A bronze row's key within its snapshot: the widest key of the silver tables built from it alone."""
    keys = sorted((list(t.keys) for t in TABLE_LIST if t.sources == (extractor,)), key=len)
    return keys[-1] if keys else ([id_column] if id_column else [])


def row_id_column(extractor) -> str | None:
    """The bronze column holding what the served journal calls an item's id."""
    for source in ("id", "@key"):
        found = next((c.name for c in extractor.columns if c.path == source), None)
        if found:
            return found
    return None


# -- the check -----------------------------------------------------------------------------------------------
def assert_nothing_lost(world, *, allow_orphans: bool = False, served_since: float = 0.0) -> Tally:
    """Fail, with counts per place, when anything served is not stored exactly once all the way to the warehouse.

    `served_since` (unix time) ignores answers served earlier (a scenario that killed a run before its ledger
    record existed re-fetches them); `allow_orphans` accepts bronze files no ledger record lists (a killed
    run's leftovers, which no reader ever sees). Returns the tally (counts) for reports.
    """
    tally = Tally()
    ledger = Ledger(lake_of(world))
    bronze = check_bronze(world, ledger, tally, allow_orphans, served_since)
    silver = check_silver(world, bronze, tally)
    check_warehouse(world, silver, tally)
    check_status(world, ledger, tally)
    if tally.problems:
        shown = "\n".join(f"  - {p}" for p in tally.problems[:40])
        more = f"\n  ... and {len(tally.problems) - 40} more" if len(tally.problems) > 40 else ""
        raise AssertionError(f"lost {sum(tally.lost.values())}, duplicated {sum(tally.duplicated.values())} "
                             f"({len(tally.problems)} problems):\n{shown}{more}\nper place:\n{tally.summary()}")
    return tally


def _window(record: RunRecord) -> tuple[float, float]:
    """The run's wall-clock interval: ended_at minus its monotonic duration (its started_at may be simulated)."""
    end = record.ended_at or record.started_at
    start = end - timedelta(seconds=record.duration_seconds or 0)
    return (start - SLACK).timestamp(), (end + SLACK).timestamp()


def check_bronze(world, ledger: Ledger, tally: Tally, allow_orphans: bool, served_since: float
                 ) -> dict[str, pd.DataFrame]:
    """Served answers against bronze; returns each extractor's visible bronze rows (for the silver check)."""
    lake = ledger.lake
    answers = [a for a in served(world) if a["wall_time"] >= served_since]
    by_path = collections.defaultdict(list)
    for answer in answers:
        by_path[answer["path"]].append(answer)
    visible: dict[str, pd.DataFrame] = {}
    for name, extractor in EXTRACTORS.items():
        place = f"bronze:{name}"
        records = ledger.runs("extract", name)
        id_column = row_id_column(extractor)
        listed: collections.Counter = collections.Counter()
        frames = []
        present = set(lake.list_files(f"bronze/{name}", ".parquet"))
        for record in records:
            listed.update(record.files)
            gone = [f for f in record.files if f not in present]
            if gone:
                tally.fail(place, f"run {record.run_id} lists {len(gone)} file(s) no longer in the lake, "
                                  f"e.g. {gone[0]}")
            if record.status in VISIBLE and set(record.files) & present:
                frames.append(lake.read_parquet([f for f in record.files if f in present]).to_pandas())
        for path, count in listed.items():
            if count > 1:
                tally.fail(place, f"{path} is listed by {count} ledger records", duplicated=count - 1)
        orphans = sorted(present - set(listed))
        if orphans and not allow_orphans:
            tally.fail(place, f"{len(orphans)} bronze file(s) in no ledger record, e.g. {orphans[0]}")
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        visible[name] = rows
        key = natural_key(name, id_column)
        if len(rows) and key:
            counts = collections.Counter(key_tuples(rows, [*key, "snapshot_timestamp"]))
            twice = {k: n for k, n in counts.items() if n > 1}
            if twice:
                tally.fail(place, f"{len(twice)} (id, snapshot) stored more than once, e.g. {next(iter(twice))}",
                           duplicated=sum(n - 1 for n in twice.values()))
        _served_against_runs(lake, name, extractor, id_column, records, by_path.pop(extractor.path, []), present,
                             tally)
    for path, rest in by_path.items():
        tally.fail("bronze", f"{len(rest)} answer(s) of {path}, which no extractor reads")
    return visible


def _served_against_runs(lake: Lake, name: str, extractor, id_column: str | None, records: list[RunRecord],
                         answers: list[dict], present: set[str], tally: Tally) -> None:
    place = f"bronze:{name}"
    windows = [(_window(r), r) for r in records]
    per_run: dict[str, list[dict]] = collections.defaultdict(list)
    for answer in answers:
        owner = next((r for (start, end), r in windows if start <= answer["wall_time"] <= end), None)
        if owner is None:
            if extractor.path != GOVERNOR_PATH:
                tally.fail(place, f"{answer['items']} row(s) served at {answer['timestamp']} "
                                  f"(params {answer['params']}) by no recorded run", lost=answer["items"])
            continue
        per_run[owner.run_id].append(answer)
    by_request = id_column and next(c.path for c in extractor.columns if c.name == id_column) == "@key"
    for record in records:
        got = per_run.get(record.run_id, [])
        if extractor.path == GOVERNOR_PATH:
            got = got[-1:]  # the governor's read just before the run may fall in its window
        usable = [a for a in got if a["usable"]]
        expected = collections.Counter(i for a in usable for i in _row_ids(a, id_column, by_request))
        tally.checked[place] += sum(expected.values())
        if record.status == "skipped":
            if expected and not record.details.get("unchanged"):
                tally.fail(place, f"run {record.run_id} skipped but was served {sum(expected.values())} rows",
                           lost=sum(expected.values()))
            elif expected and record.details.get("ids") != sum(expected.values()):
                tally.fail(place, f"run {record.run_id} unchanged with {record.details.get('ids')} ids, served "
                                  f"{sum(expected.values())}", lost=abs(sum(expected.values()) -
                                                                        (record.details.get("ids") or 0)))
            continue
        stored: collections.Counter = collections.Counter()
        files = [f for f in record.files if f in present]
        if files:
            table = lake.read_parquet(files)
            stored.update(table.column(id_column).to_pylist() if id_column else [None] * table.num_rows)
        quarantined = [json.loads(lake.read_bytes(p)) for p in record.details.get("quarantined", [])]
        rejected = collections.Counter(_rejected_id(item["key"], id_column) for q in quarantined
                                       for item in q.get("items", []))
        whole = [q for q in quarantined if "items" not in q]
        missing = expected - stored - rejected
        # An item rejected because its id is missing is keyed by its position: it accounts for one served id.
        anonymous = sum(n for key, n in rejected.items() if key not in expected)
        if 0 < sum(missing.values()) <= anonymous:
            tally.accounted[place] += sum(missing.values())
            missing = collections.Counter()
        extra = stored - expected
        if missing and record.status == "failed":
            tally.accounted[place] += sum(missing.values())
        elif missing:
            tally.fail(place, f"run {record.run_id} ({record.status}): {sum(missing.values())} served row(s) "
                              f"neither in its bronze files nor rejected, e.g. id {next(iter(missing))}",
                       lost=sum(missing.values()))
        if extra:
            tally.fail(place, f"run {record.run_id}: {sum(extra.values())} bronze row(s) more than served",
                       duplicated=sum(extra.values()))
        unusable = [a for a in got if not a["usable"]]
        unquarantined = [a for a in unusable if a["fault"] != "timeout"
                         and not any(_same_params(q.get("params", {}), a["params"]) for q in whole)]
        if unquarantined and record.status not in ("partial", "failed"):
            tally.fail(place, f"run {record.run_id} ({record.status}): {len(unquarantined)} unusable answer(s) "
                              f"neither quarantined nor recorded as partial", lost=sum(a["items"] for a in unusable))


def _row_ids(answer: dict, id_column: str | None, by_request: bool) -> list:
    """The id each served row has in bronze: its own, or (items keyed by the request, e.g. an exchange's
    wallets) the id asked for."""
    if not id_column:
        return [None] * answer["items"]
    if by_request and all(i is None for i in answer["ids"]):
        return [int(answer["params"]["id"])] * answer["items"]
    return answer["ids"]


def _rejected_id(key: Any, id_column: str | None) -> Any:
    if id_column is None:
        return None
    try:
        return int(key)
    except (TypeError, ValueError):
        return key


def _same_params(journaled: dict, served_params: dict) -> bool:
    return {k: str(v) for k, v in journaled.items()} == {k: str(v) for k, v in served_params.items()}


# -- silver ----------------------------------------------------------------------------------------------------
def silver_key(table: Table) -> list[str]:
    """The columns a silver row is unique on."""
    if table.kind == "identity":
        return list(table.keys)
    if table.kind == "daily":
        return [*table.keys, "snapshot_date"]
    return [*table.keys, "snapshot_timestamp"]


def bronze_keys(table: Table, bronze: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """The silver key columns of `table` as its visible bronze rows give them (derived where the transform
    derives them, see the module docstring); None when its sources hold no rows."""
    columns = silver_key(table)
    if table.name == "fact_market_sentiment":
        parts = [frame.assign(source=source, snapshot_timestamp=frame[stamp])
                 for source, extractor, stamp in (("latest", "fear_greed_latest", "snapshot_timestamp"),
                                                  ("historical", "fear_greed_historical", "index_timestamp"))
                 if len(frame := bronze.get(extractor, pd.DataFrame()))]
        return pd.concat(parts, ignore_index=True)[columns] if parts else None
    (source,) = table.sources  # every other table reads one extractor's bronze
    frame = bronze.get(source)
    if frame is None or not len(frame):
        return None
    if table.kind == "daily":
        frame = frame.assign(snapshot_date=frame["snapshot_timestamp"])
    missing = set(columns) - set(frame.columns)
    assert not missing, f"silver:{table.name}: key columns {sorted(missing)} are neither in bronze nor derived here"
    return frame[columns]


def check_silver(world, bronze: dict[str, pd.DataFrame], tally: Tally) -> dict[str, list[tuple]]:
    """Returns each table's silver keys (for the warehouse check)."""
    quarantine = read_silver(world, QUARANTINE, ["table", "record"])
    found: dict[str, list[tuple]] = {}
    for table in TABLE_LIST:
        place = f"silver:{table.name}"
        columns = silver_key(table)
        frame = read_silver(world, table.name, columns)
        keys = key_tuples(frame, columns) if frame is not None else []
        found[table.name] = keys
        tally.checked[place] += len(keys)
        counts = collections.Counter(keys)
        twice = {k: n for k, n in counts.items() if n > 1}
        if twice:
            tally.fail(place, f"{len(twice)} key(s) more than once, e.g. {next(iter(twice))}",
                       duplicated=sum(n - 1 for n in twice.values()))
        source = bronze_keys(table, bronze)
        if source is None:
            continue
        expected = set(key_tuples(source, columns))
        held = set(keys)
        if quarantine is not None:
            records = quarantine[quarantine["table"] == table.name]["record"]
            # a record is the row as JSON, a NULL key part left out: reindexing brings it back as NULL
            rejected = pd.DataFrame([json.loads(r) for r in records])
            if len(rejected):
                if table.kind == "daily":
                    rejected = rejected.reindex(columns=[*table.keys, "snapshot_timestamp"])
                    rejected["snapshot_date"] = rejected["snapshot_timestamp"]
                held |= set(key_tuples(rejected.reindex(columns=columns), columns))
        missing = expected - held
        if missing:
            tally.fail(place, f"{len(missing)} bronze key(s) neither in silver nor in its quarantine, "
                              f"e.g. {sorted(missing)[0]}", lost=len(missing))
    return found


# -- warehouse -------------------------------------------------------------------------------------------------
def check_warehouse(world, silver: dict[str, list[tuple]], tally: Tally) -> None:
    engine = engine_for(world.settings.warehouse_url)
    try:
        with engine.connect() as connection:
            rejected = collections.defaultdict(set)
            for name, key, reason in connection.execute(text(
                    "SELECT table_name, row_key, reason FROM meta.rejected_rows")):
                if not reason:
                    tally.fail(f"dw:{name}", f"rejected row {key} has no reason")
                rejected[name].add(json.dumps(key, sort_keys=True))
            for table in TABLE_LIST:
                place = f"dw:{table.name}"
                columns = silver_key(table)
                quoted = ", ".join(f'"{c}"' for c in columns)
                rows = connection.execute(text(f'SELECT {quoted} FROM dw."{table.name}"')).all()
                keys = [tuple(norm(c, v) for c, v in zip(columns, row)) for row in rows]
                tally.checked[place] += len(keys)
                twice = {k: n for k, n in collections.Counter(keys).items() if n > 1}
                if twice:
                    tally.fail(place, f"{len(twice)} key(s) more than once",
                               duplicated=sum(n - 1 for n in twice.values()))
                held = set(keys) | {tuple(norm(c, json.loads(k).get(c)) for c in columns) for k in rejected[table.name]}
                missing = set(silver[table.name]) - held
                if missing:
                    tally.fail(place, f"{len(missing)} silver row(s) neither in dw nor in meta.rejected_rows, "
                                      f"e.g. {sorted(missing)[0]}", lost=len(missing))
    finally:
        engine.dispose()


# -- status ----------------------------------------------------------------------------------------------------
def check_status(world, ledger: Ledger, tally: Tally) -> None:
    """The latest run of each job a table depends on, when partial or failed, is listed by `cryptolake status`."""
    names = {"extract": {s for t in TABLE_LIST for s in t.sources}, "transform": {t.name for t in TABLE_LIST},
             "load": {t.name for t in TABLE_LIST}}
    latest: dict[tuple[str, str], RunRecord] = {}
    for record in ledger.records():
        if record.name in names.get(record.step, ()):
            key = (record.step, record.name)
            if key not in latest or record.run_id > latest[key].run_id:
                latest[key] = record
    bad = [r for r in latest.values() if r.status in ("partial", "failed")]
    shown, stderr = status_json(world)
    if shown is None:
        tally.fail("status", f"`cryptolake status --json` printed no JSON: {stderr.strip()[-300:]}")
        return
    listed = {(step, run["run_id"], run["status"]) for t in shown["tables"] for step, runs in t["runs"].items()
              for run in runs}
    tally.checked["status"] += len(bad)
    for record in bad:
        if (record.step, record.run_id, record.status) not in listed:
            tally.fail("status", f"{record.step} {record.name} run {record.run_id} is {record.status} in the "
                                 "ledger but `cryptolake status --json` does not show it", lost=1)


def counts(tally: Tally, places: Iterable[str] | None = None) -> dict[str, int]:
    """Totals for a report line: rows checked, lost, duplicated."""
    chosen = list(places) if places is not None else list(tally.checked)
    return {"checked": sum(tally.checked[p] for p in chosen), "lost": sum(tally.lost.values()),
            "duplicated": sum(tally.duplicated.values())}
