"""Delta housekeeping, the `maintenance` step of the weekly group: OPTIMIZE (compaction) then VACUUM.

Frequent small MERGEs leave many small files per partition; OPTIMIZE bin-packs them (partitions already
compacted to one file are left alone, so a weekly run only rewrites the last week). VACUUM then deletes files no
version within the retention (DELTA_VACUUM_RETENTION_HOURS, default 168 h = Delta's own safety default) needs;
time travel and `load --as-of-version` work within that retention.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from cryptolake import logs
from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.settings import Settings
from cryptolake.spark_apps.transform.daily import INDEX
from cryptolake.spark_apps.transform.features import FEATURE_LIST
from cryptolake.spark_apps.transform.tables import QUARANTINE, TABLE_LIST

log = logs.get(__name__)
SAFE_RETENTION_HOURS = 168
_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


def maintain(spark: SparkSession, settings: Settings, lake: Lake | None = None, *,
             retention_hours: int | None = None, group: str = "weekly") -> dict[str, dict]:
    """Compact and vacuum every silver and gold feature table that exists; one ledger record
    `transform/maintenance`."""
    from delta.tables import DeltaTable

    lake = lake or Lake.from_settings(settings)
    hours = settings.delta_vacuum_retention_hours if retention_hours is None else retention_hours
    paths = {n: f"silver/{n}" for n in [t.name for t in TABLE_LIST] + [QUARANTINE, INDEX]}
    paths.update({f.name: f.path for f in FEATURE_LIST})  # gold: replaceWhere leaves the replaced files behind
    report: dict[str, dict] = {}
    with Ledger(lake).run("transform", "maintenance", params={"group": group, "retention_hours": hours}) as record, \
            logs.context(table="maintenance"):
        if hours < SAFE_RETENTION_HOURS:
            log.warning("VACUUM retention %d h is below Delta's 168 h safety default: readers of older versions "
                        "(time travel, a long load) may fail", hours)
            spark.conf.set(_CHECK, "false")
        try:
            for name, path in paths.items():
                if not lake.exists(f"{path}/_delta_log"):
                    continue
                table = DeltaTable.forPath(spark, lake.spark_uri(path))
                metrics = table.optimize().executeCompaction().collect()[0]["metrics"]
                table.vacuum(float(hours))
                report[name] = {"files_added": metrics["numFilesAdded"], "files_removed": metrics["numFilesRemoved"],
                                "version": table.history(1).collect()[0]["version"]}
                log.info("%s: compacted %d files into %d, vacuumed (retention %d h)", name,
                         metrics["numFilesRemoved"], metrics["numFilesAdded"], hours)
        finally:
            spark.conf.unset(_CHECK)
        record.files = [paths[n] for n in report]
        record.details["tables"] = report
    return report
