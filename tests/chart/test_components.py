"""Per component, what the chart renders (in the manner of the airflow chart's tests)."""

from __future__ import annotations

import configparser
import re
from urllib.parse import urlsplit

import pytest

from cryptolake.settings import SETTINGS
from tests.chart.conftest import PROFILES
from tests.chart.objects import component, containers, find, one, pod_specs
from tests.chart.render import CHART, PROFILE_SECRETS, merge, notes, render

NAMESPACE = "cryptolake-jobs"
WRITABLE_VOLUMES = {"emptyDir", "persistentVolumeClaim"}
SAFE_VOLUMES = {"emptyDir", "persistentVolumeClaim", "configMap", "secret", "projected"}
SETTING_NAMES = {v.env for v in SETTINGS}


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


# -- hardening ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", PROFILES)
def test_every_pod_runs_restricted_with_a_read_only_root_and_resources(renders, profile):
    pods = list(pod_specs(renders[profile]))
    assert len(pods) >= 6
    for obj, pod in pods:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, where
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert security.get("runAsUser", 1) != 0, where
        assert pod["automountServiceAccountToken"] is False, where
        assert "hostNetwork" not in pod and "hostPID" not in pod, where
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            assert set(volume) - {"name"} <= SAFE_VOLUMES, where
        claims = {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
        for container in containers(pod):
            what = f"{where} container {container['name']}"
            assert container["securityContext"] == {
                "runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}, what
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"], what
            assert resources["limits"]["memory"], what
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]["name"]], what
            for mount in mounts.values():
                if mount["name"] in claims:
                    continue
                volume = volumes[mount["name"]]
                if not set(volume) & WRITABLE_VOLUMES:
                    assert mount.get("readOnly") is True, f"{what} mounts {mount['name']} writable"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_object_carries_the_standard_labels(renders, profile):
    assert renders[profile]
    for obj in renders[profile]:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "cryptolake"
        assert labels["app.kubernetes.io/instance"] == "cryptolake"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/component"]
        assert labels["helm.sh/chart"] == "cryptolake-0.1.0"
        if obj["kind"] in ("Deployment", "StatefulSet"):
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()


def test_every_object_but_the_pipeline_spec_is_in_the_jobs_namespace(renders):
    assert renders["default"]
    for obj in renders["default"]:
        expected = "airflow" if obj["metadata"]["name"] == "cryptolake-pipeline-spec" else NAMESPACE
        assert obj["metadata"]["namespace"] == expected, obj["metadata"]["name"]


# -- network policies ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", PROFILES)
def test_network_policies_deny_by_default_then_allow_what_the_pipeline_needs(renders, profile):
    policies = find(renders[profile], "NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]
            and "egress" not in p["spec"]]
    assert len(deny) == 1 and sorted(deny[0]["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    ingress = {tuple(sorted(p["spec"]["podSelector"].get("matchLabels", {}).items())): p for p in policies
               if "ingress" in p["spec"]}
    store = {"default": ("seaweedfs", 8333), "kind": ("seaweedfs", 8333), "minio": ("minio", 9000)}.get(profile)
    components = {dict(k).get("app.kubernetes.io/component"): p for k, p in ingress.items()}
    if store:
        rule = components[store[0]]["spec"]["ingress"]
        # the namespace's pods, and Airflow's: its task logs go to the lake's bucket
        airflow = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "airflow"}}}
        assert rule == [{"from": [{"podSelector": {}}, airflow], "ports": [{"protocol": "TCP", "port": store[1]}]}]
    if profile != "cloud":
        (rule,) = components["postgresql"]["spec"]["ingress"]
        assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "airflow"}}} in rule["from"]
        assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    else:
        assert "postgresql" not in components
        external = one(renders[profile], "NetworkPolicy", "cryptolake-allow-external-services")
        assert external["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443},
                                                           {"protocol": "TCP", "port": 5432}]
    egress = [p for p in policies if "egress" in p["spec"]]
    dns = [p for p in egress if any(port.get("port") == 53 for rule in p["spec"]["egress"]
                                    for port in rule.get("ports", []))]
    assert dns and dns[0]["spec"]["podSelector"] == {}
    # the extractor pods of the DAGs (component extract) may reach the API; Spark drivers the API server
    selectors = [p["spec"]["podSelector"].get("matchLabels") for p in egress]
    assert {"app.kubernetes.io/component": "extract"} in selectors and {"spark-role": "driver"} in selectors


def extract_egress_rules(objects: list[dict]) -> list[dict]:
    """Every egress rule of the policies that select the extractor pods (component extract)."""
    return [rule for p in find(objects, "NetworkPolicy") if "egress" in p["spec"]
            and p["spec"]["podSelector"].get("matchLabels") == {"app.kubernetes.io/component": "extract"}
            for rule in p["spec"]["egress"]]


def reaches(rules: list[dict], namespace: str, port: int) -> bool:
    """Whether a rule lets the extractors open TCP `port` to pods of `namespace` (by its metadata.name label)."""
    return any({"protocol": "TCP", "port": port} in rule.get("ports", [])
               and any(peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                       == namespace for peer in rule["to"])
               for rule in rules)


def test_kind_lets_the_extractors_reach_the_in_cluster_sandbox_and_the_default_does_not(renders):
    """The e2e harness serves the CMC sandbox in cmc-sandbox:18080; the ipBlock rule for the real API (443) does not
    cover it, so the kind profile adds a rule by namespace (and the sandbox's pod labels); no other profile has it."""
    kind = extract_egress_rules(renders["kind"])
    assert reaches(kind, "cmc-sandbox", 18080)
    (rule,) = [r for r in kind if reaches([r], "cmc-sandbox", 18080)]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cmc-sandbox"}},
                           "podSelector": {"matchLabels": {"app.kubernetes.io/name": "cmc-sandbox"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 18080}]
    for profile in ("default", "cloud", "minio"):
        rules = extract_egress_rules(renders[profile])
        assert rules and not reaches(rules, "cmc-sandbox", 18080), profile
        assert all("ipBlock" in peer for rule in rules for peer in rule["to"]), profile
        assert all(port["port"] != 18080 for rule in rules for port in rule["ports"]), profile
    # the API rule stays as it was on kind too
    assert {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]} in kind


def test_extract_egress_without_pod_labels_selects_the_whole_namespace():
    objects = render([], merge(PROFILE_SECRETS, {"networkPolicy": {"extractEgress": [
        {"namespace": "apis", "ports": [8080, 8443]}]}}))
    rules = extract_egress_rules(objects)
    assert {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apis"}}}],
            "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 8443}]} in rules


def test_network_policies_can_be_switched_off():
    objects = render([], merge(PROFILE_SECRETS, {"networkPolicy": {"enabled": False}}))
    assert find(objects, "NetworkPolicy") == []


# -- secrets and settings ----------------------------------------------------------------------------------
def test_no_template_generates_a_random_or_looked_up_value():
    forbidden = re.compile(r"\b(rand\w*|genPrivateKey|genCA|genSelfSignedCert|genSignedCert|uuidv4|lookup|"
                           r"derivePassword|htpasswd)\b")
    templates = [t for t in (CHART / "templates").rglob("*") if t.is_file()]
    assert templates
    for template in templates:
        assert not forbidden.search(template.read_text()), template


COMPONENT_SECRETS = ["cryptolake-extract", "cryptolake-transform", "cryptolake-load", "cryptolake-backup",
                     "cryptolake-history", "cryptolake-airflow", "cryptolake-admin"]


@pytest.mark.parametrize("profile", ["default", "kind", "minio"])
def test_the_secrets_hold_exactly_the_given_values(renders, profile):
    """One Secret per component (tests/chart/test_credentials.py checks who gets what)."""
    secrets = {o["metadata"]["name"]: o["stringData"] for o in find(renders[profile], "Secret")}
    assert list(secrets) == [*COMPONENT_SECRETS, "cryptolake-postgresql"]
    host = "cryptolake-postgresql.cryptolake-jobs.svc.cluster.local:5432/cryptolake"
    assert secrets["cryptolake-admin"] == {
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key-0123",
        "WAREHOUSE_URL": f"postgresql+psycopg2://cryptolake:test-warehouse-pw@{host}",
        "WAREHOUSE_LOADER_PASSWORD": "test-loader-pw",
        "WAREHOUSE_BACKUP_PASSWORD": "test-backup-pw",
    }
    assert secrets["cryptolake-extract"] == {"AWS_ACCESS_KEY_ID": "cryptolake-extract",
                                             "AWS_SECRET_ACCESS_KEY": "test-extract-secret-key",
                                             "CMC_API_KEY": "test-cmc-key"}
    logins = {"load": "cryptolake_loader_user:test-loader-pw", "backup": "cryptolake_backup_user:test-backup-pw"}
    for role, login in logins.items():
        assert secrets[f"cryptolake-{role}"]["WAREHOUSE_URL"] == f"postgresql+psycopg2://{login}@{host}"
    for data in secrets.values():
        assert set(data) <= SETTING_NAMES | {"password"}
    assert secrets["cryptolake-postgresql"] == {"password": "test-warehouse-pw"}


def test_the_optional_analyst_password_joins_the_admin_secret():
    objects = render([], merge(PROFILE_SECRETS, {"secrets": {"warehouseAnalystPassword": "a-pw"}}))
    data = one(objects, "Secret", "cryptolake-admin")["stringData"]
    assert data["WAREHOUSE_ANALYST_PASSWORD"] == "a-pw" and set(data) <= SETTING_NAMES


def test_existing_secrets_switch_the_chart_secrets_off_and_are_referenced(renders):
    cloud = renders["cloud"]
    assert find(cloud, "Secret") == []
    objects = render([], {"secrets": {"existingSecrets": True},
                          "postgresql": {"auth": {"existingSecret": "my-pg", "passwordKey": "pw"}}})
    assert find(objects, "Secret") == []
    (pg,) = [c for o, p in pod_specs(objects) if component(o) == "postgresql" for c in p["containers"]]
    assert env_of(pg)["POSTGRES_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "my-pg", "key": "pw"}}
    cloud_pods = list(pod_specs(cloud))
    assert cloud_pods
    for obj, pod in cloud_pods:
        for container in containers(pod):
            refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})]
            refs += [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
            assert set(refs) <= set(COMPONENT_SECRETS), obj["metadata"]["name"]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_settings_config_map_holds_real_non_secret_settings(renders, profile):
    data = one(renders[profile], "ConfigMap", "cryptolake-config")["data"]
    secret_settings = {v.env for v in SETTINGS if v.secret} | {"AWS_ACCESS_KEY_ID"}
    assert set(data) <= SETTING_NAMES - secret_settings
    assert data["LAKE_URI"] == ("s3://my-cryptolake-lake" if profile == "cloud" else "s3://cryptolake")
    assert data["CMC_BASE_URL"] == "https://pro-api.coinmarketcap.com"
    assert data["LAKE_CONDITIONAL_WRITES"] == "true"
    endpoint = {"default": "http://cryptolake-seaweedfs.cryptolake-jobs.svc.cluster.local:8333",
                "kind": "http://cryptolake-seaweedfs.cryptolake-jobs.svc.cluster.local:8333",
                "node": "http://cryptolake-seaweedfs.cryptolake-jobs.svc.cluster.local:8333",
                "minio": "http://cryptolake-minio.cryptolake-jobs.svc.cluster.local:9000"}.get(profile)
    assert data.get("AWS_ENDPOINT_URL") == endpoint
    assert data["AWS_REGION"] == ("eu-west-1" if profile == "cloud" else "us-east-1")
    if endpoint:  # the URL names the object store's Service and port
        parts = urlsplit(endpoint)
        service = one(renders[profile], "Service", parts.hostname.split(".")[0])
        assert service["spec"]["ports"][0]["port"] == parts.port


def test_config_env_adds_settings():
    objects = render([], merge(PROFILE_SECRETS, {"config": {"env": {"CMC_MONTHLY_CREDITS": 50000}}}))
    assert one(objects, "ConfigMap", "cryptolake-config")["data"]["CMC_MONTHLY_CREDITS"] == "50000"


# -- object store ------------------------------------------------------------------------------------------
def images_of(objects: list[dict]) -> set[str]:
    return {c["image"] for _, pod in pod_specs(objects) for c in containers(pod)}


def test_seaweedfs_is_the_default_store_pinned_and_keyed_from_the_secrets(renders):
    store = one(renders["default"], "StatefulSet", "cryptolake-seaweedfs")
    (container,) = store["spec"]["template"]["spec"]["containers"]
    repository, tag = container["image"].rsplit(":", 1)
    assert repository == "chrislusf/seaweedfs" and re.fullmatch(r"\d+\.\d+", tag)
    assert container["args"][:2] == ["-logtostderr=true", "server"] and "-s3" in container["args"] and "-s3.port=8333" in container["args"]
    assert "-dir=/data" in container["args"] and container["workingDir"] == "/data"
    # its identities: a file its init container writes from the components' Secrets (test_credentials.py)
    assert "-s3.config=/etc/seaweedfs/s3.json" in container["args"]
    assert not [e for e in container["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]
    assert store["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert find(renders["default"], "StatefulSet", "cryptolake-minio") == []


def test_minio_is_the_pinned_last_release_and_warned_about(renders):
    store = one(renders["minio"], "StatefulSet", "cryptolake-minio")
    (container,) = store["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"quay\.io/minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", container["image"])
    env = env_of(container)
    assert env["MINIO_ROOT_USER"]["valueFrom"]["secretKeyRef"] == {"name": "cryptolake-admin",
                                                                    "key": "AWS_ACCESS_KEY_ID"}
    assert env["MINIO_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "cryptolake-admin",
                                                                        "key": "AWS_SECRET_ACCESS_KEY"}
    assert find(renders["minio"], "StatefulSet", "cryptolake-seaweedfs") == []
    files, values = PROFILES["minio"]
    assert "unmaintained" in notes(files, values)


def test_an_external_store_runs_no_server_and_its_endpoint_reaches_the_settings(renders):
    assert not [o for o in renders["cloud"] if component(o) in ("seaweedfs", "minio")]
    objects = render([], merge(PROFILE_SECRETS, {"objectStore": {
        "type": "external", "external": {"endpoint": "https://s3.example.net:9443"}}}))
    assert one(objects, "ConfigMap", "cryptolake-config")["data"]["AWS_ENDPOINT_URL"] == "https://s3.example.net:9443"
    policy = one(objects, "NetworkPolicy", "cryptolake-allow-external-services")
    assert policy["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 9443}]


# -- PostgreSQL --------------------------------------------------------------------------------------------
def test_postgresql_runs_the_official_image_with_pgdata_in_a_subdirectory_and_pg_isready(renders):
    server = one(renders["default"], "StatefulSet", "cryptolake-postgresql")
    pod = server["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    repository, tag = container["image"].split(":")
    assert repository == "postgres" and re.fullmatch(r"\d+\.\d+", tag)
    env = env_of(container)
    data_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data")
    assert env["PGDATA"]["value"].startswith(data_mount + "/") and env["PGDATA"]["value"] != data_mount
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "cryptolake-postgresql", "key": "password"}
    assert env["POSTGRES_USER"]["value"] == "cryptolake" and env["POSTGRES_DB"]["value"] == "cryptolake"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][0] == "pg_isready"
    assert "/var/run/postgresql" in {m["mountPath"] for m in container["volumeMounts"]}
    assert pod["securityContext"]["runAsUser"] == 999 and pod["securityContext"]["fsGroup"] == 999
    service = one(renders["default"], "Service", "cryptolake-postgresql")
    assert service["spec"]["ports"][0]["port"] == 5432


def test_kind_creates_airflows_database_on_first_start(renders):
    init = one(renders["kind"], "ConfigMap", "cryptolake-postgresql-initdb")
    assert init["data"]["10-extra-databases.sql"].strip() == 'CREATE DATABASE "airflow" OWNER "cryptolake";'
    assert find(renders["default"], "ConfigMap", "cryptolake-postgresql-initdb") == []


def test_an_external_database_runs_no_server(renders):
    assert not [o for o in renders["cloud"] if component(o) == "postgresql"]
    objects = render([], merge(PROFILE_SECRETS, {"postgresql": {"enabled": False,
                                                                "external": {"host": "db.example.net", "port": 6432}}}))
    url = one(objects, "Secret", "cryptolake-admin")["stringData"]["WAREHOUSE_URL"]
    assert url == "postgresql+psycopg2://cryptolake:test-warehouse-pw@db.example.net:6432/cryptolake"
    url = one(objects, "Secret", "cryptolake-load")["stringData"]["WAREHOUSE_URL"]
    assert url == "postgresql+psycopg2://cryptolake_loader_user:test-loader-pw@db.example.net:6432/cryptolake"
    assert not [o for o in objects if component(o) == "postgresql"]


# -- hooks and tests ---------------------------------------------------------------------------------------
def test_bucket_init_and_migrate_are_post_install_and_upgrade_hooks(renders, spec):
    images = spec.kubernetes.images
    bucket_init = one(renders["default"], "Job", "cryptolake-bucket-init")
    migrate = one(renders["default"], "Job", "cryptolake-migrate")
    for job in (bucket_init, migrate):
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"configMapRef": {"name": "cryptolake-config"}}]
        assert {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]} == {"cryptolake-admin"}
    assert int(bucket_init["metadata"]["annotations"]["helm.sh/hook-weight"]) < \
        int(migrate["metadata"]["annotations"]["helm.sh/hook-weight"])
    (container,) = migrate["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["cryptolake", "migrate"] and container["image"] == images["spark"]
    (container,) = bucket_init["spec"]["template"]["spec"]["containers"]
    assert container["image"] == images["extract"]
    assert container["command"] == ["python3", "/opt/cryptolake-chart/chart_tasks.py", "bucket-init"]


def test_helm_test_pods_check_s3_postgresql_and_the_history_server(renders):
    tests = {component(o): o for o in find(renders["default"], "Pod")}
    assert set(tests) == {"test"} and len(find(renders["default"], "Pod")) == 3
    checks = {}
    for pod in find(renders["default"], "Pod"):
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert pod["spec"]["restartPolicy"] == "Never"
        (container,) = pod["spec"]["containers"]
        checks[container["command"][2]] = container["command"][3:]
    assert checks == {"check-s3": [], "check-postgresql": [],
                      "check-history": ["http://cryptolake-history-server:18080"]}
    without = render([], merge(PROFILE_SECRETS, {"historyServer": {"enabled": False}}))
    assert len(find(without, "Pod")) == 2 and find(without, "Deployment") == []


# -- History Server ----------------------------------------------------------------------------------------
def history_conf(objects: list[dict]) -> dict[str, str]:
    text = one(objects, "ConfigMap", "cryptolake-history-server")["data"]["spark-defaults.conf"]
    return dict(line.split(" ", 1) for line in text.strip().splitlines())


@pytest.mark.parametrize("profile", PROFILES)
def test_the_history_server_reads_the_lakes_spark_events_with_s3a(renders, profile, spec):
    objects = renders[profile]
    config = one(objects, "ConfigMap", "cryptolake-config")["data"]
    bucket = urlsplit(config["LAKE_URI"]).netloc
    conf = history_conf(objects)
    assert conf["spark.history.fs.logDirectory"] == f"s3a://{bucket}/spark-events"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == config["AWS_REGION"]
    assert conf.get("spark.hadoop.fs.s3a.endpoint") == config.get("AWS_ENDPOINT_URL")
    if "AWS_ENDPOINT_URL" in config:
        assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
        assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert not any("secret" in key.lower() or "access.key" in key.lower() for key in conf)
    deployment = one(objects, "Deployment", "cryptolake-history-server")
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["image"] == spec.kubernetes.images["spark"]
    assert server["command"] == ["/opt/spark/bin/spark-class", "org.apache.spark.deploy.history.HistoryServer"]
    assert server["ports"] == [{"name": "http", "containerPort": 18080}]
    env = env_of(server)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "cryptolake-history", "key": key}
    conf_dir = env["SPARK_CONF_DIR"]["value"]
    assert any(m["mountPath"] == conf_dir for m in server["volumeMounts"])
    assert pod["securityContext"]["runAsUser"] == 185
    (init,) = pod["initContainers"]  # makes spark-events/ before the server starts
    assert init["command"][-1] == "bucket-init"
    service = one(objects, "Service", "cryptolake-history-server")
    assert service["spec"]["ports"][0]["port"] == 18080


def test_the_history_server_follows_the_bucket_and_an_https_endpoint():
    objects = render([], merge(PROFILE_SECRETS, {"objectStore": {
        "type": "external", "bucket": "other-lake", "external": {"endpoint": "https://s3.example.net"}}}))
    conf = history_conf(objects)
    assert conf["spark.history.fs.logDirectory"] == "s3a://other-lake/spark-events"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"


# -- RBAC --------------------------------------------------------------------------------------------------
def test_airflow_workers_may_run_pods_and_spark_applications_in_the_jobs_namespace_only(renders):
    objects = renders["default"]
    assert find(objects, "ClusterRole") == [] and find(objects, "ClusterRoleBinding") == []
    role = one(objects, "Role", "cryptolake-airflow-worker")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "watch", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]},
        # KubernetesPodOperator reads a starting pod's events (Pending, image and scheduling reasons)
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["sparkoperator.k8s.io"], "resources": ["sparkapplications"],
         "verbs": ["create", "get", "list", "watch", "patch", "delete"]},
        {"apiGroups": ["sparkoperator.k8s.io"], "resources": ["sparkapplications/status"], "verbs": ["get"]},
    ]
    binding = one(objects, "RoleBinding", "cryptolake-airflow-worker")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "cryptolake-airflow-worker"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "airflow-worker", "namespace": "airflow"}]


def test_spark_drivers_may_manage_executor_pods_services_and_configmaps(renders, spec):
    objects = renders["default"]
    account = spec.kubernetes.spark_service_account
    one(objects, "ServiceAccount", account)
    role = one(objects, "Role", "cryptolake-spark-driver")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods", "services", "configmaps"],
                              "verbs": ["create", "get", "list", "watch", "update", "patch", "delete",
                                        "deletecollection"]}]
    binding = one(objects, "RoleBinding", "cryptolake-spark-driver")
    assert binding["roleRef"]["name"] == "cryptolake-spark-driver"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
    roles = {r["metadata"]["name"] for r in find(objects, "Role")}
    assert roles == {"cryptolake-spark-driver", "cryptolake-airflow-worker"}
    chart_account = one(objects, "ServiceAccount", "cryptolake")
    assert chart_account["automountServiceAccountToken"] is False
    bound = {s["name"] for b in find(objects, "RoleBinding") for s in b["subjects"]}
    assert "cryptolake" not in bound  # the chart's own pods get no API rights


# -- NOTES -------------------------------------------------------------------------------------------------
def test_notes_say_where_things_are_and_how_to_check_them():
    files, values = PROFILES["kind"]
    text = notes(files, values)
    assert "helm test cryptolake -n cryptolake-jobs" in text
    assert "s3a://cryptolake/spark-events" in text
    assert "port-forward svc/cryptolake-history-server 18080:18080" in text
    assert "unmaintained" not in text
