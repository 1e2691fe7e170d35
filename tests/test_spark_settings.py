"""Local tuning applies only in local mode and only where nothing explicit sets a key; a cluster's settings
(spark-submit's --conf, a SparkApplication's sparkConf, spark-defaults.conf) stand, also after run_group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cryptolake.settings import Settings
from cryptolake.spark_apps.session import LOCAL_DEFAULTS, local_jars

pytestmark = pytest.mark.spark

# What a transform does with the session it is given (built here unless spark-submit already runs us).
SCRIPT = """
import json, sys
from cryptolake.settings import Settings
from cryptolake.spark_apps.session import build_spark_session
from cryptolake.spark_apps.transform.runner import run_group

settings = Settings.load()
spark = build_spark_session("settings-test", settings, conf={"spark.ui.enabled": "false"})
run_group(spark, settings, "10x", tables=["fact_global_market"], maintenance=False)
keys = json.loads(sys.argv[1])
print(json.dumps({k: spark.conf.get(k, None) for k in keys}))
spark.stop()
"""
KEYS = [*LOCAL_DEFAULTS, "spark.master", "spark.driver.memory", "spark.sql.session.timeZone"]


def run_script(tmp_path: Path, launcher: list[str], env: dict[str, str]) -> dict[str, str | None]:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    inherited = {k: v for k, v in os.environ.items()  # minus the launch defaults our own session set
                 if k not in ("MASTER", "SPARK_DRIVER_MEMORY")}
    done = subprocess.run([*launcher, str(script), json.dumps(KEYS)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300,
                          env={**inherited, "LAKE_URI": (tmp_path / "lake").as_uri(), **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_local_mode_without_explicit_values_gets_the_tuning(spark):
    conf = spark.sparkContext.getConf()
    assert {k: conf.get(k) for k in LOCAL_DEFAULTS} == LOCAL_DEFAULTS
    assert (conf.get("spark.master"), conf.get("spark.driver.memory")) == ("local[2]", "2g")
    assert conf.get("spark.ui.showConsoleProgress") == "false"


def test_explicit_local_settings_win_over_the_tuning_and_survive_run_group(tmp_path):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text("spark.sql.sources.parallelPartitionDiscovery.parallelism 5\n")
    args = ("--master local[1] --driver-memory 1g --conf spark.sql.shuffle.partitions=7 "
            "--conf spark.databricks.delta.snapshotPartitions=3 --conf spark.sql.session.timeZone=Europe/Paris "
            "pyspark-shell")
    seen = run_script(tmp_path, [sys.executable], {"PYSPARK_SUBMIT_ARGS": args, "SPARK_CONF_DIR": str(conf_dir)})
    assert seen["spark.sql.shuffle.partitions"] == "7"
    assert seen["spark.databricks.delta.snapshotPartitions"] == "3"
    assert seen["spark.sql.sources.parallelPartitionDiscovery.parallelism"] == "5"
    assert (seen["spark.master"], seen["spark.driver.memory"]) == ("local[1]", "1g")
    assert seen["spark.databricks.delta.optimize.repartition.enabled"] == "true"  # not given: tuned
    assert seen["spark.sql.session.timeZone"] == "UTC"  # correctness: always forced


def test_under_spark_submit_only_the_given_settings_apply(tmp_path):
    """As in a SparkApplication's driver: spark-submit launches Python, and no local tuning is added."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    seen = run_script(tmp_path, [str(spark_submit), "--master", "local[1]", "--jars", ",".join(local_jars(Settings.load())),
                                 "--conf", "spark.sql.shuffle.partitions=7"],
                      {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable})
    assert seen["spark.sql.shuffle.partitions"] == "7"
    tuning = {k: seen[k] for k in LOCAL_DEFAULTS if k not in ("spark.sql.shuffle.partitions", "spark.driver.host")}
    assert tuning == dict.fromkeys(tuning), tuning  # unset: Spark's and Delta's own defaults apply
    assert seen["spark.driver.memory"] is None and seen["spark.master"] == "local[1]"
    assert seen["spark.sql.session.timeZone"] == "UTC"
