"""Renders charts/cryptolake offline with the Helm SDK (helm-python-sdk): no cluster, no helm binary.

    from tests.chart.render import render, PROFILE_SECRETS
    objects = render(["charts/cryptolake/values-kind.yaml"], PROFILE_SECRETS)

`render` returns every object the chart makes, hooks and `helm test` pods included, as dicts (NOTES.txt and
empty documents left out). Values files are read in order, then `set_values` is merged on top, as
`helm install -f a.yaml -f b.yaml --set ...` would; the chart's defaults and values.schema.json apply, and a bad
value raises helm_python.HelmValuesError / HelmRenderError with Helm's message.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cryptolake"
RELEASE = "cryptolake"
DEFAULT_VALUES = CHART / "values.yaml"
KIND_VALUES = CHART / "values-kind.yaml"
CLOUD_VALUES = CHART / "values-cloud.yaml"
NODE_VALUES = CHART / "values-node.yaml"  # layered on KIND_VALUES

# Values a profile without existingSecret needs to render (they are never committed in a values file).
# Obviously fake, and distinct, so a test can find each one in what was rendered.
PROFILE_SECRETS: dict[str, Any] = {
    "objectStore": {"accessKeyId": "test-access-key", "secretAccessKey": "test-secret-key-0123",
                    "identities": {role: {"secretAccessKey": f"test-{role}-secret-key"}
                                   for role in ("extract", "transform", "load", "backup", "history", "airflow")}},
    "secrets": {"cmcApiKey": "test-cmc-key", "warehouseLoaderPassword": "test-loader-pw",
                "warehouseBackupPassword": "test-backup-pw"},
    "postgresql": {"auth": {"password": "test-warehouse-pw"}},
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def user_values(values_files: list[str | Path], set_values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values a release would be given: the files in order, then set_values (relative paths: the repo)."""
    values: dict[str, Any] = {}
    for name in values_files:
        path = Path(name)
        path = path if path.is_absolute() else REPO / path
        values = merge(values, yaml.safe_load(path.read_text()) or {})
    return merge(values, set_values or {})


def render_templates(values_files: list[str | Path], set_values: dict[str, Any] | None = None, *,
                     release: str = RELEASE, namespace: str | None = None,
                     is_upgrade: bool = False) -> dict[str, str]:
    """Template path -> rendered text, as the Helm SDK gives it. The namespace defaults to the values'
    jobsNamespace (the chart must be installed there)."""
    import helm_python as helm

    values = user_values(values_files, set_values)
    with helm.Chart.load(CHART) as chart:
        if namespace is None:
            namespace = chart.merge_values(values)["jobsNamespace"]
        return chart.render(values, name=release, namespace=namespace, revision=2 if is_upgrade else 1,
                            is_install=not is_upgrade, is_upgrade=is_upgrade)


def render(values_files: list[str], set_values: dict | None = None) -> list[dict]:
    """Every object of the release, in template order, as dicts."""
    objects = []
    for path, text in sorted(render_templates(values_files, set_values).items()):
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects.append(document)
    return objects


def notes(values_files: list[str | Path], set_values: dict[str, Any] | None = None) -> str:
    return next(text for path, text in render_templates(values_files, set_values).items()
                if path.endswith("NOTES.txt"))
