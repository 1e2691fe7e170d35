"""Which key paths of our values files the upstream charts we install have, at the versions the Makefile pins.

charts/values/upstream.yaml records, per upstream chart, the pinned version and the key paths of our values
file that were checked against that version's own chart: a key `a.b`, or a free-form subtree `a.b.*` (a map the
chart does not constrain, e.g. `config.*` or `resources.*`); a list is one key (its items are the chart's
objects, validated by Kubernetes). tests/chart/test_upstream_values.py keeps our values inside that record and
the record at the pinned version, so a new key, or a new pin, needs a new check against the chart:

    helm pull apache-airflow/airflow --version <AIRFLOW_CHART_VERSION of the Makefile> --untar -d /tmp/up
    .venv/bin/python -m tests.chart.upstream /tmp/up/airflow charts/values/airflow.yaml

prints the keys for the record, or names each key the chart does not have and exits 1. The chart's
values.schema.json decides where it has one (properties, additionalProperties); without one (the Spark
Operator's chart), its default values.yaml does, an empty map there being free-form.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "charts" / "values" / "upstream.yaml"
MAKEFILE = REPO / "Makefile"


def leaf_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the scalars and lists in a values mapping (an empty map is a leaf too)."""
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths.extend(leaf_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def covered(path: str, keys: list[str]) -> bool:
    """Whether a recorded key (exactly) or free-form subtree (`prefix.*`) holds this path."""
    return any(path == key or (key.endswith(".*") and (path + ".").startswith(key[:-1])) for key in keys)


def _schema_key(schema: dict[str, Any], parts: list[str]) -> str | None:
    """The record entry for a path under a JSON schema, or None where the schema has no such key."""
    node, walked = schema, []
    for part in parts:
        if "$ref" in node or node.get("type") == "array":
            return ".".join(walked) + ".*"  # a Kubernetes object or list item: not the chart's keys
        properties = node.get("properties", {})
        if part in properties:
            node = properties[part]
            walked.append(part)
        elif node.get("additionalProperties") not in (None, False):
            return ".".join(walked) + ".*"
        else:
            return None
    return ".".join(walked)


def _defaults_key(defaults: Any, parts: list[str]) -> str | None:
    """The record entry for a path under a chart's default values.yaml, or None where it has no such key."""
    node, walked = defaults, []
    for part in parts:
        if isinstance(node, dict) and not node and walked:
            return ".".join(walked) + ".*"  # `{}` by default: a map the chart passes through
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
        walked.append(part)
    return ".".join(walked)


def check(chart_dir: Path, values: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(record entries covering every path of `values`, paths the chart does not have)."""
    schema_file, defaults_file = chart_dir / "values.schema.json", chart_dir / "values.yaml"
    if schema_file.is_file():
        schema = json.loads(schema_file.read_text())
        key_for = lambda parts: _schema_key(schema, parts)  # noqa: E731
    else:
        defaults = yaml.safe_load(defaults_file.read_text()) or {}
        key_for = lambda parts: _defaults_key(defaults, parts)  # noqa: E731
    keys, missing = set(), []
    for path in leaf_paths(values):
        key = key_for(path.split("."))
        if key is None:
            missing.append(path)
        else:
            keys.add(key)
    return sorted(keys), missing


def makefile_variable(name: str) -> str:
    """A `NAME ?= value` of the Makefile: where the upstream chart versions are pinned."""
    match = re.search(rf"^{name}\s*\??=\s*(\S+)\s*$", MAKEFILE.read_text(), re.MULTILINE)
    if not match:
        raise LookupError(f"{name} is not set in the Makefile")
    return match.group(1)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tests.chart.upstream <chart dir> <values file>", file=sys.stderr)
        return 2
    chart_dir, values_file = Path(argv[0]), Path(argv[1])
    keys, missing = check(chart_dir, yaml.safe_load(values_file.read_text()) or {})
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    if missing:
        for path in missing:
            print(f"{values_file}: {path}: chart {chart['name']} {chart['version']} has no such key", file=sys.stderr)
        return 1
    print(yaml.safe_dump({"version": chart["version"], "appVersion": chart.get("appVersion"), "keys": keys},
                         sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
