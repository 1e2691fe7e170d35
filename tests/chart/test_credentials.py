"""Least privilege and rotation (issue 19, points 3 and 9), on the rendered chart, the DAGs and the manifests, and
for real: the chart's SeaweedFS identities on the real `weed` binary, the pipeline's steps on their own identities
and warehouse logins, and the PostgreSQL password step on a real PostgreSQL.

Each component reads a Secret of its own: the API key reaches the extractor pods only, the warehouse only load
(as cryptolake_loader_user) and backup (as cryptolake_backup_user), the owner's URL only the migrate hook, the
object store's admin identity only the chart's bucket tasks; each S3 identity may write only where its
component writes (cryptolake.lake.WRITES). A changed value rolls exactly the servers that read it."""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cryptolake.lake import AIRFLOW_LOGS, WRITES
from cryptolake.local.objectstore import GRPC_OFFSET, find_weed
from cryptolake.local.process import port_open
from tests.chart.objects import component, containers, find, one, pod_specs
from tests.chart.render import CHART, PROFILE_SECRETS, merge, render
from tests.sandbox_process import free_port, launch

SCRIPT = CHART / "files" / "chart_tasks.py"
PASSWORD_STEP = CHART / "files" / "postgresql-password.sh"
CLI = str(Path(sys.executable).parent / "cryptolake")
MANIFEST_DIR = CHART.parents[1] / "manifests" / "spark"
OWNER = "cryptolake"  # postgresql.auth.username


# -- who gets what -----------------------------------------------------------------------------------------------
def received(container: dict, secrets_by_name: dict[str, dict[str, str]]) -> dict[str, str]:
    """Every secret value a container gets, by variable name (envFrom takes a Secret's every key)."""
    out = {}
    for source in container.get("envFrom") or []:
        if source.get("secretRef"):
            out.update(secrets_by_name[source["secretRef"]["name"]])
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref and ref["key"] in secrets_by_name[ref["name"]]:
            out[env["name"]] = secrets_by_name[ref["name"]][ref["key"]]
    return out


@pytest.fixture(scope="module")
def default_objects():
    return render([], PROFILE_SECRETS)


@pytest.fixture(scope="module")
def rendered_secrets(default_objects) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o["stringData"] for o in find(default_objects, "Secret")}


@pytest.fixture(scope="module")
def pipeline_pods(rendered_secrets) -> dict[str, list[dict[str, str]]]:
    """component -> what each of its pods gets: the DAGs' pods (Airflow's own DAG loader) and the manifests'
    drivers and executors."""
    from kubernetes.client import ApiClient

    from tests.orchestration.conftest import load_dagbag

    pods: dict[str, list[dict[str, str]]] = {}
    for dag in load_dagbag("kubernetes").dags.values():
        for task in dag.tasks:
            if type(task).__name__ == "KubernetesPodOperator":
                pod = ApiClient().sanitize_for_serialization(task.build_pod_request_obj(dry_run=True))
                (container,) = pod["spec"]["containers"]
                pods.setdefault(pod["metadata"]["labels"]["app.kubernetes.io/component"], []).append(
                    received(container, rendered_secrets))
    for path in sorted(MANIFEST_DIR.glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        app = manifest["metadata"]["labels"]["app.kubernetes.io/component"].removeprefix("spark-")
        for role in ("driver", "executor"):
            pods.setdefault(app, []).append(received(manifest["spec"][role], rendered_secrets))
    return pods


def test_each_pipeline_pod_gets_only_what_its_component_needs(pipeline_pods, rendered_secrets):
    assert set(pipeline_pods) == {"extract", "transform", "load", "backup"}
    host = "@cryptolake-postgresql.cryptolake-jobs.svc.cluster.local:5432/cryptolake"
    identity = {role: (f"cryptolake-{role}", f"test-{role}-secret-key") for role in pipeline_pods}
    expected = {
        "extract": {"CMC_API_KEY": "test-cmc-key"},  # no warehouse at all
        "transform": {},                           # no warehouse, no API key
        "load": {"WAREHOUSE_URL": f"postgresql+psycopg2://cryptolake_loader_user:test-loader-pw{host}"},
        "backup": {"WAREHOUSE_URL": f"postgresql+psycopg2://cryptolake_backup_user:test-backup-pw{host}"},
    }
    for role, pods in pipeline_pods.items():
        access_key, secret_key = identity[role]
        for got in pods:
            assert got == {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, **expected[role]}, role
    # and none of them is the store's admin identity or the database owner
    admin = rendered_secrets["cryptolake-admin"]
    for pods in pipeline_pods.values():
        for got in pods:
            assert admin["AWS_SECRET_ACCESS_KEY"] not in got.values() and admin["WAREHOUSE_URL"] not in got.values()


def test_the_spark_executors_never_get_the_api_key(pipeline_pods):
    for app in ("transform", "load"):
        assert pipeline_pods[app] and not [got for got in pipeline_pods[app] if "CMC_API_KEY" in got]


def test_the_chart_hands_the_admin_identity_and_the_owner_only_to_its_own_tasks(default_objects, rendered_secrets):
    admin = rendered_secrets["cryptolake-admin"]
    holders: dict[str, set[str]] = {"admin S3": set(), "owner URL": set(), "API key": set(), "every identity": set()}
    for obj, pod in pod_specs(default_objects):
        for container in containers(pod):
            got = received(container, rendered_secrets)
            where = f"{component(obj)}/{container['name']}"
            if admin["AWS_SECRET_ACCESS_KEY"] in got.values():
                holders["admin S3"].add(where)
            if admin["WAREHOUSE_URL"] in got.values():
                holders["owner URL"].add(where)
            if "CMC_API_KEY" in got:
                holders["API key"].add(where)
            if {f"test-{role}-secret-key" for role in WRITES} <= set(got.values()):
                holders["every identity"].add(where)
    assert holders == {
        "admin S3": {"bucket-init/bucket-init", "history-server/spark-events", "seaweedfs/s3-identities"},
        "owner URL": {"migrate/migrate"},
        "API key": set(),
        "every identity": {"seaweedfs/s3-identities"},  # the store itself, to declare them
    }
    history = one(default_objects, "Deployment", "cryptolake-history-server")
    (server,) = history["spec"]["template"]["spec"]["containers"]
    assert received(server, rendered_secrets) == {"AWS_ACCESS_KEY_ID": "cryptolake-history",
                                                  "AWS_SECRET_ACCESS_KEY": "test-history-secret-key"}
    # helm test checks the warehouse through the loader's login, which `cryptolake migrate` made
    test_pg = one(default_objects, "Pod", "cryptolake-test-postgresql")
    assert "cryptolake_loader_user" in received(test_pg["spec"]["containers"][0], rendered_secrets)["WAREHOUSE_URL"]


def test_airflow_writes_its_task_logs_where_its_identity_may_write():
    """Airflow's remote logging (charts/values/airflow.yaml) uses the store's airflow identity (kind-secrets.sh
    puts its keys in Airflow's connection), which may write there only."""
    values = yaml.safe_load((CHART.parents[0] / "values" / "airflow.yaml").read_text())
    folder = values["config"]["logging"]["remote_base_log_folder"]
    bucket = yaml.safe_load((CHART / "values.yaml").read_text())["objectStore"]["bucket"]
    assert folder == f"s3://{bucket}/{WRITES['airflow'][0]}" and WRITES["airflow"] == (AIRFLOW_LOGS,)


def test_minio_and_external_stores_fall_back_to_the_admin_keys_only_where_no_identity_is_given():
    """The chart cannot create identities in those stores: an identity left empty gets the admin keys, and
    NOTES.txt says so; one given is used."""
    from tests.chart.render import notes

    values = merge(PROFILE_SECRETS, {"objectStore": {"type": "minio", "identities": {
        role: {"secretAccessKey": ""} for role in ("transform", "history")}}})
    secrets_by_name = {o["metadata"]["name"]: o["stringData"] for o in find(render([], values), "Secret")}
    assert secrets_by_name["cryptolake-transform"]["AWS_SECRET_ACCESS_KEY"] == "test-secret-key-0123"
    assert secrets_by_name["cryptolake-extract"]["AWS_SECRET_ACCESS_KEY"] == "test-extract-secret-key"
    text = notes([], values)
    assert "WARNING: history, transform reach the object store with its admin identity" in text
    assert "admin identity" not in notes([], merge(PROFILE_SECRETS, {"objectStore": {"type": "minio"}}))


# -- rotation: a changed value rolls the pods that read it -------------------------------------------------------
def annotations(objects: list[dict]) -> dict[str, dict[str, str]]:
    return {obj["metadata"]["name"]: obj["spec"]["template"]["metadata"].get("annotations") or {}
            for obj in objects if obj["kind"] in ("Deployment", "StatefulSet")}


CHANGES = {
    # a changed value -> the servers that must restart to use it
    "history identity": ({"objectStore": {"identities": {"history": {"secretAccessKey": "rotated-1"}}}},
                         {"cryptolake-history-server", "cryptolake-seaweedfs"}),
    "extract identity": ({"objectStore": {"identities": {"extract": {"secretAccessKey": "rotated-2"}}}},
                         {"cryptolake-seaweedfs"}),
    "admin identity": ({"objectStore": {"secretAccessKey": "rotated-3"}},
                       {"cryptolake-seaweedfs", "cryptolake-history-server"}),
    "database password": ({"postgresql": {"auth": {"password": "rotated-4"}}}, {"cryptolake-postgresql"}),
    "API key": ({"secrets": {"cmcApiKey": "rotated-5"}}, set()),  # read per task: nothing long-running holds it
    "loader password": ({"secrets": {"warehouseLoaderPassword": "rotated-6"}}, set()),  # applied by migrate
    "History Server settings": ({"historyServer": {"updateInterval": "45s"}}, {"cryptolake-history-server"}),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_value_rolls_exactly_the_servers_that_read_it(default_objects, change):
    values, rolled = CHANGES[change]
    before, after = annotations(default_objects), annotations(render([], merge(PROFILE_SECRETS, values)))
    assert set(before) == {"cryptolake-history-server", "cryptolake-seaweedfs", "cryptolake-postgresql"}
    assert {name for name in before if before[name] != after[name]} == rolled


def test_minio_rolls_on_new_admin_keys():
    values = merge(PROFILE_SECRETS, {"objectStore": {"type": "minio"}})
    before = annotations(render([], values))["cryptolake-minio"]
    after = annotations(render([], merge(values, {"objectStore": {"secretAccessKey": "rotated"}})))
    assert before and after["cryptolake-minio"] != before


def test_with_your_own_secrets_no_checksum_pretends_to_track_them():
    """The chart never reads a Secret it did not make (no lookup): only what it renders is hashed, and the docs
    say to restart the servers after changing a Secret."""
    objects = render([], {"secrets": {"existingSecrets": True},
                          "postgresql": {"auth": {"existingSecret": "cryptolake-postgresql"}}})
    for name, found in annotations(objects).items():
        assert "checksum/s3-keys" not in found and "checksum/password" not in found, name
    docs = (CHART.parents[1] / "docs" / "kubernetes.md").read_text()
    section = docs[docs.index("## Rotating secrets"):]
    for server in ("statefulset/cryptolake-seaweedfs", "deployment/cryptolake-history-server",
                   "statefulset/cryptolake-postgresql"):
        assert f"kubectl -n cryptolake-jobs rollout restart {server}" in section


# -- the chart's SeaweedFS identities on the real binary ------------------------------------------------------------
def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_block() -> int:
    """A base port whose four HTTP ports and their gRPC twins can be bound (`weed server -s3`), below the
    kernel's ephemeral range so no client connection takes one meanwhile."""
    bases = list(range(20000, 22500, 5))
    random.shuffle(bases)
    for base in bases:
        if all(_bindable(p) and _bindable(p + GRPC_OFFSET) for p in range(base, base + 4)):
            return base
    raise RuntimeError("no free block of ports for a SeaweedFS server between 20000 and 22500")


def init_container_env(objects: list[dict], rendered_secrets: dict, name: str) -> dict[str, str]:
    """The environment the chart gives the SeaweedFS init container: ConfigMap and secretKeyRefs resolved."""
    store = one(objects, "StatefulSet", "cryptolake-seaweedfs")
    (init,) = [c for c in store["spec"]["template"]["spec"]["initContainers"] if c["name"] == name]
    env = dict(one(objects, "ConfigMap", init["envFrom"][0]["configMapRef"]["name"])["data"])
    env.update(received(init, rendered_secrets))
    return env


class Weed:
    """`weed server -s3` as the chart runs it, with the identities file the chart's init container writes."""

    def __init__(self, root: Path, config: Path):
        base = _free_block()
        self.endpoint = f"http://127.0.0.1:{base + 3}"
        self.log = root / "weed.log"
        (root / "data").mkdir()
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [find_weed(), "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                 f"-master.port={base}", f"-volume.port={base + 1}", f"-filer.port={base + 2}", "-s3",
                 f"-s3.port={base + 3}", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                 "-master.volumeSizeLimitMB=64", "-volume.max=0", "-master.telemetry=false"],
                stdout=out, stderr=subprocess.STDOUT, cwd=root)
        deadline = time.monotonic() + 60
        while not port_open(base + 3):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"weed did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def client(self, access_key: str, secret_key: str):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=access_key,
                            aws_secret_access_key=secret_key, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def store(default_objects, rendered_secrets):
    """The chart's identities on a real SeaweedFS, the bucket made by the chart's bucket-init (admin identity)."""
    root = Path(tempfile.mkdtemp(prefix="cryptolake-identities-"))
    weed = None
    try:
        env = init_container_env(default_objects, rendered_secrets, "s3-identities")
        made = subprocess.run([sys.executable, str(SCRIPT), "s3-config", str(root / "s3.json")], capture_output=True,
                              text=True, timeout=60, env={"PATH": os.environ["PATH"], **env})
        assert made.returncode == 0, made.stderr
        assert not [v for v in rendered_secrets["cryptolake-admin"].values() if v in made.stdout]  # no key printed
        assert oct((root / "s3.json").stat().st_mode & 0o777) == "0o600"
        weed = Weed(root, root / "s3.json")
        admin = rendered_secrets["cryptolake-admin"]
        bucket_init = subprocess.run(
            [sys.executable, str(SCRIPT), "bucket-init"], capture_output=True, text=True, timeout=300,
            env={"PATH": os.environ["PATH"], "LAKE_URI": env["LAKE_URI"], "AWS_ENDPOINT_URL": weed.endpoint,
                 "AWS_REGION": "us-east-1", "CHART_TASK_PAUSE_SECONDS": "1",
                 **{k: admin[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}})
        assert bucket_init.returncode == 0, bucket_init.stdout + bucket_init.stderr
        yield weed, env["LAKE_URI"].removeprefix("s3://")
    finally:
        if weed:
            weed.stop()
        shutil.rmtree(root, ignore_errors=True)


def keys_of(rendered_secrets: dict, role: str) -> tuple[str, str]:
    name = "cryptolake-admin" if role == "admin" else f"cryptolake-{role}"
    return rendered_secrets[name]["AWS_ACCESS_KEY_ID"], rendered_secrets[name]["AWS_SECRET_ACCESS_KEY"]


def _denied(call) -> bool:
    try:
        call()
    except ClientError as err:
        assert err.response["Error"]["Code"] == "AccessDenied", err.response["Error"]
        return True
    return False


@pytest.mark.parametrize("role", [*WRITES, "admin"])
def test_each_identity_writes_and_deletes_only_where_its_component_writes(store, rendered_secrets, role):
    weed, bucket = store
    client = weed.client(*keys_of(rendered_secrets, role))
    admin = weed.client(*keys_of(rendered_secrets, "admin"))
    places = sorted({prefix for prefixes in WRITES.values() for prefix in prefixes} | {"gold/other", "elsewhere"})
    for place in places:
        key = f"{place}/probe-{role}-{uuid.uuid4().hex}"
        allowed = role == "admin" or any(place == p or place.startswith(f"{p}/") for p in WRITES[role])
        assert _denied(lambda: client.put_object(Bucket=bucket, Key=key, Body=b"x", IfNoneMatch="*")) is not allowed, \
            (role, place)
        admin.put_object(Bucket=bucket, Key=f"{key}-theirs", Body=b"x")
        # reads stay bucket-wide: the steps read across layers, the clients probe the bucket
        assert client.get_object(Bucket=bucket, Key=f"{key}-theirs")["Body"].read() == b"x"
        assert _denied(lambda: client.delete_object(Bucket=bucket, Key=f"{key}-theirs")) is not allowed, (role, place)
        admin.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}, {"Key": f"{key}-theirs"}]})
    client.head_bucket(Bucket=bucket)
    assert client.list_objects_v2(Bucket=bucket, Prefix="bronze/")["KeyCount"] >= 0
    assert _denied(lambda: client.create_bucket(Bucket=f"other-{role}")) is (role != "admin")


def test_the_extract_identity_writes_bronze_but_not_silver(store, rendered_secrets):
    weed, bucket = store
    extract = weed.client(*keys_of(rendered_secrets, "extract"))
    extract.put_object(Bucket=bucket, Key="bronze/probe/x.parquet", Body=b"x")
    extract.delete_object(Bucket=bucket, Key="bronze/probe/x.parquet")
    assert _denied(lambda: extract.put_object(Bucket=bucket, Key="silver/probe/x.parquet", Body=b"x"))
    assert _denied(lambda: extract.put_object(Bucket=bucket, Key="bronzed/x", Body=b"x"))  # a prefix, not a stem
    assert _denied(lambda: extract.copy_object(Bucket=bucket, Key="silver/probe/copy",
                                               CopySource=f"{bucket}/spark-events/.keep"))
    refused = weed.client(keys_of(rendered_secrets, "extract")[0], "not-the-secret-key")
    with pytest.raises(ClientError):
        refused.head_bucket(Bucket=bucket)


def test_helm_tests_s3_check_passes_with_the_history_identity(store, rendered_secrets):
    weed, bucket = store
    access_key, secret_key = keys_of(rendered_secrets, "history")
    checked = subprocess.run([sys.executable, str(SCRIPT), "check-s3"], capture_output=True, text=True, timeout=120,
                             env={"PATH": os.environ["PATH"], "LAKE_URI": f"s3://{bucket}", "AWS_REGION": "us-east-1",
                                  "AWS_ENDPOINT_URL": weed.endpoint, "AWS_ACCESS_KEY_ID": access_key,
                                  "AWS_SECRET_ACCESS_KEY": secret_key, "CHART_TASK_ATTEMPTS": "2"})
    assert checked.returncode == 0, checked.stderr


def test_the_identities_file_refuses_a_missing_key_or_a_shared_identity(tmp_path):
    base = {"PATH": os.environ["PATH"], "LAKE_URI": "s3://lake"}
    for role in [*WRITES, "admin"]:
        base[f"S3_IDENTITY_{role.upper()}_AWS_ACCESS_KEY_ID"] = f"id-{role}"
        base[f"S3_IDENTITY_{role.upper()}_AWS_SECRET_ACCESS_KEY"] = f"key-{role}"

    def run(env):
        return subprocess.run([sys.executable, str(SCRIPT), "s3-config", str(tmp_path / "s3.json")],
                              capture_output=True, text=True, timeout=60, env=env)

    missing = run({k: v for k, v in base.items() if k != "S3_IDENTITY_LOAD_AWS_SECRET_ACCESS_KEY"})
    assert missing.returncode != 0 and "the load Secret lacks" in missing.stderr
    shared = run({**base, "S3_IDENTITY_LOAD_AWS_ACCESS_KEY_ID": "id-admin"})
    assert shared.returncode != 0 and "the admin and load Secrets hold the same AWS_ACCESS_KEY_ID" in shared.stderr
    made = run(base)
    assert made.returncode == 0, made.stderr
    config = json.loads((tmp_path / "s3.json").read_text())
    assert {i["name"]: i["actions"] for i in config["identities"]}["extract"] == [
        "Read:lake", "List:lake", "Write:lake/bronze/*", "Write:lake/_meta/extract/*"]


# -- the pipeline's steps on their own identities and warehouse logins ---------------------------------------------
def step_env(weed, bucket: str, rendered_secrets: dict, role: str, **extra: str) -> dict[str, str]:
    access_key, secret_key = keys_of(rendered_secrets, role)
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WAREHOUSE_", "CMC_", "LAKE_"))},
            "LAKE_URI": f"s3://{bucket}", "AWS_ENDPOINT_URL": weed.endpoint, "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key, "SPARK_LOCAL_IP": "127.0.0.1",
            **extra}


@pytest.fixture(scope="module")
def extracted(store, rendered_secrets, tmp_path_factory):
    """`cryptolake extract --group 10x` on the extract identity against a sandbox, with no warehouse URL."""
    weed, bucket = store
    api_key = f"creds-{secrets.token_hex(8)}"
    sandbox, url, _ = launch("--seed", "7", "--coins", "80", "--exchanges", "12", "--categories", "19",
                             "--api-key", api_key, log_dir=tmp_path_factory.mktemp("sandbox"))
    try:
        done = subprocess.run([CLI, "--log-json", "extract", "--group", "10x"], capture_output=True, text=True,
                              timeout=600, env=step_env(weed, bucket, rendered_secrets, "extract",
                                                        CMC_BASE_URL=url, CMC_API_KEY=api_key,
                                                        CMC_RATE_LIMIT="100000"))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    return done


def ledger_statuses(weed, bucket: str, rendered_secrets: dict, step: str) -> dict[str, str]:
    client = weed.client(*keys_of(rendered_secrets, "admin"))
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"_meta/{step}/"):
        for item in page.get("Contents", []):
            record = json.loads(client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            found[record["name"]] = record["status"]
    return found


def test_the_extractors_run_on_their_identity_without_a_warehouse(store, rendered_secrets, extracted):
    weed, bucket = store
    assert extracted.returncode == 0, extracted.stderr[-3000:]
    statuses = ledger_statuses(weed, bucket, rendered_secrets, "extract")
    assert statuses and set(statuses.values()) == {"success"}, statuses


@pytest.mark.spark
@pytest.mark.timeout(1800)
def test_transform_load_and_backup_run_on_their_identities_and_logins(store, rendered_secrets, extracted, stack_env):
    """The proof that lake.WRITES and the logins' grants are enough: each step as its pod would run it."""
    from tests.warehouse.conftest import fresh_database

    weed, bucket = store
    assert extracted.returncode == 0, extracted.stderr[-3000:]
    logins = {"load": ("cryptolake_loader_user", secrets.token_hex(12)),
              "backup": ("cryptolake_backup_user", secrets.token_hex(12))}
    with fresh_database(stack_env["WAREHOUSE_URL"]) as owner_url:
        migrated = subprocess.run([CLI, "migrate"], capture_output=True, text=True, timeout=300, env={
            **os.environ, "WAREHOUSE_URL": owner_url, "WAREHOUSE_LOADER_PASSWORD": logins["load"][1],
            "WAREHOUSE_BACKUP_PASSWORD": logins["backup"][1]})
        assert migrated.returncode == 0, migrated.stderr[-3000:]

        def login(role: str) -> str:
            user, password = logins[role]
            return make_url(owner_url).set(username=user, password=password).render_as_string(hide_password=False)

        runs = {}
        for role, argv, extra in (("transform", ["transform", "--group", "10x"], {}),
                                  ("load", ["load", "--group", "10x"], {"WAREHOUSE_URL": login("load")}),
                                  ("backup", ["backup"], {"WAREHOUSE_URL": login("backup")})):
            runs[role] = subprocess.run([CLI, "--log-json", *argv], capture_output=True, text=True, timeout=1200,
                                        env=step_env(weed, bucket, rendered_secrets, role, **extra))
            assert runs[role].returncode == 0, f"{role}: {runs[role].stderr[-4000:]}"
        engine = create_engine(owner_url)
        try:
            with engine.connect() as connection:
                loaded = connection.execute(text("SELECT count(*) FROM dw.fact_global_market")).scalar()
                mirrored = connection.execute(text("SELECT count(*) FROM meta.runs")).scalar()
        finally:
            engine.dispose()
    assert loaded > 0 and mirrored > 0
    for step in ("transform", "load"):
        statuses = ledger_statuses(weed, bucket, rendered_secrets, step)
        assert statuses and set(statuses.values()) <= {"success", "skipped"}, (step, statuses)
    backup_id = runs["backup"].stdout.strip().splitlines()[-1]
    admin = weed.client(*keys_of(rendered_secrets, "admin"))
    assert admin.head_object(Bucket=bucket, Key=f"gold/backups/{backup_id}/manifest.json")
    events = admin.list_objects_v2(Bucket=bucket, Prefix="spark-events/")["KeyCount"]
    assert events > 1  # both Spark apps logged their events beside .keep


# -- PostgreSQL: a rotated password takes effect -------------------------------------------------------------------
@pytest.fixture
def cluster(tmp_path):
    """A fresh PostgreSQL data directory (the chart's PGDATA), initialised with a first password."""
    from cryptolake.local.postgres import _server_user, find_bindir

    bindir = find_bindir()
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="cryptolake-pgpass-"))
    root.chmod(0o755)
    ids = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    if user:
        os.chown(root, user.pw_uid, user.pw_gid)
    first = secrets.token_hex(8)
    (root / "pw").write_text(first)
    if user:
        os.chown(root / "pw", user.pw_uid, user.pw_gid)
    subprocess.run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", OWNER, f"--pwfile={root / 'pw'}",
                    "--auth=scram-sha-256"], check=True, capture_output=True, timeout=120, **ids)
    (root / "pw").unlink()
    try:
        yield {"root": root, "bindir": bindir, "ids": ids, "first": first}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def password_step(cluster: dict, password: str, user: str = OWNER) -> subprocess.CompletedProcess:
    """The chart's init container: the script with the image's environment (the postgres binaries on PATH)."""
    return subprocess.run(
        ["sh", str(PASSWORD_STEP)], capture_output=True, text=True, timeout=120, cwd=cluster["root"],
        env={"PATH": f"{cluster['bindir']}:/usr/bin:/bin", "PGDATA": str(cluster["root"] / "data"),
             "POSTGRES_USER": user, "POSTGRES_DB": "postgres", "POSTGRES_PASSWORD": password}, **cluster["ids"])


def serve(cluster: dict):
    """Start the server on a free port (TCP, scram); returns (port, stop)."""
    port = free_port()
    log = cluster["root"] / "server.log"
    subprocess.run([str(cluster["bindir"] / "pg_ctl"), "-D", str(cluster["root"] / "data"), "-l", str(log), "-w",
                    "-o", f"-p {port} -k {cluster['root']} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True, timeout=120, **cluster["ids"])

    def stop():
        subprocess.run([str(cluster["bindir"] / "pg_ctl"), "-D", str(cluster["root"] / "data"), "-m", "fast", "-w",
                        "stop"], check=True, capture_output=True, timeout=120, **cluster["ids"])
    return port, stop


def connects(port: int, password: str) -> bool:
    engine = create_engine(f"postgresql+psycopg2://{OWNER}:{password}@127.0.0.1:{port}/postgres")
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT 1")).scalar() == 1
    except OperationalError as exc:
        assert "password authentication failed" in str(exc.orig)
        return False
    finally:
        engine.dispose()


def test_the_password_step_applies_a_rotated_password_at_the_next_start(cluster):
    port, stop = serve(cluster)
    try:
        assert connects(port, cluster["first"])
    finally:
        stop()
    rotated = f"new'{secrets.token_hex(8)}\"pw"  # quotes must not break (or leak from) the statement
    done = password_step(cluster, rotated)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"password of {OWNER} set from its Secret"
    port, stop = serve(cluster)
    try:
        assert connects(port, rotated) and not connects(port, cluster["first"])
    finally:
        stop()
    server_log = (cluster["root"] / "server.log").read_text()
    assert rotated not in done.stdout + done.stderr + server_log


def test_the_password_step_fails_the_start_on_an_error_without_showing_the_password(cluster):
    password = secrets.token_hex(8)
    done = password_step(cluster, password, user="nobody_here")
    assert done.returncode != 0 and 'role "nobody_here" does not exist' in done.stderr
    assert password not in done.stdout + done.stderr


def test_the_password_step_leaves_a_first_start_to_the_image(tmp_path):
    done = subprocess.run(["sh", str(PASSWORD_STEP)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PGDATA": str(tmp_path / "empty"), "POSTGRES_USER": OWNER,
                               "POSTGRES_DB": "postgres", "POSTGRES_PASSWORD": "x"})
    assert done.returncode == 0 and "first start sets the password" in done.stdout


def test_the_postgresql_pod_runs_the_password_step_before_the_server(default_objects):
    server = one(default_objects, "StatefulSet", "cryptolake-postgresql")
    pod = server["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (main,) = pod["containers"]
    assert init["image"] == main["image"] and init["command"] == ["sh", "/opt/cryptolake-chart/postgresql-password.sh"]
    assert init["env"] == main["env"]  # the same user, database, PGDATA and password as the server
    data = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}["data"]
    assert {m["name"]: m["mountPath"] for m in init["volumeMounts"]}["data"] == data
    scripts = one(default_objects, "ConfigMap", "cryptolake-scripts")["data"]
    assert scripts["postgresql-password.sh"] == PASSWORD_STEP.read_text()
