"""Our values for the upstream charts (charts/values/) use only keys checked against the chart versions the Makefile
pins (charts/values/upstream.yaml), and say what those versions need: the Airflow of our image, and the
KubernetesExecutor's worker account where chart 1.21+ reads it."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.chart.render import CHART, KIND_VALUES, REPO, merge
from tests.chart.upstream import MANIFEST, check, covered, leaf_paths, makefile_variable

PINS = {"spark-operator": "SPARK_OPERATOR_CHART_VERSION", "airflow": "AIRFLOW_CHART_VERSION"}


def record() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def values_of(chart: str) -> dict:
    return yaml.safe_load((REPO / record()[chart]["values"]).read_text())


def test_the_record_is_of_the_chart_versions_the_makefile_pins():
    assert set(record()) == set(PINS)
    for chart, variable in PINS.items():
        assert str(record()[chart]["version"]) == makefile_variable(variable), \
            f"{variable} moved: check {record()[chart]['values']} against that chart and update {MANIFEST.name}"


@pytest.mark.parametrize("chart", sorted(PINS))
def test_our_values_use_only_keys_checked_against_the_pinned_chart(chart):
    keys = record()[chart]["keys"]
    unchecked = [path for path in leaf_paths(values_of(chart)) if not covered(path, keys)]
    assert not unchecked, f"not checked against {chart} {record()[chart]['version']}: {unchecked}"


def test_the_kubernetes_executor_workers_run_as_the_account_the_cryptolake_chart_binds():
    """Chart 1.21+ takes the task pods' account from workers.kubernetes.serviceAccount; workers.serviceAccount is
    the (deprecated) Celery workers' one, whose generated name for release `airflow` is airflow-worker too."""
    workers = values_of("airflow")["workers"]
    bound = yaml.safe_load((CHART / "values.yaml").read_text())["airflow"]["workerServiceAccount"]
    assert workers["kubernetes"]["serviceAccount"] == {"create": True, "name": bound}
    assert workers["serviceAccount"] == {"create": False}


def test_the_airflow_chart_is_told_the_airflow_of_our_image():
    (base,) = re.findall(r"^FROM apache/airflow:(\S+)", (REPO / "dags" / "Dockerfile").read_text(), re.MULTILINE)
    airflow_version = base.split("-python")[0]
    values = values_of("airflow")
    assert values["airflowVersion"] == values["defaultAirflowTag"] == airflow_version


def test_the_key_check_takes_a_charts_schema_and_names_a_key_it_does_not_have():
    """tests/chart/upstream.py on a real chart with a values.schema.json (ours): the kind values pass, free-form
    maps become `.*` entries, and a misspelt key is named."""
    kind = merge(yaml.safe_load(KIND_VALUES.read_text()), {"commonLabels": {"team": "data"}})
    keys, missing = check(CHART, kind)
    assert not missing and all(covered(path, keys) for path in leaf_paths(kind))
    assert "commonLabels.*" in keys and "objectStore.type" in keys
    _, missing = check(CHART, {"objectStore": {"buckett": "x"}, "postgresql": {"auth": {"username": "u"}}})
    assert missing == ["objectStore.buckett"]


def test_the_key_check_takes_a_charts_default_values_without_a_schema(tmp_path):
    """Without values.schema.json (the Spark Operator's chart) the default values.yaml decides: a key it has, an
    empty map as a free-form subtree, anything else unknown."""
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(
        {"controller": {"resources": {}, "replicas": 1}, "spark": {"jobNamespaces": ["default"]}}))
    keys, missing = check(tmp_path, {"controller": {"resources": {"limits": {"memory": "1Gi"}}, "replica": 2},
                                     "spark": {"jobNamespaces": ["a", "b"]}})
    assert keys == ["controller.resources.*", "spark.jobNamespaces"]
    assert missing == ["controller.replica"]
