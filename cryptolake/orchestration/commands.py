"""The exact `cryptolake` command line of every orchestrated task, written down once.

The KubernetesPodOperator tasks, the local backend's subprocesses and the SparkApplication manifests all take
their argv from here, so a DAG cannot run a command the CLI does not have (tests/orchestration parses each one
with the real click CLI). No Airflow import: the manifest renderer and the tests use it without Airflow.
"""

from __future__ import annotations

from cryptolake.groups import GROUPS
from cryptolake.pipeline import SPARK_APPS

EXECUTABLE = "cryptolake"  # the console script of pyproject.toml, on PATH in both images


def extract(extractor: str, group: str) -> list[str]:
    """One extractor as `group` runs it (the group's parameters and priority)."""
    return [EXECUTABLE, "extract", extractor, "--group", _group(group)]


def spark_app(app: str, group: str) -> list[str]:
    """A Spark application (transform or load) over one group's tables."""
    if app not in SPARK_APPS:
        raise ValueError(f"unknown Spark application {app!r}; choose one of {', '.join(SPARK_APPS)}")
    return [EXECUTABLE, app, "--group", _group(group)]


def spark_app_arguments(app: str, group: str) -> list[str]:
    """What spark-submit passes the app's entry file: the command's arguments after `cryptolake <app>`
    (spark_apps/<app>/main.py is that command itself)."""
    return spark_app(app, group)[2:]


def backup() -> list[str]:
    """A warehouse dump to the lake's gold layer; prints the backup id."""
    return [EXECUTABLE, "backup"]


def status() -> list[str]:
    """The warehouse's health as JSON; exit status 3 when a table is stale, failing or never loaded."""
    return [EXECUTABLE, "status", "--json"]


def _group(group: str) -> str:
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; choose one of {', '.join(GROUPS)}")
    return group
