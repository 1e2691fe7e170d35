"""Cleaning rules as data: what sends a row to quarantine, what clears an outlier value, how duplicates go.

- Reject: the row breaks the table's contract (a key or a required value missing, a value outside its domain);
  it goes to `silver/_quarantine` with every reason that applies, never silently dropped.
- Clear: one value is implausible (a negative volume, a dominance above 100 %); the value becomes NULL, the row
  stays, and the count per column is logged and recorded in the ledger.
- Duplicates: rows with the same merge key in one batch (a coin that moved between listing pages during the
  extraction) keep one row, chosen deterministically; the count is recorded.

All counts come from one aggregation over the cached batch, so cleaning costs one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cryptolake import logs

log = logs.get(__name__)


@dataclass(frozen=True)
class Reject:
    reason: str
    when: str  # SQL, true for rows that break the contract (NULL counts as false)


@dataclass(frozen=True)
class Clear:
    column: str
    when: str  # SQL, true when the value is an outlier


@dataclass(frozen=True)
class Rules:
    rejects: tuple[Reject, ...] = ()
    clears: tuple[Clear, ...] = ()
    # tie-break among duplicates of one key: the first row by these orderings wins
    prefer: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Cleaned:
    good: DataFrame
    rejected: DataFrame
    rows_in: int
    rows_rejected: int
    duplicates: int
    cleared: dict[str, int]
    snapshot_dates: list            # distinct UTC dates of the batch (for partition pruning)
    ts_range: tuple[int, int]       # min and max snapshot_timestamp, epoch microseconds (no time-zone games)
    cached: DataFrame               # unpersist once written

    def release(self) -> None:
        self.cached.unpersist()

    @property
    def rows_good(self) -> int:
        return self.rows_in - self.rows_rejected - self.duplicates


def not_null_rejects(columns: list[str]) -> tuple[Reject, ...]:
    return tuple(Reject(f"{c} is null", f"{c} IS NULL") for c in columns)


def sort_order(spec: str) -> Column:
    """`column [ASC|DESC] [NULLS FIRST|LAST]` as a Column sort order (F.expr cannot parse sort orders)."""
    words = spec.split()
    direction = words[1].lower() if len(words) > 1 else "asc"
    nulls = words[3].lower() if len(words) > 3 else ("first" if direction == "asc" else "last")
    return getattr(F.col(words[0]), f"{direction}_nulls_{nulls}")()


def safe_div(numerator: Column | str, divisor: Column | str) -> Column:
    """numerator / divisor, NULL when the divisor is NULL or 0 (a ratio without a base is unknown, not 0)."""
    num = F.col(numerator) if isinstance(numerator, str) else numerator
    div = F.col(divisor) if isinstance(divisor, str) else divisor
    return F.when(div.isNull() | (div == 0), F.lit(None).cast("double")).otherwise(num / div)


def clean(frame: DataFrame, rules: Rules, keys: tuple[str, ...], required: list[str]) -> Cleaned:
    """Apply the rules to a candidate batch (silver columns + lineage); the caller unpersists `good`."""
    rejects = not_null_rejects(list(dict.fromkeys([*keys, *required]))) + rules.rejects
    reasons = F.filter(F.array(*[F.when(F.expr(r.when), F.lit(r.reason)) for r in rejects]),
                       lambda x: x.isNotNull())
    flagged = frame.withColumn("_reasons", reasons)
    for i, rule in enumerate(rules.clears):
        flagged = flagged.withColumn(f"_clear{i}", F.coalesce(F.expr(rule.when), F.lit(False)))
    for i, rule in enumerate(rules.clears):
        cleared = F.when(F.col(f"_clear{i}"), F.lit(None)).otherwise(F.col(rule.column))
        flagged = flagged.withColumn(rule.column, cleared)
    flagged = flagged.withColumn("_rejected", F.size("_reasons") > 0).persist()

    ok = ~F.col("_rejected")
    aggregates = [F.count(F.lit(1)).alias("rows_in"), F.sum(F.col("_rejected").cast("long")).alias("rejected"),
                  F.count_distinct(*[F.when(ok, F.col(k)) for k in keys]).alias("distinct_keys") if keys else
                  F.lit(None).alias("distinct_keys"),
                  F.collect_set(F.to_date("snapshot_timestamp")).alias("dates"),
                  F.min(F.unix_micros("snapshot_timestamp")).alias("ts_min"),
                  F.max(F.unix_micros("snapshot_timestamp")).alias("ts_max")]
    aggregates += [F.sum((F.col(f"_clear{i}") & ok).cast("long")).alias(f"clear{i}") for i in range(len(rules.clears))]
    stats = flagged.agg(*aggregates).collect()[0]
    rows_in, rejected = stats["rows_in"], stats["rejected"] or 0
    good_rows = rows_in - rejected
    duplicates = good_rows - stats["distinct_keys"] if keys else 0
    cleared: dict[str, int] = {}
    for i, rule in enumerate(rules.clears):
        if stats[f"clear{i}"]:
            cleared[rule.column] = cleared.get(rule.column, 0) + stats[f"clear{i}"]

    helper = ["_reasons", "_rejected", *[f"_clear{i}" for i in range(len(rules.clears))]]
    good = flagged.filter(ok)
    if duplicates:
        order = [sort_order(p) for p in rules.prefer] + [F.col("source_file").asc()]
        window = Window.partitionBy(*keys).orderBy(*order)
        good = good.withColumn("_n", F.row_number().over(window)).filter(F.col("_n") == 1).drop("_n")
    rejected_rows = flagged.filter(F.col("_rejected")).withColumn("reason", F.array_join("_reasons", "; "))
    if rejected or duplicates or cleared:
        log.info("cleaning: %d rows in, %d quarantined, %d duplicates dropped, outliers cleared %s",
                 rows_in, rejected, duplicates, cleared or "none")
    return Cleaned(good.drop(*helper), rejected_rows.drop(*helper), rows_in, rejected, duplicates, cleared,
                   sorted(d for d in stats["dates"] if d is not None), (stats["ts_min"], stats["ts_max"]), flagged)
