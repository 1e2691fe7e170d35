"""The chart lints strictly and every rendered object is valid Kubernetes, for every profile."""

from __future__ import annotations

import copy

import pytest

from tests.chart.conftest import PROFILES
from tests.chart.render import CHART, render, render_templates, user_values



def newest_kubernetes() -> str:
    import kubernetes_validate.utils as kv

    return kv.latest_version()


@pytest.mark.parametrize("profile", PROFILES)
def test_lint_is_clean_in_strict_mode(profile):
    import helm_python as helm

    files, values = PROFILES[profile]
    report = helm.lint(CHART, user_values(files, values), strict=True, namespace="cryptolake-jobs",
                       kube_version=f"v{newest_kubernetes()}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_strict_lint_reports_a_broken_chart(tmp_path):
    import shutil

    import helm_python as helm

    broken = tmp_path / "cryptolake"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.nope.x }}\n")
    files, values = PROFILES["default"]
    report = helm.lint(broken, user_values(files, values), strict=True, namespace="cryptolake-jobs")
    assert report["errors"] or any(m["severity"] >= 2 for m in report["messages"])


@pytest.mark.parametrize("profile", PROFILES)
def test_every_object_validates_against_the_strict_kubernetes_schemas(renders, profile):
    import kubernetes_validate

    version = newest_kubernetes()
    assert version.startswith("1.") and int(version.split(".")[1]) >= 37
    for obj in renders[profile]:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_strict_schemas_catch_a_misspelt_field(renders):
    import kubernetes_validate

    deployment = copy.deepcopy(next(o for o in renders["default"] if o["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, newest_kubernetes(), strict=True)


def test_rendering_is_deterministic(renders):
    files, values = PROFILES["kind"]
    assert render(files, values) == renders["kind"]
    first = render_templates(files, values)
    assert render_templates(files, values) == first
