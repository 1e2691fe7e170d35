"""The one place a SparkSession is built, for local runs and for SparkApplications alike.

Under the Spark Operator, spark-submit has already set the master and the image has the jars baked in, so only
the lake settings are applied. Locally, the jars come from the Maven-resolved classpath (`make jars`), never
from Ivy at run time. S3 credentials reach the JVM as AWS_* environment variables (S3A's default provider
chain reads them), never as Spark conf, which would show up in the UI, event logs and the operator's
spark-submit command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from cryptolake.errors import CryptolakeError
from cryptolake.lake import SPARK_EVENTS, Lake
from cryptolake.settings import Settings

CLASSPATH_FILE = Path(__file__).parent / "target" / "classpath.txt"

_DELTA = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def submitted_by_spark_submit() -> bool:
    """True inside spark-submit (the operator's driver pod): the JVM and master already exist."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def local_jars() -> list[str]:
    path = Path(os.environ.get("CRYPTOLAKE_SPARK_CLASSPATH", CLASSPATH_FILE))
    if not path.exists():
        raise CryptolakeError(f"the Spark jar classpath {path} does not exist",
                              "Run `make jars` once (Maven resolves Delta, hadoop-aws and the JDBC driver)")
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


def build_spark_session(app_name: str, settings: Settings, *, master: str | None = None,
                        conf: dict[str, str] | None = None):
    """A Delta-enabled SparkSession on the configured lake; `conf` adds or overrides settings."""
    from pyspark.sql import SparkSession

    lake = Lake.from_settings(settings)
    lake.ensure_dir(SPARK_EVENTS)
    builder = SparkSession.builder.appName(app_name)
    options = lake_conf(settings, lake)
    if not submitted_by_spark_submit():
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # The JVM is a child of this process: it reads the S3 credentials from our environment.
        for key, value in settings.as_env().items():
            if key.startswith("AWS_"):
                os.environ[key] = value
        options.update({
            "spark.jars": ",".join(local_jars()),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.memory": os.environ.get("SPARK_DRIVER_MEMORY", "2g"),
            "spark.sql.shuffle.partitions": os.environ.get("SPARK_SHUFFLE_PARTITIONS", "4"),
            "spark.ui.showConsoleProgress": "false",
            "spark.log.level": os.environ.get("SPARK_LOG_LEVEL", "WARN"),
        })
        builder = builder.master(master or os.environ.get("SPARK_MASTER", "local[2]"))
    options.update(conf or {})
    for key, value in options.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
