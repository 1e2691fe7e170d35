"""charts/kind-secrets.sh, which `make deploy` runs before the charts: it creates every Secret the kind profile and
Airflow's values name, with random values made on the spot, keeps them on a re-run, never prints them nor passes
them as arguments, and stops before writing when the cluster cannot be read. kubectl is a stand-in
(tests/e2e/fake_kubectl.py) over a directory, with the real kubectl rendering the Secrets (`create --dry-run`)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.chart.render import KIND_VALUES, render

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "charts" / "kind-secrets.sh"
AIRFLOW_VALUES = REPO / "charts" / "values" / "airflow.yaml"
JOBS, AIRFLOW = "cryptolake-jobs", "airflow"


@pytest.fixture
def kube(tmp_path):
    """(environment with the fake kubectl first on PATH, its state directory)."""
    real = shutil.which("kubectl")
    assert real, "kubectl is not installed (the tests render Secrets with `kubectl create --dry-run=client`)"
    state = tmp_path / "state"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO / 'tests' / 'e2e')!r})\n"
                    "import fake_kubectl\nsys.exit(fake_kubectl.main(sys.argv[1:]))\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_KUBE_STATE": str(state),
           "REAL_KUBECTL": real, "KUBECONFIG": str(tmp_path / "no-kubeconfig"), "CMC_API_KEY": "sandbox-key-1"}
    return env, state


def run(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), "kind-cryptolake", JOBS, AIRFLOW], env={**env, **extra},
                          capture_output=True, text=True, timeout=120)


def secrets(state: Path) -> dict[tuple[str, str], dict[str, str]]:
    found = {}
    for path in state.glob("Secret.*.json"):
        obj = json.loads(path.read_text())
        found[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = {
            k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    return found


def objects(state: Path) -> dict[tuple[str, str, str], dict]:
    """(kind, namespace, name) -> every object applied."""
    return {tuple(path.name.removesuffix(".json").split(".", 2)): json.loads(path.read_text())
            for path in state.glob("*.json")}


def airflow_secret_names() -> dict[str, str]:
    """Secret name -> key, as charts/values/airflow.yaml uses them."""
    values = yaml.safe_load(AIRFLOW_VALUES.read_text())
    names = {values["data"]["metadataSecretName"]: "connection", values["fernetKeySecretName"]: "fernet-key",
             values["apiSecretKeySecretName"]: "api-secret-key", values["jwtSecretName"]: "jwt-secret"}
    names.update({s["secretName"]: s["secretKey"] for s in values["secret"]})
    return names


COMPONENTS = ("extract", "transform", "load", "backup", "history", "airflow", "admin")


def test_a_first_run_creates_every_secret_the_charts_name_with_fresh_random_values(kube):
    env, state = kube
    result = run(env)
    assert result.returncode == 0, result.stderr
    made = secrets(state)
    assert set(made) == {(JOBS, "cryptolake-postgresql"), *((JOBS, f"cryptolake-{c}") for c in COMPONENTS),
                         *((AIRFLOW, name) for name in airflow_secret_names())}
    for name, key in airflow_secret_names().items():
        assert set(made[(AIRFLOW, name)]) == {key}, name
    password = made[(JOBS, "cryptolake-postgresql")]["password"]
    component = {c: made[(JOBS, f"cryptolake-{c}")] for c in COMPONENTS}
    assert component["extract"]["CMC_API_KEY"] == "sandbox-key-1"
    # exactly what the chart itself would make for the kind profile from the same values: each component's
    # Secret with only its keys (tests/chart/test_credentials.py checks who gets what)
    admin = component["admin"]
    rendered = render([KIND_VALUES], {
        "postgresql": {"auth": {"password": password}},
        "secrets": {"cmcApiKey": "sandbox-key-1", "warehouseLoaderPassword": admin["WAREHOUSE_LOADER_PASSWORD"],
                    "warehouseBackupPassword": admin["WAREHOUSE_BACKUP_PASSWORD"]},
        "objectStore": {"accessKeyId": admin["AWS_ACCESS_KEY_ID"], "secretAccessKey": admin["AWS_SECRET_ACCESS_KEY"],
                        "identities": {c: {"accessKeyId": component[c]["AWS_ACCESS_KEY_ID"],
                                           "secretAccessKey": component[c]["AWS_SECRET_ACCESS_KEY"]}
                                       for c in COMPONENTS if c != "admin"}}})
    chart = {o["metadata"]["name"]: o["stringData"] for o in rendered if o["kind"] == "Secret"}
    for c in COMPONENTS:
        assert component[c] == chart[f"cryptolake-{c}"], c
    assert made[(JOBS, "cryptolake-postgresql")] == chart["cryptolake-postgresql"]
    host = f"@cryptolake-postgresql.{JOBS}.svc.cluster.local:5432"
    assert made[(AIRFLOW, "airflow-metadata")]["connection"] == \
        f"postgresql+psycopg2://cryptolake:{password}{host}/airflow"
    # post-load SQL (CALL meta.refresh_statistics()) runs as the loader's login, not the owner
    assert made[(AIRFLOW, "airflow-cryptolake-warehouse")]["connection"] == \
        f"postgres://cryptolake_loader_user:{admin['WAREHOUSE_LOADER_PASSWORD']}{host}/cryptolake"
    # task logs: an aws connection to the chart's object store, with Airflow's own S3 identity
    [settings] = [o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "cryptolake-config"]
    logs = json.loads(made[(AIRFLOW, "airflow-cryptolake-logs")]["connection"])
    assert logs == {"conn_type": "aws", "login": component["airflow"]["AWS_ACCESS_KEY_ID"],
                    "password": component["airflow"]["AWS_SECRET_ACCESS_KEY"],
                    "extra": {"endpoint_url": settings["data"]["AWS_ENDPOINT_URL"],
                              "region_name": settings["data"]["AWS_REGION"]}}
    assert len(base64.urlsafe_b64decode(made[(AIRFLOW, "airflow-fernet-key")]["fernet-key"])) == 32
    randoms = [password, admin["WAREHOUSE_LOADER_PASSWORD"], admin["WAREHOUSE_BACKUP_PASSWORD"],
               *(component[c]["AWS_SECRET_ACCESS_KEY"] for c in COMPONENTS),
               made[(AIRFLOW, "airflow-api-secret-key")]["api-secret-key"],
               made[(AIRFLOW, "airflow-jwt-secret")]["jwt-secret"], made[(AIRFLOW, "airflow-fernet-key")]["fernet-key"]]
    assert len(set(randoms)) == len(randoms) and all(len(v) >= 32 for v in randoms)
    # nothing secret in what it printed or in any command line
    calls = (state / "calls.jsonl").read_text()
    for value in [*randoms, "sandbox-key-1"]:
        assert value not in result.stdout + result.stderr and value not in calls
    # and another cluster gets other values
    other = state.parent / "state2"
    other.mkdir()
    assert run({**env, "FAKE_KUBE_STATE": str(other)}).returncode == 0
    assert secrets(other)[(JOBS, "cryptolake-postgresql")]["password"] != password


def test_a_rerun_keeps_every_value_and_takes_a_new_api_key(kube):
    env, state = kube
    assert run(env).returncode == 0
    first = secrets(state)
    again = run(env)
    assert again.returncode == 0, again.stderr
    assert secrets(state) == first
    rotated = run(env, CMC_API_KEY="real-key-2")
    assert rotated.returncode == 0, rotated.stderr
    after = secrets(state)
    assert after[(JOBS, "cryptolake-extract")]["CMC_API_KEY"] == "real-key-2"
    after[(JOBS, "cryptolake-extract")]["CMC_API_KEY"] = "sandbox-key-1"
    assert after == first
    # without CMC_API_KEY the stored key stays
    assert run({k: v for k, v in env.items() if k != "CMC_API_KEY"}).returncode == 0
    assert secrets(state)[(JOBS, "cryptolake-extract")]["CMC_API_KEY"] == "real-key-2"


def test_deleting_a_secret_rotates_its_values_into_every_secret_that_carries_them(kube):
    """docs/kubernetes.md, "Rotating secrets": on kind, a value is rotated by deleting the Secret holding it."""
    env, state = kube
    assert run(env).returncode == 0
    first = secrets(state)
    (state / f"Secret.{JOBS}.cryptolake-postgresql.json").unlink()
    assert run(env).returncode == 0
    after = secrets(state)
    old, new = first[(JOBS, "cryptolake-postgresql")]["password"], after[(JOBS, "cryptolake-postgresql")]["password"]
    assert new != old
    assert f":{new}@" in after[(JOBS, "cryptolake-admin")]["WAREHOUSE_URL"]
    assert f":{new}@" in after[(AIRFLOW, "airflow-metadata")]["connection"]
    assert after[(JOBS, "cryptolake-load")] == first[(JOBS, "cryptolake-load")]  # nothing else changed


def test_no_api_key_anywhere_fails_naming_it_and_writes_nothing(kube):
    env, state = kube
    result = run({k: v for k, v in env.items() if k != "CMC_API_KEY"})
    assert result.returncode == 1 and "CMC_API_KEY" in result.stderr
    assert secrets(state) == {}


def test_an_unreadable_cluster_stops_it_before_anything_is_written(kube):
    env, state = kube
    result = run(env, FAKE_KUBE_FAIL_GET="1")
    assert result.returncode != 0 and "refused" in result.stderr
    assert secrets(state) == {}
    assert not any('"apply"' in line for line in (state / "calls.jsonl").read_text().splitlines())


def test_make_deploy_makes_the_secrets_before_the_charts_and_installs_the_chart_on_them(kube, tmp_path):
    """`make deploy` for real, with a docker whose `info` succeeds and a helm that records its arguments: the
    namespaces, then every Secret, then the charts; the cryptolake chart is told to use the Secrets just made."""
    env, state = kube
    bin_dir = Path(env["PATH"].split(os.pathsep)[0])
    for tool in ("docker", "helm"):
        fake = bin_dir / tool
        fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                        f"open({str(state / 'calls.jsonl')!r}, 'a').write(json.dumps([{tool!r}, *sys.argv[1:]]) + '\\n')\n")
        fake.chmod(0o755)
    result = subprocess.run(["make", "-s", "--no-print-directory", "deploy"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    installs = [i for i, c in enumerate(calls) if c[:3] == ["helm", "upgrade", "--install"]]
    assert [calls[i][3] for i in installs] == ["spark-operator", "cryptolake", "airflow"]
    applies = [i for i, c in enumerate(calls) if c[0] != "helm" and "apply" in c]
    namespaces = {name: obj["metadata"]["labels"] for (kind, _, name), obj in objects(state).items()
                  if kind == "Namespace"}
    made = secrets(state)
    assert len(applies) == len(namespaces) + len(made) and max(applies) < installs[0]  # all before helm
    # the jobs namespace enforces what every pipeline pod is built for; Airflow's and the operator's baseline
    enforced = {name: labels["pod-security.kubernetes.io/enforce"] for name, labels in namespaces.items()}
    assert enforced == {JOBS: "restricted", AIRFLOW: "baseline", "spark-operator": "baseline"}
    creates = [" ".join(c[c.index("create") + 1:][:1]) for c in calls if "create" in c]
    assert creates.index("secret") > max(i for i, kind in enumerate(creates) if kind == "namespace")  # first
    assert {(ns, name) for ns, name in secrets(state)} >= {(JOBS, "cryptolake-extract"), (AIRFLOW, "airflow-metadata")}
    cryptolake = " ".join(calls[installs[1]])
    assert "--set secrets.existingSecrets=true" in cryptolake
    assert "--set postgresql.auth.existingSecret=cryptolake-postgresql" in cryptolake
    assert "-f charts/cryptolake/values-kind.yaml" in cryptolake and f"-n {JOBS}" in cryptolake


def test_the_kind_profile_on_those_secrets_creates_none_and_reads_them():
    objects = render([KIND_VALUES], {"secrets": {"existingSecrets": True},
                                     "postgresql": {"auth": {"existingSecret": "cryptolake-postgresql"}}})
    assert [o for o in objects if o["kind"] == "Secret"] == []
    text = json.dumps(objects)
    assert '"name": "cryptolake-postgresql", "key": "password"' in text
    for c in COMPONENTS:
        if c in ("extract", "transform", "backup"):  # read by the DAG pods and SparkApplications, not the chart's
            continue
        assert f'"name": "cryptolake-{c}"' in text, c
