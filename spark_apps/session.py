"""The one place a SparkSession is built, for local runs and for SparkApplications alike.

Under the Spark Operator, spark-submit has already set the master and the image has the jars baked in, so only
the lake settings (and what correctness needs: Delta, UTC) are applied; the SparkApplication's own settings
stand. Locally, tuning for a small machine is added where nothing explicit sets it, and the jars come from the
Maven-resolved classpath (`make jars`), never from Ivy at run time. S3 credentials reach the JVM as AWS_*
environment variables (S3A's default provider chain reads them), never as Spark conf, which would show up in
the UI, event logs and the operator's spark-submit command line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from cryptolake.errors import CryptolakeError
from cryptolake.lake import SPARK_EVENTS, Lake
from cryptolake.settings import Settings

POM = Path(__file__).parent / "pom.xml"  # package data: the jar list can be resolved without a checkout

# A laptop's 2 cores and small, frequent batches. Local mode only, and only where neither spark-defaults.conf,
# PYSPARK_SUBMIT_ARGS nor the caller's conf sets the key: a cluster's settings always stand.
LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "4",
    "spark.databricks.delta.snapshotPartitions": "2",   # Delta log replay: 50 tasks by default
    # file listings done as Spark jobs (VACUUM, more than 32 bronze paths): 10000 tasks by default
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
    "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "true",
    "spark.databricks.delta.optimize.repartition.enabled": "true",
    "spark.driver.host": "127.0.0.1",
    "spark.log.level": "WARN",
}
_DELTA = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def submitted_by_spark_submit() -> bool:
    """True inside spark-submit (the operator's driver pod): the JVM and master already exist."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def local_jars(settings: Settings) -> list[str]:
    """The jars of the Maven-resolved list at CRYPTOLAKE_SPARK_CLASSPATH, each checked to exist."""
    path = Path(settings.spark_classpath)
    if not path.exists():
        raise CryptolakeError(f"the Spark jar list {path} (CRYPTOLAKE_SPARK_CLASSPATH) does not exist",
                              f"Run `make jars` in a checkout, or: mvn -f {POM} dependency:build-classpath "
                              f"-Dmdep.includeScope=runtime -Dmdep.outputFile={path}")
    jars = [p for p in path.read_text().strip().split(os.pathsep) if p]
    missing = [j for j in jars if not Path(j).exists()]
    if missing:
        raise CryptolakeError(f"{len(missing)} Spark jars listed in {path} are missing, e.g. {missing[0]}",
                              "Run `make jars` again")
    return jars


def lake_conf(settings: Settings, lake: Lake) -> dict[str, str]:
    """Delta, S3A and event-log settings derived from the lake settings (no secrets)."""
    conf = dict(_DELTA)
    conf["spark.sql.session.timeZone"] = "UTC"
    conf["spark.eventLog.enabled"] = "true"
    conf["spark.eventLog.dir"] = lake.spark_uri(SPARK_EVENTS)
    conf["spark.eventLog.rolling.enabled"] = "true"
    if settings.aws_endpoint_url:
        endpoint = urlsplit(settings.aws_endpoint_url)
        conf["spark.hadoop.fs.s3a.endpoint"] = settings.aws_endpoint_url
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(endpoint.scheme == "https").lower()
    conf["spark.hadoop.fs.s3a.endpoint.region"] = settings.aws_region
    return conf


def build_spark_session(app_name: str, settings: Settings, *, conf: dict[str, str] | None = None):
    """A Delta-enabled SparkSession on the configured lake; `conf` adds or overrides settings."""
    from pyspark.sql import SparkSession

    lake = Lake.from_settings(settings)
    lake.ensure_dir(SPARK_EVENTS)
    builder = SparkSession.builder.appName(app_name)
    if not submitted_by_spark_submit():
        builder = _local(builder, settings)
    for key, value in {**lake_conf(settings, lake), **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _local(builder, settings: Settings):
    """Launch the local JVM with our jars, then add each LOCAL_DEFAULTS entry nobody set explicitly."""
    from pyspark import SparkConf, SparkContext

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # spark-submit ranks these variables below --master/--driver-memory, --conf and spark-defaults.conf
    os.environ.setdefault("MASTER", "local[2]")
    os.environ.setdefault("SPARK_DRIVER_MEMORY", "2g")
    # The JVM is a child of this process: it reads the S3 credentials from our environment.
    for key, value in settings.as_env().items():
        if key.startswith("AWS_"):
            os.environ[key] = value
    # Started here rather than by getOrCreate, so that what spark-submit resolved (PYSPARK_SUBMIT_ARGS,
    # spark-defaults.conf) can be read before the defaults are added. The progress bar goes in at launch:
    # spark-submit switches it on for every Python shell, so its presence says nothing (PYSPARK_SUBMIT_ARGS wins).
    launch = SparkConf().setAll([("spark.jars", ",".join(local_jars(settings))),
                                 ("spark.ui.showConsoleProgress", "false")])
    SparkContext._ensure_initialized(conf=launch)
    explicit = SparkConf()  # backed by the JVM now: holds exactly the settings spark-submit was given
    for key, value in LOCAL_DEFAULTS.items():
        if not explicit.contains(key):
            builder = builder.config(key, value)
    return builder


def run_step(step: str, group: str, settings: Settings, spark, work) -> int:
    """A Spark step's run for both entries (CLI and SparkApplication): build a session unless one is injected,
    run `work(spark)` (an outcome with `failed` and `exit_code`), stop what was built here, and end a failure
    with one line saying where the details are."""
    own = spark is None
    if own:
        spark = build_spark_session(f"cryptolake-{step}-{group}", settings)
    try:
        outcome = work(spark)
    finally:
        if own:
            spark.stop()
    if outcome.failed:
        print(f"error: {step} {group}: {', '.join(outcome.failed)} failed. The log above and "
              f"{settings.lake_uri}/_meta/{step}/<table>/ hold the error; fix it and run the group again "
              "(runs are idempotent)", file=sys.stderr)
    return outcome.exit_code


def submit_entry(step: str, argv: list[str] | None) -> None:
    """spark-submit's entry: the `cryptolake <step>` command itself, so options and checks exist once."""
    from cryptolake.cli import main as cli_main

    cli_main([step, *(sys.argv[1:] if argv is None else argv)])
