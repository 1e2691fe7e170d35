"""`cryptolake run --group g`: a group's whole cycle in one process tree, in the pipeline spec's order.

Extract, then the spec's Spark apps (transform, load) on one SparkSession, then the post-load SQL: what the
group's DAG does, without Airflow. Later steps run after a partial extraction (the other tables still get
their data), as in the DAGs; a failed Spark step skips the post-load SQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from cryptolake import logs, pipeline
from cryptolake.settings import Settings

log = logs.get(__name__)


@dataclass(frozen=True)
class Step:
    group: str
    name: str  # extract, spark_session, transform, load, post_load_sql
    exit_code: int
    seconds: float


def run_cycles(settings: Settings, groups: list[str], spark=None) -> Iterator[Step]:
    """Each group's steps in turn, sharing one SparkSession (built on first use, stopped at the end)."""
    from cryptolake.services.extract.registry import group as jobs_of
    from cryptolake.services.extract.runner import run_many

    spec = pipeline.default()
    own_session = spark is None
    try:
        for group in groups:
            with logs.context(job=f"run:{group}"):
                started = time.monotonic()
                yield Step(group, "extract", run_many(jobs_of(group), settings), time.monotonic() - started)
                failed = False
                for app in spec.spark_apps:
                    if spark is None:  # its start-up is a step of its own: a cluster pays it once per app
                        started = time.monotonic()
                        spark = _session(settings, "-".join(groups))
                        yield Step(group, "spark_session", 0, time.monotonic() - started)
                    started = time.monotonic()
                    code = _spark_app(app)(settings, group, spark=spark)
                    failed |= code != 0
                    yield Step(group, app, code, time.monotonic() - started)
                if not failed and "load" in spec.spark_apps:
                    started = time.monotonic()
                    yield Step(group, "post_load_sql", _post_load_sql(settings, spec), time.monotonic() - started)
    finally:
        if own_session and spark is not None:
            spark.stop()


def run_group(settings: Settings, group: str) -> int:
    """The exit status of `cryptolake run`: a failed Spark or SQL step outranks the extraction's status."""
    steps = list(run_cycles(settings, [group]))
    for step in steps:
        log.info("%s %s: exit %d in %.1fs", step.group, step.name, step.exit_code, step.seconds)
    return worst(steps)


def worst(steps: list[Step]) -> int:
    later = [s.exit_code for s in steps if s.name != "extract" and s.exit_code]
    if later:
        return 1
    return next((s.exit_code for s in steps if s.name == "extract" and s.exit_code), 0)


def _session(settings: Settings, label: str):
    from cryptolake.spark_apps.session import build_spark_session

    return build_spark_session(f"cryptolake-run-{label}", settings)


def _spark_app(app: str):
    if app == "transform":
        from cryptolake.spark_apps.transform.main import run
    else:
        from cryptolake.spark_apps.load.main import run
    return run


def _post_load_sql(settings: Settings, spec: pipeline.Pipeline) -> int:
    from sqlalchemy import text

    from cryptolake.warehouse.migrate import engine_for

    engine = engine_for(settings.require("warehouse_url", "Set WAREHOUSE_URL (eval \"$(cryptolake local env)\")"))
    try:
        with engine.begin() as connection:
            for statement in spec.post_load_sql:
                connection.execute(text(statement))
    except Exception as exc:  # reported like a failed step, with the statement, never the URL
        log.error("post-load SQL failed: %s", logs.redact(str(exc).splitlines()[0]))
        return 1
    finally:
        engine.dispose()
    return 0
