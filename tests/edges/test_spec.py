"""The pipeline spec's gaps not covered by tests/budget (which checks schedules, extractors, airflow policy):
the file's shape, the Spark apps and post-load SQL lists, and the Kubernetes names and sizes that would
otherwise fail only when a pod or a SparkApplication is created. One line naming the field, via the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.edges.cli import error_line, run

SPEC = Path(__file__).resolve().parents[2] / "cryptolake" / "pipeline.yaml"


def _edited(edit) -> str:
    raw = yaml.safe_load(SPEC.read_text())
    edit(raw)
    return yaml.safe_dump(raw, sort_keys=False)


CASES = [
    ("empty file", "", "the whole file: expected a mapping, got nothing"),
    ("a list", "- groups\n- extractors\n", "the whole file: expected a mapping, got list"),
    ("unknown spark app", _edited(lambda r: r.update(spark_apps=["transform", "deploy"])),
     "spark_apps[1]: expected one of transform, load, got 'deploy'"),
    ("post-load SQL as one string", _edited(lambda r: r.update(post_load_sql="CALL meta.refresh_statistics()")),
     "post_load_sql: expected a list of SQL statements"),
    ("namespace not a Kubernetes name", _edited(lambda r: r["kubernetes"].update(namespace="Cryptolake_Jobs")),
     "kubernetes.namespace: expected a Kubernetes name"),
    ("secret not a Kubernetes name", _edited(lambda r: r["kubernetes"]["secrets"].update(load="cryptolake load")),
     "kubernetes.secrets.load: expected a Kubernetes name"),
    ("a component without a Secret", _edited(lambda r: r["kubernetes"]["secrets"].pop("backup")),
     "kubernetes.secrets.backup: missing"),
    ("two components sharing a Secret", _edited(lambda r: r["kubernetes"]["secrets"].update(load="cryptolake-extract")),
     "kubernetes.secrets: extract and load share a Secret; give each component its own"),
    ("extract memory not a quantity", _edited(lambda r: r["kubernetes"]["extract_resources"].update(memory="lots")),
     "kubernetes.extract_resources.memory: expected a Kubernetes quantity"),
    ("extract cpu as a word", _edited(lambda r: r["kubernetes"]["extract_resources"].update(cpu="quarter")),
     "kubernetes.extract_resources.cpu: expected a Kubernetes quantity"),
    ("Spark memory in Kubernetes units", _edited(lambda r: r["kubernetes"]["spark_driver"].update(memory="1Gi")),
     "kubernetes.spark_driver.memory: expected a Spark size such as 1g, got '1Gi'"),
    ("driver overhead in Kubernetes units",
     _edited(lambda r: r["kubernetes"]["spark_driver"].update(memory_overhead="512Mi")),
     "kubernetes.spark_driver.memory_overhead: expected a Spark size such as 1g, got '512Mi'"),
    ("executor CPU request as a word",
     _edited(lambda r: r["kubernetes"]["spark_executor"].update(core_request="half")),
     "kubernetes.spark_executor.core_request: expected a Kubernetes CPU quantity such as 250m or 1, got 'half'"),
    ("no retention for finished pods", _edited(lambda r: r["kubernetes"].update(finished_retention_hours=0)),
     "kubernetes.finished_retention_hours"),
    ("backup at an impossible hour", _edited(lambda r: r["backup"]["schedule"].update(at=["25:00"])),
     "backup.schedule.at[0]: expected HH:MM"),
]


@pytest.mark.parametrize(("text", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_spec_is_one_line_naming_the_field(tmp_path, text, says):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    error_line(run("budget", "--spec", str(path)), f"pipeline spec {path}: {says}", "docs/orchestration.md")


def test_the_shipped_spec_passes_the_same_checks():
    done = run("budget", "--month", "2026-12", "--spec", str(SPEC))
    assert done.returncode == 0, done.stderr
