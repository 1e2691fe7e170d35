"""Silver Delta -> PostgreSQL warehouse, one dw table at a time, in foreign-key order (DESIGN.md, Load semantics).

Per table:
  advisory lock (a second load of the same table waits, at most LOAD_LOCK_WAIT_SECONDS, then refuses) -> the silver rows changed since the watermark
  (change data feed; the first load reads the table at its current version) -> latest row per primary key
  -> Spark JDBC into an UNLOGGED staging table meta.load_stage_<table> -> ONE transaction: pending rejected
  rows join the staged rows, rows with a NULL key or an unknown foreign key go to meta.rejected_rows (with
  the reason), the rest are upserted into dw (ON CONFLICT DO NOTHING or DO UPDATE per models.upsert_kind),
  rejected rows now loaded are marked resolved, the watermark advances, the staging table is dropped.
After the tables, the run ledger is mirrored into meta.runs (warehouse/runs.py).
A load killed anywhere leaves dw and the watermark as they were: the next load reads the same versions again.
A short PostgreSQL outage (restart, failover) is waited out: a table whose attempt loses the server (it cannot
be reached, or ends the session) is tried again whole, from the lock to the transaction, until the server has
been unreachable for LOAD_OUTAGE_WAIT_SECONDS; the watermark moves with the rows, so an attempt whose commit
landed finds nothing new. SQL errors are not retried.
Silver deletes (change type `delete`) are not propagated: the warehouse keeps what it loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar
from urllib.parse import urlencode

from py4j.protocol import Py4JError
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from sqlalchemy import Table, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.engine import Connection, Engine, make_url
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from cryptolake import logs, progress
from cryptolake.errors import CryptolakeError
from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.settings import Settings
from cryptolake.spark_apps.transform.tables import tables_of
from cryptolake.warehouse.migrate import engine_for
from cryptolake.warehouse.models import load_order, upsert_kind
from cryptolake.warehouse.runs import mirror_ledger

log = logs.get(__name__)
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock wait that ran out of lock_timeout
# A server that cannot be reached or ended the session: SQLSTATE class 08 (connection exception), 57P01
# admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up, shutting down, in recovery).
_GONE_STATES = ("57P01", "57P02", "57P03")
# The same from libpq, which gives no SQLSTATE for a connection that failed to open (a wrong password does not
# match: it is no outage).
_GONE_WORDS = ("Connection refused", "the database system is", "timeout expired", "Connection reset",
               "No route to host")
_WAIT_BETWEEN = 10  # seconds, at most, between two attempts during an outage
T = TypeVar("T")


def lock_key(table: str) -> str:
    """The text whose hash is the table's advisory lock: one load of a table at a time."""
    return f"cryptolake-load:{table}"


class LoadRefused(CryptolakeError):
    """Another load of the same table held its advisory lock for longer than the load would wait."""


def server_gone(exc: BaseException) -> bool:
    """True when `exc` says PostgreSQL could not be reached or ended the session (an outage), from psycopg2
    through SQLAlchemy or from the JDBC driver through Spark; False for every SQL error."""
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "pgcode", None)
        if state:
            return state.startswith("08") or state in _GONE_STATES
        return exc.connection_invalidated or any(w in str(exc.orig) for w in _GONE_WORDS)
    # The JVM's exception and its causes: Py4JJavaError's, or the one PySpark converted (kept as _origin).
    cause, depth = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None), 0
    while cause is not None and depth < 20:
        try:
            state = cause.getSQLState()  # java.sql.SQLException and its subclasses (PSQLException)
        except Py4JError:  # no such method: not an SQL exception
            state = None
        if state:
            return state.startswith("08") or state in _GONE_STATES
        cause, depth = cause.getCause(), depth + 1
    return False


class Outage:
    """Waits out one PostgreSQL outage for a whole load: `attempt` tries a unit of work (a table, the ledger
    mirror) again while the server is gone, until it has been gone for `limit` seconds in all. The clock is the
    load's, not the table's: once one table has waited the bound, the next gives up at its first failure."""

    def __init__(self, limit: int):
        self.limit = limit
        self.since: float | None = None  # when the current outage was first met

    def attempt(self, what: str, work: Callable[[], T]) -> T:
        retrying = Retrying(retry=retry_if_exception(self._gone), stop=self._over,
                            wait=wait_random_exponential(multiplier=1, max=_WAIT_BETWEEN),
                            before_sleep=lambda state: self._log(what, state), reraise=True)
        try:
            result = retrying(work)
        except Exception as exc:
            if self.since is not None and server_gone(exc):
                raise CryptolakeError(
                    f"cannot reach the warehouse for {what}: still unreachable after {self.limit} s "
                    f"(LOAD_OUTAGE_WAIT_SECONDS): {_first_line(exc)}",
                    "Check WAREHOUSE_URL and that PostgreSQL is up, then run the load again") from None
            raise
        self.since = None
        return result

    def _gone(self, exc: BaseException) -> bool:
        if not server_gone(exc):
            self.since = None  # the server answered
            return False
        self.since = self.since or time.monotonic()
        return True

    def _over(self, state: RetryCallState) -> bool:
        return self.since is not None and time.monotonic() - self.since >= self.limit

    def _log(self, what: str, state: RetryCallState) -> None:
        log.warning("%s: the warehouse is unreachable (%s); trying again in %.0f s (waited %.0f of %d s, "
                    "LOAD_OUTAGE_WAIT_SECONDS)", what, _first_line(state.outcome.exception()),
                    state.next_action.sleep, time.monotonic() - self.since, self.limit)


def _first_line(exc: BaseException) -> str:
    """The message of a psycopg2 or JDBC error, one line, redacted."""
    cause = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    message = str(cause.getMessage()) if cause is not None else str(getattr(exc, "orig", None) or exc)
    return logs.redact(message.strip().splitlines()[0] if message.strip() else type(exc).__name__)


@dataclass(frozen=True)
class Jdbc:
    """Where Spark writes: the URL carries no credentials; the password travels only as a write option."""

    url: str
    user: str
    password: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "Jdbc":
        warehouse_url = settings.require("warehouse_url", "Set it (see `cryptolake local env`) and run again")
        logs.register_secret(warehouse_url)
        url = make_url(warehouse_url)
        query = f"?{urlencode(dict(url.query))}" if url.query else ""
        return cls(f"jdbc:postgresql://{url.host or 'localhost'}:{url.port or 5432}/{url.database}{query}",
                   url.username or "", url.password or "")


@dataclass
class TableLoad:
    table: str
    status: str                      # success | skipped (nothing new, nothing resolved)
    from_version: int | None = None  # watermark before the load (None: first load)
    to_version: int | None = None
    rows_read: int = 0
    rows_loaded: int = 0             # inserted or changed in dw
    rows_rejected: int = 0           # pending in meta.rejected_rows after the load
    rows_resolved: int = 0           # earlier rejected rows loaded now


@dataclass
class LoadResult:
    group: str
    tables: list[TableLoad] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def load_group(spark: SparkSession, settings: Settings, group: str, *, tables: list[str] | None = None,
               as_of_version: int | None = None, lake: Lake | None = None) -> LoadResult:
    """Load the group's tables (or the given subset) dimensions first; fail-soft per table.
    `as_of_version` rolls the chosen tables back to that silver version (see TableLoader)."""
    lake = lake or Lake.from_settings(settings)
    names = {t.name for t in tables_of(group)} & set(tables or [t.name for t in tables_of(group)])
    chosen = [t for t in load_order() if t.name in names]
    jdbc = Jdbc.from_settings(settings)
    engine = engine_for(settings.warehouse_url)
    outcome = LoadResult(group)
    outage = Outage(settings.load_outage_wait_seconds)
    try:
        with progress.bar(len(chosen), f"load {group}", "table") as bar:
            for table in chosen:
                bar.set_postfix_str(table.name)
                with logs.context(table=table.name):
                    _soft(outcome, table.name, lambda: outcome.tables.append(
                        TableLoader(spark, engine, jdbc, lake, table, group, as_of_version,
                                    lock_wait_seconds=settings.load_lock_wait_seconds, outage=outage).run()))
                bar.update()
        _soft(outcome, "meta.runs", lambda: outage.attempt("meta.runs", lambda: mirror_ledger(engine, lake)))
    finally:
        engine.dispose()
    log.info("load %s: %d tables loaded, %d failed%s", group, len(outcome.tables), len(outcome.failed),
             f" ({', '.join(outcome.failed)})" if outcome.failed else "")
    return outcome


def _soft(outcome: LoadResult, what: str, step) -> None:
    """Run one step; a failure is logged (redacted) and recorded, and the group goes on."""
    try:
        step()
    except Exception as exc:
        log.error("%s failed: %s", what, logs.redact(f"{type(exc).__name__}: {exc}"),
                  exc_info=not isinstance(exc, CryptolakeError))
        outcome.failed.append(what)


class TableLoader:
    """One table's load. With `as_of`, a rollback: the table is made equal to silver version `as_of` (rows
    absent from it are deleted from dw, pending rejects absent from it are dropped, the watermark becomes
    `as_of`, so the next plain load brings the later versions back)."""

    def __init__(self, spark: SparkSession, engine: Engine, jdbc: Jdbc, lake: Lake, table: Table, group: str,
                 as_of: int | None = None, *, lock_wait_seconds: int = 0, outage: Outage | None = None):
        self.lock_wait_seconds = lock_wait_seconds
        self.outage = outage or Outage(0)
        self.spark, self.engine, self.jdbc, self.lake, self.table, self.group = spark, engine, jdbc, lake, table, group
        self.as_of = as_of
        self.name = table.name
        self.stage = f"meta.load_stage_{self.name}"
        self.columns = [c.name for c in table.columns]
        self.keys = [c.name for c in table.primary_key.columns]
        self.uri = lake.spark_uri(f"silver/{self.name}")

    def run(self) -> TableLoad:
        with Ledger(self.lake).run("load", self.name, params={"group": self.group}) as record:
            if not self.lake.exists(f"silver/{self.name}/_delta_log"):
                raise CryptolakeError(f"silver table {self.name} does not exist yet",
                                      "Run `cryptolake transform` for its group first")
            result = self.outage.attempt(self.name, lambda: self._attempt(record.run_id))
            if self.as_of is not None:
                record.params["as_of_version"] = self.as_of
            elif result.from_version == result.to_version and not result.rows_resolved:
                result.status = record.status = "skipped"
            record.rows = result.rows_loaded
            record.upstream = {"silver": self.name, "from_version": result.from_version,
                               "to_version": result.to_version}
            record.details.update(rows_read=result.rows_read, rows_loaded=result.rows_loaded,
                                  rows_rejected=result.rows_rejected, rows_resolved=result.rows_resolved)
        log.info("%s: versions %s..%d, %d rows read, %d loaded, %d rejected pending, %d resolved", self.name,
                 "-" if result.from_version is None else result.from_version + 1, result.to_version,
                 result.rows_read, result.rows_loaded, result.rows_rejected, result.rows_resolved)
        return result

    def _attempt(self, run_id: str) -> TableLoad:
        """One whole try: lock, watermark, staging, the transaction. Run again after an outage, it starts from
        the watermark as the server has it, so rows that did commit are not loaded twice."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as session:
            self._lock(session)
            since = session.execute(text("SELECT delta_version FROM meta.load_watermark WHERE table_name = :t"),
                                    {"t": self.name}).scalar()
            current = self._current_version()
            if self.as_of is not None:
                if not 0 <= self.as_of <= current:
                    raise CryptolakeError(f"silver {self.name} has no version {self.as_of}",
                                          f"Choose a version from 0 to {current}")
                since, current = None, self.as_of  # the table as it was at that version
            result = TableLoad(self.name, "success", since, current)
            self._create_stage(session)
            if since is None or since < current:
                self._write_stage(self._changes(since, current))
            # The lock is the session's: a server restart meanwhile ended it (and freed the lock), so the
            # transaction goes ahead only on a session that still holds it; else the attempt starts again.
            session.execute(text("SELECT 1"))
            self._move(result, run_id)
        return result

    # -- PostgreSQL ------------------------------------------------------------------------------------------
    def _lock(self, session: Connection) -> None:
        """A session advisory lock, released when the load ends or its process dies. Another load of the table
        is waited for, within a bound: two loads of one group then take the tables one after the other, both in
        the foreign-key order, so they cannot deadlock and both end with every table loaded."""
        session.execute(text("SELECT set_config('lock_timeout', :t, false)"),
                        {"t": f"{self.lock_wait_seconds * 1000 or 1}ms"})  # 0 ms would mean wait forever
        reset = text("SELECT set_config('lock_timeout', '0', false)")  # the pooled session's default again
        try:
            session.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": lock_key(self.name)})
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != LOCK_NOT_AVAILABLE:
                raise  # the session is lost with its server: nothing to reset
            session.execute(reset)
            raise LoadRefused(f"load of {self.name} refused: another load of this table is running (PostgreSQL "
                              f"advisory lock) and did not end within {self.lock_wait_seconds} s",
                              "Run it again once that load has ended, or raise LOAD_LOCK_WAIT_SECONDS") from None
        session.execute(reset)

    def _create_stage(self, session: Connection) -> None:
        """A fresh UNLOGGED copy of the target's columns, without constraints (bad keys are caught in SQL)."""
        session.execute(text(f"DROP TABLE IF EXISTS {self.stage}"))
        session.execute(text(f"CREATE UNLOGGED TABLE {self.stage} AS SELECT * FROM {self.table.fullname} "
                             "WITH NO DATA"))

    def _key_json(self, alias: str) -> str:
        return "jsonb_build_object(" + ", ".join(f"'{k}', {alias}.{k}" for k in self.keys) + ")"

    def _valid_sql(self) -> str:
        """A staged row that can be loaded: no NULL key, every foreign key in its dimension (semi-joins, so the
        check costs a hash join, not a lookup per row)."""
        parts = [f"s.{k} IS NOT NULL" for k in self.keys]
        for fk in self.table.foreign_keys:
            ref = fk.column
            exists = f"EXISTS (SELECT 1 FROM {ref.table.fullname} d WHERE d.{ref.name} = s.{fk.parent.name})"
            parts.append(exists if not fk.parent.nullable else f"(s.{fk.parent.name} IS NULL OR {exists})")
        return " AND ".join(parts)

    def _reason_sql(self) -> str:
        """Why a row is not valid (evaluated for rejected rows only)."""
        checks = [f"WHEN s.{k} IS NULL THEN 'NULL key {k}'" for k in self.keys]
        for fk in sorted(self.table.foreign_keys, key=lambda f: f.parent.name):
            ref = fk.column
            checks.append(f"WHEN s.{fk.parent.name} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {ref.table.fullname} d "
                          f"WHERE d.{ref.name} = s.{fk.parent.name}) THEN 'unknown {fk.parent.name} "
                          f"(not in {ref.table.fullname})'")
        return f"CASE {' '.join(checks)} END"

    def _move(self, result: TableLoad, run_id: str) -> None:
        """The one transaction: retry pending rejects, reject, upsert, resolve, watermark, drop staging."""
        cols = ", ".join(self.columns)
        pk = ", ".join(self.keys)
        if upsert_kind(self.name) == "update":
            rest = [c for c in self.columns if c not in self.keys]
            conflict = (f"DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in rest)} "
                        f"WHERE ({', '.join(f'{self.table.fullname}.{c}' for c in rest)}) IS DISTINCT FROM "
                        f"({', '.join(f'EXCLUDED.{c}' for c in rest)})")
        else:
            conflict = "DO NOTHING"
        t = {"t": self.name}
        with self.engine.begin() as tx:
            tx.execute(text("SET LOCAL TimeZone = 'UTC'"))  # row_key JSON renders timestamps the same every time
            result.rows_read = tx.execute(text(f"SELECT count(*) FROM {self.stage}")).scalar()
            if self.as_of is not None:
                self._roll_back(tx)
            pending = tx.execute(text("SELECT count(*) FROM meta.rejected_rows WHERE table_name = :t "
                                      "AND resolved_at IS NULL"), t).scalar()
            if pending:  # tried again, unless the change feed brought a newer version of the row
                tx.execute(text(
                    f"INSERT INTO {self.stage} ({cols}) SELECT {', '.join(f'p.{c}' for c in self.columns)} "
                    f"FROM meta.rejected_rows r, jsonb_populate_record(NULL::{self.stage}, r.row_data) p "
                    f"WHERE r.table_name = :t AND r.resolved_at IS NULL AND NOT EXISTS "
                    f"(SELECT 1 FROM {self.stage} s WHERE {self._key_json('s')} = r.row_key)"), t)
            tx.execute(text(f"ANALYZE {self.stage}"))  # fresh statistics: the checks below join on them
            valid = self._valid_sql()
            tx.execute(text(
                "INSERT INTO meta.rejected_rows (table_name, row_key, reason, row_data, first_seen_at, last_seen_at, "
                f"attempts) SELECT DISTINCT ON (2) :t, {self._key_json('s')}, {self._reason_sql()}, to_jsonb(s), "
                f"now(), now(), 1 FROM {self.stage} s WHERE NOT ({valid}) "
                "ON CONFLICT (table_name, row_key) DO UPDATE SET reason = EXCLUDED.reason, "
                "row_data = EXCLUDED.row_data, last_seen_at = EXCLUDED.last_seen_at, "
                "attempts = meta.rejected_rows.attempts + 1, resolved_at = NULL"), t)
            on_conflict = "" if self._only_newer_snapshots(tx) else f" ON CONFLICT ({pk}) {conflict}"
            result.rows_loaded = tx.execute(text(
                f"INSERT INTO {self.table.fullname} ({cols}) SELECT {cols} FROM {self.stage} s "
                f"WHERE {valid}{on_conflict}")).rowcount
            if pending:
                result.rows_resolved = tx.execute(text(
                    f"UPDATE meta.rejected_rows r SET resolved_at = now(), last_seen_at = now(), "
                    f"attempts = r.attempts + 1 FROM {self.stage} s WHERE r.table_name = :t "
                    f"AND r.resolved_at IS NULL AND r.row_key = {self._key_json('s')} AND {valid}"), t).rowcount
            result.rows_rejected = tx.execute(text(
                "SELECT count(*) FROM meta.rejected_rows WHERE table_name = :t AND resolved_at IS NULL"), t).scalar()
            tx.execute(text(
                "INSERT INTO meta.load_watermark (table_name, delta_version, loaded_at, rows, run_id) "
                "VALUES (:t, :v, now(), :rows, :run) ON CONFLICT (table_name) DO UPDATE SET "
                "delta_version = EXCLUDED.delta_version, loaded_at = EXCLUDED.loaded_at, rows = EXCLUDED.rows, "
                "run_id = EXCLUDED.run_id"),
                {**t, "v": result.to_version, "rows": result.rows_read, "run": run_id})
            tx.execute(text(f"DROP TABLE {self.stage}"))

    def _only_newer_snapshots(self, tx: Connection) -> bool:
        """An append-only table whose staged rows are all newer than its newest row: the primary key holds the
        snapshot time, so nothing can collide and the insert can skip ON CONFLICT's per-row check (a fifth of
        the move on a bulk load). Only this loader writes dw, and the advisory lock keeps it to one load."""
        if upsert_kind(self.name) != "nothing" or "snapshot_timestamp" not in self.keys:
            return False
        return bool(tx.execute(text(
            f"SELECT (SELECT min(snapshot_timestamp) FROM {self.stage}) > "
            f"coalesce((SELECT max(snapshot_timestamp) FROM {self.table.fullname}), '-infinity')")).scalar())

    def _roll_back(self, tx: Connection) -> None:
        """Delete what the staged version does not have: dw rows and pending rejects of later versions."""
        tx.execute(text(f"DELETE FROM meta.rejected_rows r WHERE r.table_name = :t AND r.resolved_at IS NULL "
                        f"AND NOT EXISTS (SELECT 1 FROM {self.stage} s WHERE {self._key_json('s')} = r.row_key)"),
                   {"t": self.name})
        same = " AND ".join(f"s.{k} = t.{k}" for k in self.keys)
        try:
            tx.execute(text(f"DELETE FROM {self.table.fullname} t WHERE NOT EXISTS "
                            f"(SELECT 1 FROM {self.stage} s WHERE {same})"))
        except IntegrityError as exc:  # a fact references a key of a later version of this dimension
            raise CryptolakeError(f"{self.name} cannot be rolled back to version {self.as_of}: "
                                  f"{exc.orig.diag.message_primary}",
                                  "Roll back the referencing table first (--table T --as-of-version N)") from None

    # -- Spark -----------------------------------------------------------------------------------------------
    def _current_version(self) -> int:
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, self.uri).history(1).collect()[0]["version"]

    def _changes(self, since: int | None, until: int) -> DataFrame:
        """Rows inserted or updated in versions since+1..until, latest per key; first load: the table at `until`."""
        reader = self.spark.read.format("delta")
        if since is None:
            return reader.option("versionAsOf", until).load(self.uri).select(*self.columns)
        feed = (reader.option("readChangeFeed", "true").option("startingVersion", since + 1)
                .option("endingVersion", until).load(self.uri)
                .filter(F.col("_change_type").isin("insert", "update_postimage")))
        latest = Window.partitionBy(*self.keys).orderBy(F.col("_commit_version").desc())
        return feed.withColumn("_n", F.row_number().over(latest)).filter("_n = 1").select(*self.columns)

    def _write_stage(self, frame: DataFrame) -> None:
        (frame.write.format("jdbc").mode("append")
         .option("url", self.jdbc.url).option("dbtable", self.stage).option("driver", "org.postgresql.Driver")
         .option("user", self.jdbc.user).option("password", self.jdbc.password)
         .option("batchsize", 5000).option("reWriteBatchedInserts", "true")
         .save())
