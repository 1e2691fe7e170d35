"""BaseTransformer: the shared machinery of every domain transformer (the SparkSession is injected, never built).

One build step per silver table (`run_bronze_step`):
  state from the ledger -> new bronze snapshots -> read exactly their files with the extractor's schema
  -> prepare (rename, type) -> clean (quarantine, outliers, duplicates) -> derive (KPIs) -> conform to the
  table's strict schema -> quarantine + MERGE into Delta -> ledger record (rows in/out/quarantined, version,
  the new state).
Nothing here scans a whole bronze prefix or a whole silver table: bronze is read by file list, MERGE targets
are pruned to the batch's snapshot dates / timestamp range.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cryptolake import logs
from cryptolake.lake import Lake
from cryptolake.ledger import Ledger, RunRecord
from cryptolake.settings import Settings
from cryptolake.spark_apps.transform.quality import Cleaned, Rules, clean
from cryptolake.spark_apps.transform.state import Pending, TableState, Tracker
from cryptolake.spark_apps.transform.tables import PARTITION_COLUMN, QUARANTINE, TABLES, Table, quarantine_schema

log = logs.get(__name__)
_ARROW_TO_SPARK = {"int64": T.LongType(), "double": T.DoubleType(), "string": T.StringType(),
                   "bool": T.BooleanType(), "timestamp[us, tz=UTC]": T.TimestampType(),
                   "list<item: string>": T.ArrayType(T.StringType(), True)}
# bronze/<extractor>/snapshot_date=YYYY-MM-DD/<file>: the lake-relative path, whatever the root and scheme
_BRONZE_FILE = r"(bronze/[^/]+/snapshot_date=[^/]+/[^/]+)$"


def bronze_schema(extractor: str) -> T.StructType:
    """The Spark schema of an extractor's bronze files, from its Arrow schema (the one contract)."""
    from cryptolake.services.extract.registry import EXTRACTORS

    fields = []
    for f in EXTRACTORS[extractor].schema:
        kind = str(f.type)
        if kind not in _ARROW_TO_SPARK:
            raise TypeError(f"bronze column {extractor}.{f.name} has type {kind}, unknown to the transform")
        fields.append(T.StructField(f.name, _ARROW_TO_SPARK[kind], True))
    return T.StructType(fields)


def conform(frame: DataFrame, table: Table) -> DataFrame:
    """Exactly the table's columns, in order, cast to its types (strict: a missing column is an error)."""
    missing = [c for c in table.column_names if c != PARTITION_COLUMN and c not in frame.columns]
    if missing:
        raise ValueError(f"{table.name}: the transform produced no column {', '.join(missing)}")
    if table.partitioned:
        frame = frame.withColumn(PARTITION_COLUMN, F.to_date("snapshot_timestamp"))
    return cast_to(frame, table.schema)


def cast_to(frame: DataFrame, schema: T.StructType) -> DataFrame:
    """The schema's columns, in its order, cast to its types."""
    return frame.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def sql_dates(dates: list[date]) -> str:
    return ", ".join(f"DATE'{d.isoformat()}'" for d in dates)


@dataclass
class StepResult:
    table: str
    status: str                      # success | skipped | up-to-date | failed
    run_id: str | None = None
    rows_in: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    delta_version: int | None = None
    details: dict = field(default_factory=dict)


class BaseTransformer:
    """Subclasses declare `domain` and one `build_<table>()` method per table of their domain."""

    domain: str = ""

    def __init__(self, spark: SparkSession, settings: Settings, lake: Lake | None = None, *, group: str = "all"):
        self.spark = spark
        self.settings = settings
        self.lake = lake or Lake.from_settings(settings)
        self.ledger = Ledger(self.lake)
        self.tracker = Tracker(self.lake)
        self.group = group
        self._ready: set[str] = set()

    # -- the tables of this domain --------------------------------------------------------------------------
    @property
    def tables(self) -> list[Table]:
        return [t for t in TABLES.values() if t.domain == self.domain]

    def build(self, name: str) -> StepResult:
        if TABLES[name].domain != self.domain:
            raise ValueError(f"{name} is not a table of the {self.domain} domain")
        with logs.context(table=name):
            return getattr(self, f"build_{name}")()

    # -- Delta helpers ---------------------------------------------------------------------------------------
    def uri(self, name: str, location: str | None = None) -> str:
        """The Spark URI of silver/<name>, or of the lake-relative `location` (a gold table)."""
        return self.lake.spark_uri(location or f"silver/{name}")

    def exists(self, name: str) -> bool:
        return self.lake.exists(f"silver/{name}/_delta_log")

    def read_silver(self, name: str) -> DataFrame:
        return self.spark.read.format("delta").load(self.uri(name))

    def ensure_table(self, name: str, schema: T.StructType, partition_by: list[str], *,
                     location: str | None = None, change_feed: bool = True) -> None:
        """Create the Delta table at its path (silver/<name> unless a lake-relative `location` is given) with its
        strict schema (NOT NULL where declared) if missing."""
        if name in self._ready:
            return
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}{'' if f.nullable else ' NOT NULL'}"
                            for f in schema.fields)
        partitioning = f"PARTITIONED BY ({', '.join(partition_by)})" if partition_by else ""
        # A path-based identifier (the builder API's LOCATION trips over file:/// vs file:/ spellings).
        # Change data feed: the loader can read exactly what each version changed.
        properties = "TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')" if change_feed else ""
        self.spark.sql(f"CREATE TABLE IF NOT EXISTS delta.`{self.uri(name, location)}` ({columns}) USING delta "
                       f"{partitioning} {properties}")
        self._ready.add(name)

    def ensure(self, table: Table) -> None:
        self.ensure_table(table.name, table.schema, [PARTITION_COLUMN] if table.partitioned else [])

    def last_commit(self, name: str, record: RunRecord, *, location: str | None = None) -> tuple[int, dict | None]:
        """The table's current version, and the operation metrics if that commit is this run's own
        (a MERGE that changes nothing commits nothing)."""
        from delta.tables import DeltaTable

        row = DeltaTable.forPath(self.spark, self.uri(name, location)).history(1).collect()[0]
        ours = record.run_id in (row["userMetadata"] or "")
        return row["version"], dict(row["operationMetrics"] or {}) if ours else None

    def _commit_metadata(self, record: RunRecord, extra: dict | None = None) -> str:
        return json.dumps({"transform_run_id": record.run_id, "table": record.name, "group": self.group,
                           "bronze_runs": record.upstream, **(extra or {})}, sort_keys=True)

    def _with_metadata(self, record: RunRecord, write: Callable[[], Any], extra: dict | None = None) -> Any:
        """Run a Delta write whose commit carries the transform run (Delta history -> ledger lineage)."""
        key = "spark.databricks.delta.commitInfo.userMetadata"
        self.spark.conf.set(key, self._commit_metadata(record, extra))
        try:
            return write()
        finally:
            self.spark.conf.unset(key)

    @staticmethod
    def _merge_counts(result: DataFrame | None) -> dict[str, int]:
        """MERGE's own answer (inserted/updated rows), also when it committed nothing."""
        row = result.collect()[0].asDict() if result is not None else {}
        return {k: int(row.get(k) or 0) for k in ("num_inserted_rows", "num_updated_rows")}

    def prune_condition(self, table: Table, cleaned: Cleaned, alias: str = "t") -> str:
        """Target-side predicates that let MERGE skip every partition/file outside the batch."""
        parts = []
        if table.partitioned and cleaned.snapshot_dates:
            parts.append(f"{alias}.{PARTITION_COLUMN} IN ({sql_dates(cleaned.snapshot_dates)})")
        low, high = cleaned.ts_range
        if low is not None:
            parts.append(f"{alias}.snapshot_timestamp BETWEEN timestamp_micros({low}) AND timestamp_micros({high})")
        return " AND ".join(parts)

    def merge_temporal(self, table: Table, frame: DataFrame, cleaned: Cleaned, record: RunRecord) -> dict[str, int]:
        """Insert the rows whose (keys, snapshot_timestamp) are not in the table yet: re-runs change nothing."""
        from delta.tables import DeltaTable

        on = " AND ".join([f"t.{k} = s.{k}" for k in table.merge_keys] + [self.prune_condition(table, cleaned)])
        target = DeltaTable.forPath(self.spark, self.uri(table.name)).alias("t")
        return self._merge_counts(self._with_metadata(
            record, lambda: target.merge(frame.alias("s"), on).whenNotMatchedInsertAll().execute()))

    def merge_identity(self, table: Table, frame: DataFrame, record: RunRecord) -> dict[str, int]:
        """One row per key: attributes of the newest snapshot, first_seen the oldest; order-independent."""
        from delta.tables import DeltaTable

        keys = list(table.keys)
        newest = Window.partitionBy(*keys).orderBy(F.col("snapshot_timestamp").desc(), F.col("source_file"))
        frame = (frame.withColumn("first_seen_timestamp", F.min("snapshot_timestamp").over(Window.partitionBy(*keys)))
                 .withColumn("_n", F.row_number().over(newest)).filter("_n = 1").drop("_n"))
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        refresh = {c: f"s.{c}" for c in table.column_names if c not in keys}
        refresh["first_seen_timestamp"] = "least(t.first_seen_timestamp, s.first_seen_timestamp)"
        target = DeltaTable.forPath(self.spark, self.uri(table.name)).alias("t")
        return self._merge_counts(self._with_metadata(record, lambda: (
            target.merge(frame.alias("s"), on)
            .whenMatchedUpdate("s.snapshot_timestamp > t.snapshot_timestamp", refresh)
            .whenMatchedUpdate("s.first_seen_timestamp < t.first_seen_timestamp",
                               {"first_seen_timestamp": "s.first_seen_timestamp"})
            .whenNotMatchedInsertAll().execute())))

    def quarantine(self, table: Table, cleaned: Cleaned, candidate_columns: list[str], record: RunRecord) -> None:
        """Rejected rows with their reasons into silver/_quarantine (idempotent: keyed by a hash of the row)."""
        from delta.tables import DeltaTable

        self.ensure_table(QUARANTINE, quarantine_schema(), ["table"])
        rows = (cleaned.rejected
                .withColumn("record", F.to_json(F.struct(*[F.col(c) for c in candidate_columns])))
                .select(F.lit(table.name).alias("table"), "reason", "snapshot_timestamp", "run_id", "source_file",
                        "record",
                        F.sha2(F.concat_ws("|", F.lit(table.name), F.col("source_file"), F.col("record")), 256)
                        .alias("record_hash"),
                        F.lit(record.run_id).alias("transform_run_id"),
                        F.current_timestamp().alias("quarantined_at"))
                .dropDuplicates(["record_hash"]))
        on = f"t.table = '{table.name}' AND t.table = s.table AND t.record_hash = s.record_hash"
        target = DeltaTable.forPath(self.spark, self.uri(QUARANTINE)).alias("t")
        self._with_metadata(record, lambda: target.merge(rows.alias("s"), on).whenNotMatchedInsertAll().execute(),
                            {"quarantine_of": table.name})

    # -- reading bronze ----------------------------------------------------------------------------------------
    def read_bronze(self, pending: Pending) -> DataFrame:
        """Exactly the files of the pending snapshots, with the extractor's schema and the file as lineage."""
        paths = [self.lake.spark_uri(f) for f in pending.files]
        frame = self.spark.read.schema(bronze_schema(pending.extractor)).parquet(*paths)
        return frame.withColumn("source_file", F.regexp_extract(F.col("_metadata.file_path"), _BRONZE_FILE, 1))

    # -- one build step ----------------------------------------------------------------------------------------
    def run_bronze_step(self, table: Table, prepare: Callable[[dict[str, DataFrame]], DataFrame], rules: Rules,
                        derive: Callable[[DataFrame, Cleaned], DataFrame] | None = None) -> StepResult:
        """New bronze snapshots of the table's extractors -> cleaned, KPI'd rows merged into silver."""
        state = self.tracker.state(table.name)
        pending = {src: self.tracker.pending(src, state.source(src)) for src in table.sources}
        if not any(p.seen for p in pending.values()):
            log.info("%s is up to date", table.name)
            return StepResult(table.name, "up-to-date")
        with self.ledger.run("transform", table.name, params={"group": self.group}) as record:
            record.upstream = {src: [s.run_id for s in p.snapshots] for src, p in pending.items() if p.snapshots}
            result = StepResult(table.name, "success", record.run_id)
            if record.upstream:
                frames = {src: self.read_bronze(p) for src, p in pending.items() if p.snapshots}
                self._build(table, frames, prepare, rules, derive, record, result)
            else:
                record.status = result.status = "skipped"
                log.info("%s: no new snapshot with data (%d empty or failed extract runs)", table.name,
                         sum(len(p.seen) for p in pending.values()))
            self.finish(record, result, state, pending)
        return result

    def _build(self, table: Table, frames: dict[str, DataFrame], prepare, rules: Rules, derive,
               record: RunRecord, result: StepResult) -> None:
        candidate = prepare(frames)
        required = [f.name for f in table.schema.fields
                    if not f.nullable and f.name in candidate.columns and f.name != PARTITION_COLUMN]
        cleaned = clean(candidate, rules, (*table.keys, "snapshot_timestamp"), required)
        try:
            result.rows_in, result.rows_quarantined = cleaned.rows_in, cleaned.rows_rejected
            result.details.update(duplicates_dropped=cleaned.duplicates, outliers_cleared=cleaned.cleared,
                                  snapshot_dates=[d.isoformat() for d in cleaned.snapshot_dates])
            if cleaned.rows_rejected:
                self.quarantine(table, cleaned, list(candidate.columns), record)
            good = derive(cleaned.good, cleaned) if derive else cleaned.good
            rows = conform(good, table)
            self.ensure(table)
            if cleaned.rows_good:
                if table.kind == "identity":
                    counts = self.merge_identity(table, rows, record)
                else:
                    counts = self.merge_temporal(table, rows, cleaned, record)
                result.rows_written = counts["num_inserted_rows"] + counts["num_updated_rows"]
                result.details["rows_updated"] = counts["num_updated_rows"]
                result.delta_version, metrics = self.last_commit(table.name, record)
                if metrics is not None:
                    result.details["delta_metrics"] = {k: metrics[k] for k in sorted(metrics)
                                                       if k.startswith("numTarget")}
        finally:
            cleaned.release()

    def finish(self, record: RunRecord, result: StepResult, state: TableState,
               pending: dict[str, Pending]) -> None:
        """Fill the ledger record: counts, Delta version, and the table's new incremental state."""
        new_state = TableState(dict(state.sources))
        for src, p in pending.items():
            new_state.sources[src] = state.source(src).advance(p.seen, p.known)
        record.rows = result.rows_written
        record.files = [f"silver/{result.table}"]
        record.details.update(
            rows_in=result.rows_in, rows_written=result.rows_written, rows_quarantined=result.rows_quarantined,
            delta_version=result.delta_version, snapshots={src: len(p.snapshots) for src, p in pending.items()},
            state=new_state.to_json(), **result.details)
        log.info("%s: %d rows in, %d written, %d quarantined, delta version %s", result.table, result.rows_in,
                 result.rows_written, result.rows_quarantined, result.delta_version)

