"""The SparkApplication manifests validate against the operator's CRD (strictly), carry no credentials, and
agree with the spec and the Spark session code; the generated files match the spec (`make generate`)."""

from __future__ import annotations

import copy
import importlib.metadata
import re
import shutil
from functools import lru_cache
from pathlib import Path

import jsonschema
import pytest
import yaml

from cryptolake.orchestration import commands, render
from tests.orchestration.conftest import CRD, MANIFEST_DIR, REPO

DNS_1123 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CREDENTIAL = re.compile(r"secret|password|passwd|token|credential|access\.?key|api\.?key|session\.key", re.I)


def strict(schema):
    """The schema with `additionalProperties: false` wherever it lists properties and leaves others open."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@lru_cache(maxsize=1)
def validator() -> jsonschema.Draft4Validator:
    crd = yaml.load(CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 0.8 MB
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    return jsonschema.Draft4Validator(strict(version["schema"]["openAPIV3Schema"]))


def manifests() -> dict[str, dict]:
    found = {p.name: yaml.safe_load(p.read_text()) for p in sorted(MANIFEST_DIR.glob("*.yaml"))}
    assert found, f"no manifest in {MANIFEST_DIR}"
    return found


def test_one_manifest_per_group_and_app_and_each_is_named_by_its_dag(dagbags, spec):
    expected = {f"{g}-{app}.yaml" for g in spec.groups for app in spec.spark_apps}
    assert set(manifests()) == expected
    named = {task.application_file for dag in dagbags["kubernetes"].dags.values() for task in dag.tasks
             if type(task).__name__ == "SparkKubernetesOperator"}
    assert named == {(MANIFEST_DIR / name).read_text() for name in expected}  # resolved by Airflow


def test_every_manifest_validates_strictly_against_the_crd():
    for name, manifest in manifests().items():
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(manifest)]
        assert errors == [], name


def test_the_strict_schema_catches_a_typo_and_a_bad_value():
    manifest = manifests()["daily-transform.yaml"]
    typo = copy.deepcopy(manifest)
    typo["spec"]["driver"]["memroy"] = typo["spec"]["driver"].pop("memory")
    assert any("memroy" in e.message for e in validator().iter_errors(typo))
    bad = copy.deepcopy(manifest)
    bad["spec"]["restartPolicy"]["type"] = "Sometimes"
    assert not validator().is_valid(bad)


def test_manifests_say_what_the_spec_says(spec):
    k8s = spec.kubernetes
    for group in spec.groups:
        for app in spec.spark_apps:
            manifest = manifests()[f"{group}-{app}.yaml"]
            meta, body = manifest["metadata"], manifest["spec"]
            assert manifest["apiVersion"] == "sparkoperator.k8s.io/v1beta2" and manifest["kind"] == "SparkApplication"
            assert meta["name"] == f"cryptolake-{group}-{app}" and DNS_1123.match(meta["name"])
            assert len(meta["name"]) <= 63 - 9  # the operator's random suffix still fits a label value
            assert meta["namespace"] == k8s.namespace
            assert (body["type"], body["mode"], body["pythonVersion"]) == ("Python", "cluster", "3")
            assert body["sparkVersion"] == importlib.metadata.version("pyspark")
            assert body["image"] == k8s.images["spark"]
            assert body["mainApplicationFile"] == f"local:///opt/cryptolake/apps/{app}.py"
            assert ["cryptolake", app, *body["arguments"]] == commands.spark_app(app, group)
            # kept for inspection, failed or not, as long as the spec says; Airflow alone retries
            assert body["timeToLiveSeconds"] == k8s.finished_retention_hours * 3600 >= 24 * 3600
            assert body["restartPolicy"] == {"type": "Never"}
            driver, executor = body["driver"], body["executor"]
            assert (driver["cores"], driver["memory"], driver["memoryOverhead"]) == (
                k8s.spark_driver["cores"], k8s.spark_driver["memory"], k8s.spark_driver["memory_overhead"])
            assert driver["serviceAccount"] == k8s.spark_service_account
            # the pods' CPU requests (a driver and an executor fit a 2-core node beside the platform)
            assert (driver["coreRequest"], executor["coreRequest"]) == (
                k8s.spark_driver["core_request"], k8s.spark_executor["core_request"])
            assert (executor["instances"], executor["cores"], executor["memory"]) == (
                k8s.spark_executor["instances"], k8s.spark_executor["cores"], k8s.spark_executor["memory"])
            for pod in (driver, executor):
                # the app's own Secret: transform holds no warehouse login, neither holds the API key
                assert pod["envFrom"] == [{"configMapRef": {"name": k8s.config_map}},
                                          {"secretRef": {"name": k8s.secrets[app]}}]
                assert pod["securityContext"] == {
                    "runAsNonRoot": True, "runAsUser": 185, "runAsGroup": 185, "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"}}
                # the read-only root's writable /tmp
                assert pod["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
                assert pod["labels"]["cryptolake/group"] == group
                assert "env" not in pod  # values come from the ConfigMap and the Secret only
            assert body["volumes"] == [{"name": "tmp", "emptyDir": {}}]


def test_spark_conf_holds_no_credentials_and_agrees_with_the_session_code():
    from cryptolake.lake import Lake
    from cryptolake.settings import Settings
    from cryptolake.spark_apps.session import lake_conf

    settings = Settings.load(env={"LAKE_URI": "s3://lake", "AWS_ENDPOINT_URL": "http://s3:8333"})
    session = lake_conf(settings, Lake.from_settings(settings))
    for name, manifest in manifests().items():
        conf = manifest["spec"]["sparkConf"]
        assert not [k for k in conf if CREDENTIAL.search(k)], name
        assert "hadoopConf" not in manifest["spec"], name
        assert all(isinstance(v, str) for v in conf.values())
        # what both set, they set alike; the event-log directory is the session's (it follows LAKE_URI)
        assert {k: session[k] for k in conf} == conf, name
        assert "spark.eventLog.dir" not in conf and session["spark.eventLog.dir"] == "s3a://lake/spark-events"
    assert CREDENTIAL.search("spark.hadoop.fs.s3a.secret.key") and CREDENTIAL.search("fs.s3a.access.key")


def test_render_check_passes_on_the_repository(capsys):
    assert render.main(["--check", "--root", str(REPO)]) == 0
    assert "match cryptolake/pipeline.yaml" in capsys.readouterr().out


def copy_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for part in (render.SPEC_PATH, render.DAG_FILE):
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / part, root / part)
    shutil.copytree(REPO / render.MANIFEST_DIR, root / render.MANIFEST_DIR)
    return root


def test_a_changed_spec_changes_the_output_and_check_names_the_drifted_files(tmp_path, capsys):
    root = copy_repo(tmp_path)
    spec_file = root / render.SPEC_PATH
    original = spec_file.read_text()
    changed = original.replace('spark: "cryptolake-spark:0.1.0"', 'spark: "cryptolake-spark:0.2.0"')
    assert changed != original
    before, after = render.artefacts(original), render.artefacts(changed)
    assert set(before) == set(after)
    differ = {path for path in before if before[path] != after[path]}
    assert differ == {render.DAG_FILE, render.CHART_SPEC} | {p for p in before if p.startswith(render.MANIFEST_DIR)}
    spec_file.write_text(changed)
    (root / render.MANIFEST_DIR / "hourly-transform.yaml").write_text("stale\n")
    assert render.main(["--check", "--root", str(root)]) == 1
    message = capsys.readouterr().err
    assert "dags/cryptolakehouse.py" in message and "manifests/spark/daily-load.yaml" in message
    assert "manifests/spark/hourly-transform.yaml" in message
    assert render.main(["--root", str(root)]) == 0  # `make generate` writes them
    assert not (root / render.MANIFEST_DIR / "hourly-transform.yaml").exists()
    assert render.main(["--check", "--root", str(root)]) == 0
    assert "cryptolake-spark:0.2.0" in (root / render.MANIFEST_DIR / "daily-load.yaml").read_text()


def test_a_schedule_change_reaches_the_dag_file_and_a_bad_spec_is_refused(tmp_path, capsys):
    original = (REPO / render.SPEC_PATH).read_text()
    moved = original.replace('at: ["08:20"]', 'at: ["07:20"]')
    assert render.artefacts(moved)[render.DAG_FILE] != render.artefacts(original)[render.DAG_FILE]
    root = copy_repo(tmp_path)
    (root / render.SPEC_PATH).write_text(original.replace("spark_apps: [transform, load]", "spark_apps: [train]"))
    assert render.main(["--check", "--root", str(root)]) == 2
    assert "spark_apps[0]" in capsys.readouterr().err


def test_the_generated_dag_file_embeds_exactly_the_spec():
    namespace: dict = {}
    source = (REPO / render.DAG_FILE).read_text()
    assert source.startswith("# Generated from cryptolake/pipeline.yaml by `make generate`")
    literal = source.split("\nSPEC = ", 1)[1].split("\n\n", 1)[0]
    exec(f"SPEC = {literal}", namespace)
    assert namespace["SPEC"] == yaml.safe_load((REPO / render.SPEC_PATH).read_text())
