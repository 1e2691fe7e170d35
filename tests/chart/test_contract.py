"""The chart's values agree with the pipeline spec, the DAGs and the manifests; bad values are refused clearly."""

from __future__ import annotations

import yaml
import pytest

from tests.chart.objects import containers, find, one, pod_specs
from tests.chart.render import CHART, PROFILE_SECRETS, REPO, merge, render

AIRFLOW_VALUES = REPO / "charts" / "values" / "airflow.yaml"
SPARK_OPERATOR_VALUES = REPO / "charts" / "values" / "spark-operator.yaml"


def chart_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_the_default_values_are_the_names_of_the_pipeline_spec(spec):
    k8s = spec.kubernetes
    values = chart_values()
    assert values["jobsNamespace"] == k8s.namespace
    assert {name: f"{image['repository']}:{image['tag']}" for name, image in values["images"].items()} == \
        dict(k8s.images)
    assert values["config"]["name"] == k8s.config_map
    # the pipeline's Secrets are named by the chart's copy of the spec; the chart's own two by values
    assert not {values["secrets"]["historyName"], values["secrets"]["adminName"]} & set(k8s.secrets.values())
    assert values["spark"]["serviceAccount"] == k8s.spark_service_account


def test_the_charts_copy_of_the_spec_is_the_spec_and_reaches_its_config_map(renders):
    spec_text = (REPO / "cryptolake" / "pipeline.yaml").read_text()
    assert (CHART / "files" / "pipeline.yaml").read_text() == spec_text, \
        "charts/cryptolake/files/pipeline.yaml differs: run make generate"
    config_map = one(renders["default"], "ConfigMap", "cryptolake-pipeline-spec")
    assert config_map["data"]["pipeline.yaml"] == spec_text
    assert config_map["metadata"]["namespace"] == "airflow"


BAD_VALUES = [
    ("unknown key", {"objectStore": {"buckett": "x"}}, "additional properties 'buckett' not allowed"),
    ("unknown top-level key", {"replicas": 2}, "additional properties 'replicas' not allowed"),
    ("wrong type", {"historyServer": {"port": "18080"}}, "/historyServer/port"),
    ("unknown store", {"objectStore": {"type": "ceph"}}, "/objectStore/type"),
    ("not a setting", {"config": {"env": {"CMC_MONTHLY_CREDIT": "1"}}}, "/config/env"),
    ("secret as config", {"config": {"env": {"WAREHOUSE_URL": "postgresql+psycopg2://a:b@c/d"}}}, "/config/env"),
    ("negative rate limit", {"config": {"env": {"CMC_RATE_LIMIT": "-3"}}}, "/config/env/CMC_RATE_LIMIT"),
    ("margin of a whole quota", {"config": {"env": {"CMC_CREDIT_MARGIN": 1}}}, "/config/env/CMC_CREDIT_MARGIN"),
    ("API URL without a scheme", {"config": {"env": {"CMC_BASE_URL": "pro-api.coinmarketcap.com"}}},
     "/config/env/CMC_BASE_URL"),
    ("password unsafe in a URL", {"postgresql": {"auth": {"password": "p@ss/word"}}}, "/postgresql/auth/password"),
    ("missing password", {"postgresql": {"auth": {"password": ""}}}, "postgresql.auth.password is required"),
    ("missing S3 key", {"objectStore": {"secretAccessKey": ""}}, "objectStore.secretAccessKey is required"),
    ("missing API key", {"secrets": {"cmcApiKey": ""}}, "secrets.cmcApiKey is required"),
    ("missing loader password", {"secrets": {"warehouseLoaderPassword": ""}},
     "secrets.warehouseLoaderPassword is required"),
    ("missing backup password", {"secrets": {"warehouseBackupPassword": ""}},
     "secrets.warehouseBackupPassword is required"),
    ("loader password unsafe in a URL", {"secrets": {"warehouseLoaderPassword": "a b"}},
     "/secrets/warehouseLoaderPassword"),
    ("missing S3 identity key", {"objectStore": {"identities": {"load": {"secretAccessKey": ""}}}},
     "objectStore.identities.load.secretAccessKey is required"),
    ("identity of no component", {"objectStore": {"identities": {"bi": {"accessKeyId": "x", "secretAccessKey": "y"}}}},
     "additional properties 'bi' not allowed"),
    ("a chart Secret named as a pipeline one", {"secrets": {"historyName": "cryptolake-load"}},
     "the Secret \"cryptolake-load\" is named for two components"),
    ("the old single Secret", {"secrets": {"existingSecret": "cryptolake-secrets"}},
     "additional properties 'existingSecret' not allowed"),
    ("external database without host", {"postgresql": {"enabled": False}}, "postgresql.external.host is required"),
    ("extract egress without ports", {"networkPolicy": {"extractEgress": [{"namespace": "cmc-sandbox"}]}},
     "/networkPolicy/extractEgress/0"),
    ("extract egress to a bad namespace", {"networkPolicy": {"extractEgress": [{"namespace": "CMC_Sandbox",
                                                                                "ports": [18080]}]}},
     "/networkPolicy/extractEgress/0/namespace"),
    ("extract egress as a raw rule", {"networkPolicy": {"extractEgress": [{"namespace": "a", "ports": [1],
                                                                           "to": []}]}},
     "additional properties 'to' not allowed"),
]


@pytest.mark.parametrize("case, values, message", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_values_are_refused_naming_the_field(case, values, message):
    import helm_python as helm

    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as caught:
        render([], merge(PROFILE_SECRETS, values))
    assert message in str(caught.value)


def test_a_bad_values_file_is_refused_too(tmp_path):
    import helm_python as helm

    bad = tmp_path / "bad.yaml"
    bad.write_text("historyServer:\n  enabled: yes please\n")
    with pytest.raises(helm.HelmValuesError, match="/historyServer/enabled"):
        render([str(bad)], PROFILE_SECRETS)


def test_the_release_must_go_into_the_jobs_namespace():
    import helm_python as helm

    from tests.chart.render import render_templates

    with pytest.raises(helm.HelmRenderError, match="helm install -n cryptolake-jobs"):
        render_templates([], PROFILE_SECRETS, namespace="default")


# -- what the DAGs and manifests use exists in the chart ------------------------------------------------------
@pytest.fixture(scope="module")
def kubernetes_dagbag():
    from tests.orchestration.conftest import load_dagbag  # sets up a throwaway AIRFLOW_HOME first

    return load_dagbag("kubernetes")


def referenced_by_dags_and_manifests(dagbag) -> dict[str, set]:
    """Images, namespaces, ConfigMaps, Secrets (and keys), service accounts and pod labels the pipeline uses."""
    from kubernetes.client import ApiClient

    from tests.orchestration.conftest import MANIFEST_DIR

    found: dict[str, set] = {k: set() for k in ("image", "namespace", "config_map", "secret", "secret_key",
                                                "config_key", "service_account", "component")}

    def pod_parts(spec: dict) -> None:
        for container in [*spec.get("containers", []), spec] if "containers" in spec else [spec]:
            if container.get("image"):
                found["image"].add(container["image"])
            for source in container.get("envFrom", []) or []:
                if source.get("configMapRef"):
                    found["config_map"].add(source["configMapRef"]["name"])
                if source.get("secretRef"):
                    found["secret"].add(source["secretRef"]["name"])
            for env in container.get("env", []) or []:
                ref = (env.get("valueFrom") or {})
                if ref.get("secretKeyRef"):
                    found["secret"].add(ref["secretKeyRef"]["name"])
                    found["secret_key"].add(ref["secretKeyRef"]["key"])
                if ref.get("configMapKeyRef"):
                    found["config_map"].add(ref["configMapKeyRef"]["name"])
                    found["config_key"].add(ref["configMapKeyRef"]["key"])

    for dag in dagbag.dags.values():
        for task in dag.tasks:
            if type(task).__name__ == "KubernetesPodOperator":
                pod = ApiClient().sanitize_for_serialization(task.build_pod_request_obj(dry_run=True))
                found["namespace"].add(pod["metadata"]["namespace"])
                found["component"].add(pod["metadata"]["labels"]["app.kubernetes.io/component"])
                pod_parts(pod["spec"])
            elif type(task).__name__ == "SparkKubernetesOperator":
                found["namespace"].add(task.namespace)
    manifests = [yaml.safe_load(p.read_text()) for p in sorted(MANIFEST_DIR.glob("*.yaml"))]
    assert manifests
    for manifest in manifests:
        found["namespace"].add(manifest["metadata"]["namespace"])
        found["image"].add(manifest["spec"]["image"])
        for role in ("driver", "executor"):
            part = manifest["spec"][role]
            pod_parts({**part, "image": part.get("image") or manifest["spec"]["image"]})
            if part.get("serviceAccount"):
                found["service_account"].add(part["serviceAccount"])
    return found


@pytest.mark.parametrize("profile", ["default", "kind", "cloud"])
def test_everything_the_dags_and_manifests_reference_exists_in_the_chart(renders, kubernetes_dagbag, profile, spec):
    objects = renders[profile]
    used = referenced_by_dags_and_manifests(kubernetes_dagbag)
    assert used["image"] and used["config_map"] and used["secret"] and used["service_account"]
    values = merge(chart_values(), yaml.safe_load((CHART / f"values-{profile}.yaml").read_text())
                   if profile != "default" else {})
    chart_images = {f"{i['repository']}:{i['tag']}" for i in values["images"].values()}
    assert used["image"] <= chart_images
    rendered_images = {c["image"] for _, pod in pod_specs(objects) for c in containers(pod)}
    assert chart_images <= rendered_images  # the chart itself runs both images (hooks, tests, History Server)
    assert used["namespace"] == {values["jobsNamespace"]}
    config_maps = {o["metadata"]["name"]: o for o in find(objects, "ConfigMap")}
    assert used["config_map"] <= set(config_maps)
    for key in used["config_key"]:
        assert any(key in config_maps[name]["data"] for name in used["config_map"]), key
    secret_names = {o["metadata"]["name"] for o in find(objects, "Secret")}
    assert used["secret"] == set(spec.kubernetes.secrets.values())  # each component's, by the spec's names
    if values["secrets"]["existingSecrets"]:
        assert not secret_names
    else:
        assert used["secret"] <= secret_names
    accounts = {o["metadata"]["name"] for o in find(objects, "ServiceAccount")}
    assert used["service_account"] <= accounts
    # the extractor pods are the ones the API egress policy selects
    selected = {p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
                for p in find(objects, "NetworkPolicy")}
    assert "extract" in used["component"] and "extract" in selected


NEEDS = {  # what each command needs in a cluster besides the lake and the store
    "extract": {"CMC_API_KEY", "CMC_BASE_URL"}, "transform": set(), "load": {"WAREHOUSE_URL"},
    "backup": {"WAREHOUSE_URL"}}


@pytest.mark.parametrize("role", NEEDS)
def test_the_pipeline_reads_every_setting_it_needs_from_the_chart(renders, spec, role):
    """What `cryptolake extract|transform|load|backup` needs in a cluster, from the ConfigMap and its own Secret."""
    objects = renders["default"]
    keys = set(one(objects, "ConfigMap", "cryptolake-config")["data"]) | \
        set(one(objects, "Secret", spec.kubernetes.secrets[role])["stringData"])
    assert {"LAKE_URI", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            *NEEDS[role]} <= keys


# -- the documented values of the official charts ---------------------------------------------------------------
def test_the_spark_operator_values_watch_the_jobs_namespace_with_the_webhook_on(spec):
    values = yaml.safe_load(SPARK_OPERATOR_VALUES.read_text())
    assert values["spark"]["jobNamespaces"] == [spec.kubernetes.namespace]
    assert values["webhook"]["enable"] is True
    # the cryptolake chart makes the drivers' account and role
    assert values["spark"]["serviceAccount"]["create"] is False and values["spark"]["rbac"]["create"] is False


def test_the_airflow_values_run_the_kubernetes_backend_with_the_pool_connection_and_spec(spec):
    values = yaml.safe_load(AIRFLOW_VALUES.read_text())
    chart = chart_values()
    assert values["executor"] == "KubernetesExecutor"
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    for generated in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[generated]  # otherwise the Airflow chart makes random ones
    assert {"name": "CRYPTOLAKE_DAG_BACKEND", "value": "kubernetes"} in values["env"]
    conn_env = f"AIRFLOW_CONN_{spec.airflow.warehouse_conn_id.upper()}"
    assert conn_env in {s["envName"] for s in values["secret"]}
    # the alerts' SMTP connection, optional: Airflow starts without it
    smtp_env = f"AIRFLOW_CONN_{spec.airflow.alerts.args['smtp_conn_id'].upper()}"
    [smtp] = [e for e in yaml.safe_load(values["extraEnv"]) if e["name"] == smtp_env]
    assert smtp["valueFrom"]["secretKeyRef"]["optional"] is True
    (pool,) = values["scheduler"]["extraInitContainers"]
    assert f"airflow pools set {spec.airflow.api_pool} {spec.airflow.api_pool_slots} " in pool["args"][-1]
    assert values["workers"]["kubernetes"]["serviceAccount"]["name"] == chart["airflow"]["workerServiceAccount"]
    (volume,) = values["volumes"]
    assert volume["configMap"]["name"] == chart["pipelineSpec"]["configMapName"]
    (mount,) = values["volumeMounts"]
    assert mount["name"] == volume["name"] and mount["subPath"] == "pipeline.yaml"
    assert values["dags"]["gitSync"]["subPath"] == "dags"


def test_airflow_keeps_task_logs_in_the_lakes_bucket_after_the_pods_are_gone(renders):
    """KubernetesExecutor deletes a task's worker pod when the task ends: without remote logging the log (and the
    extractor pod's or driver's output it streamed) goes with it."""
    values = yaml.safe_load(AIRFLOW_VALUES.read_text())
    logging = values["config"]["logging"]
    assert logging["remote_logging"] == "True"
    assert logging["remote_base_log_folder"] == f"s3://{chart_values()['objectStore']['bucket']}/airflow-logs"
    conn_env = f"AIRFLOW_CONN_{logging['remote_log_conn_id'].upper()}"
    assert conn_env in {s["envName"] for s in values["secret"]}
    # and the chart's object store lets Airflow's pods in (its NetworkPolicy)
    store = one(renders["kind"], "NetworkPolicy", "cryptolake-allow-seaweedfs")
    airflow = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": chart_values()["airflow"]["namespace"]}}}
    assert airflow in store["spec"]["ingress"][0]["from"]


def test_config_env_accepts_exactly_the_settings_the_chart_does_not_set_itself():
    import json

    from cryptolake.settings import SETTINGS

    schema = json.loads((CHART / "values.schema.json").read_text())
    allowed = set(schema["properties"]["config"]["properties"]["env"]["properties"])
    from_chart = {"LAKE_URI", "AWS_ENDPOINT_URL", "AWS_REGION", "LAKE_CONDITIONAL_WRITES"}  # objectStore.*
    in_secret = {"AWS_ACCESS_KEY_ID"}  # with the secret settings
    local_only = {"CRYPTOLAKE_SPARK_CLASSPATH"}  # unused under spark-submit
    assert allowed == {v.env for v in SETTINGS if not v.secret} - from_chart - in_secret - local_only


CANDIDATES = ["-3", "0", "0.0", "0.35", ".5", "1", "1.0", "2", "2.5", "007", "lots", "", "http://x", "ftp://x",
              "https://pro-api.coinmarketcap.com", -3, 0, 0.35, 1, 2, 2.5, True]


def test_config_env_takes_exactly_the_values_the_settings_take():
    """values.yaml is checked at install time as the pods would check it at start: each config.env setting's
    schema accepts a value exactly when cryptolake/settings.py does (so a typo fails `helm install`, not a pod)."""
    import json

    import jsonschema

    from cryptolake.settings import SETTINGS

    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]["properties"]["env"]
    disagree = []
    for variable in SETTINGS:
        if variable.env not in schema["properties"]:
            continue
        for value in CANDIDATES:
            by_schema = jsonschema.Draft7Validator(schema["properties"][variable.env]).is_valid(value)
            by_settings = variable.check(str(value)) is None and not isinstance(value, bool)
            if by_schema != by_settings:
                disagree.append((variable.env, value, by_schema))
    assert not disagree, f"(setting, value, schema accepts) where the settings disagree: {disagree}"
