"""Renders the artefacts derived from the pipeline spec: the Airflow DAG file and the SparkApplication manifests.

    python -m cryptolake.orchestration.render [--check] [--root DIR]    (`make generate`)

writes `dags/cryptolakehouse.py`, `manifests/spark/<group>-<app>.yaml`, the chart's copy of the spec
(`charts/cryptolake/files/pipeline.yaml`) and of the components' lake writes (`files/lake-writes.json`) under the
repository root from its `cryptolake/pipeline.yaml`; with --check it writes nothing and exits 1 naming every file
that differs from what the spec gives (missing, changed, or a stale manifest no group names any more). No Airflow
import: the manifests are plain data; the DAG file imports cryptolake.orchestration.dags when Airflow parses it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import pprint
import sys
from pathlib import Path
from typing import Any

import yaml

from cryptolake import pipeline
from cryptolake.errors import CryptolakeError
from cryptolake.lake import WRITES
from cryptolake.orchestration import commands
from cryptolake.pipeline import Pipeline

SPEC_PATH = "cryptolake/pipeline.yaml"  # relative to the repository root
DAG_FILE = "dags/cryptolakehouse.py"
CHART_SPEC = "charts/cryptolake/files/pipeline.yaml"  # the chart's ConfigMap of the spec (.Files.Get): a copy
CHART_WRITES = "charts/cryptolake/files/lake-writes.json"  # lake.WRITES, for the object store's identities
MANIFEST_DIR = "manifests/spark"
# Where the Spark image puts the entry files (spark_apps/<app>/main.py as <app>.py); the Spark image's
# Dockerfile copies them here.
APPS_DIR = "/opt/cryptolake/apps"
TMP_VOLUME = "tmp"
SPARK_UID = 185  # the Spark image's uid/gid (spark_apps/Dockerfile: USER 185:185, as the official Spark images)
GENERATED = "Generated from cryptolake/pipeline.yaml by `make generate` (python -m cryptolake.orchestration.render)."
DO_NOT_EDIT = "Do not edit: change the spec and regenerate; tests/orchestration fails when this file drifts."

# Settings the apps need in every session. spark_apps/session.py sets the same ones (and the event-log
# directory, derived from LAKE_URI at session build, which a static manifest cannot know) when it builds the
# session; here they also show in the SparkApplication. tests/orchestration checks the two agree.
# Never credentials: sparkConf becomes `--conf k=v` on the operator's spark-submit command line.
SPARK_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.eventLog.enabled": "true",
    "spark.eventLog.rolling.enabled": "true",
}


class _Dumper(yaml.SafeDumper):
    """Plain YAML: every mapping written out where it is used (no &anchors / *aliases)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def manifest_name(group: str, app: str) -> str:
    """The file name of a group's SparkApplication for one app, under manifests/spark/."""
    return f"{group}-{app}.yaml"


def application_name(group: str, app: str) -> str:
    """metadata.name: DNS-1123 (starts with a letter; the operator adds a random suffix per run)."""
    return f"cryptolake-{group}-{app}"


def spark_version() -> str:
    """The Spark version the images must carry: the one the local pyspark pin installs."""
    try:
        return importlib.metadata.version("pyspark")
    except importlib.metadata.PackageNotFoundError:
        raise CryptolakeError("pyspark is not installed, so the manifests' sparkVersion is unknown",
                              "Install the 'spark' extra (make setup) and run `make generate` again") from None


def spark_application(spec: Pipeline, group: str, app: str, version: str) -> dict[str, Any]:
    """One plain SparkApplication (sparkoperator.k8s.io/v1beta2): `cryptolake <app> --group <group>`."""
    k8s = spec.kubernetes
    labels = {"app.kubernetes.io/name": "cryptolake", "app.kubernetes.io/part-of": "cryptolakehouse",
              "app.kubernetes.io/component": f"spark-{app}", "cryptolake/group": group}
    env_from = [{"configMapRef": {"name": k8s.config_map}}, {"secretRef": {"name": k8s.secrets[app]}}]
    security = {"runAsNonRoot": True, "runAsUser": SPARK_UID, "runAsGroup": SPARK_UID,
                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"}}
    # The root filesystem is read-only: Python's and the JVM's temporary files go to an emptyDir (Spark's own
    # local directories are emptyDirs Spark adds itself).
    pod = {"labels": labels, "envFrom": env_from, "securityContext": security,
           "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}]}
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": application_name(group, app), "namespace": k8s.namespace, "labels": labels},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "sparkVersion": version,
            "image": k8s.images["spark"],
            "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": f"local://{APPS_DIR}/{app}.py",
            "arguments": commands.spark_app_arguments(app, group),
            "sparkConf": dict(SPARK_CONF),
            # One retry policy, Airflow's (the spec's airflow.retries with backoff): the task fails when the
            # application fails, so the operator's own restarts would never apply.
            "restartPolicy": {"type": "Never"},
            # Kept after it ends, failed or not, for `kubectl describe` and the driver's log; then the operator
            # deletes it and its driver pod.
            "timeToLiveSeconds": k8s.finished_retention_hours * 3600,
            "volumes": [{"name": TMP_VOLUME, "emptyDir": {}}],
            "driver": {"cores": k8s.spark_driver["cores"], "coreRequest": k8s.spark_driver["core_request"],
                       "memory": k8s.spark_driver["memory"],
                       "memoryOverhead": k8s.spark_driver["memory_overhead"],
                       "serviceAccount": k8s.spark_service_account, **pod},
            "executor": {"instances": k8s.spark_executor["instances"], "cores": k8s.spark_executor["cores"],
                         "coreRequest": k8s.spark_executor["core_request"],
                         "memory": k8s.spark_executor["memory"], **pod},
        },
    }


def artefacts(spec_text: str, source: str = SPEC_PATH, version: str | None = None) -> dict[str, str]:
    """Every generated file (path relative to the repository root -> content) for this spec text."""
    from cryptolake.services.extract.registry import checked

    spec = checked(pipeline.parse(spec_text, source))
    version = version or spark_version()
    files = {DAG_FILE: dag_file(yaml.safe_load(spec_text), source), CHART_SPEC: spec_text,
             CHART_WRITES: json.dumps({role: list(prefixes) for role, prefixes in WRITES.items()}, indent=2) + "\n"}
    for group in spec.groups:
        for app in spec.spark_apps:
            body = yaml.dump(spark_application(spec, group, app, version), Dumper=_Dumper, sort_keys=False,
                             width=110)
            files[f"{MANIFEST_DIR}/{manifest_name(group, app)}"] = f"# {GENERATED}\n# {DO_NOT_EDIT}\n{body}"
    return files


def dag_file(raw_spec: dict, source: str) -> str:
    """The DAG file: the spec as a Python literal (parsing the DAG file reads no file), built on import."""
    literal = pprint.pformat(raw_spec, width=110, sort_dicts=False)
    return f'''# {GENERATED}
# {DO_NOT_EDIT}
"""CryptoLakehouse's Airflow DAGs: init, daily, weekly, 5x, 10x, backup, status and, on a cluster, housekeeping
(docs/orchestration.md); a failed run of any of them alerts through the spec's airflow.alerts notifier.

The backend comes from CRYPTOLAKE_DAG_BACKEND (kubernetes: pods and SparkApplications; local: the same
commands as subprocesses of the worker); by default kubernetes inside a cluster, local elsewhere.
"""

import os

from cryptolake import pipeline
from cryptolake.orchestration.dags import backend_from_env, build_dags

SPEC = {literal}

# The SparkApplication manifests sit next to dags/ in the repository (manifests/spark).
MANIFEST_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                             {MANIFEST_DIR.split("/")[0]!r}, {MANIFEST_DIR.split("/")[1]!r}))

# The spec goes through the same checks as the file it came from.
globals().update(build_dags(pipeline.from_mapping(SPEC, {source!r}), backend_from_env(),
                            manifest_dir=MANIFEST_DIR))
'''


def drifted(root: Path, files: dict[str, str]) -> list[str]:
    """Paths (relative to root) whose content differs from `files`, and stale manifests."""
    out = [path for path, content in files.items()
           if not (root / path).is_file() or (root / path).read_text() != content]
    stale = sorted(str(p.relative_to(root)) for p in (root / MANIFEST_DIR).glob("*.yaml")
                   if str(p.relative_to(root)) not in files)
    return sorted(out) + stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptolake.orchestration.render", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming the files that differ from the spec")
    parser.add_argument("--root", type=Path, default=Path.cwd(),
                        help="the repository root (default: the current directory)")
    args = parser.parse_args(argv)
    spec_file = args.root / SPEC_PATH
    try:
        if not spec_file.is_file():
            raise CryptolakeError(f"no pipeline spec at {spec_file}",
                                  "Run from the repository root or give --root")
        files = artefacts(spec_file.read_text())
    except CryptolakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale_or_changed = drifted(args.root, files)
    if args.check:
        if stale_or_changed:
            print("generated files differ from cryptolake/pipeline.yaml (run `make generate`): "
                  + ", ".join(stale_or_changed), file=sys.stderr)
            return 1
        print(f"{len(files)} generated files match cryptolake/pipeline.yaml")
        return 0
    for path in stale_or_changed:
        target = args.root / path
        if path in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[path])
            print(f"wrote {path}")
        else:
            target.unlink()
            print(f"removed {path} (no group runs it any more)")
    if not stale_or_changed:
        print(f"{len(files)} generated files already match cryptolake/pipeline.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
