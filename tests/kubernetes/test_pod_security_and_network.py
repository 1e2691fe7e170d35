"""On the real apiserver: every pod the pipeline runs is admitted under Pod Security "restricted" (the DAGs'
pods, every task's, and the pods the Spark Operator makes from each SparkApplication's driver and executor
specs), and the chart's NetworkPolicies, applied for real, are stored as a default deny plus an explicit allow
for each component that serves or calls out."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from tests.kubernetes.conftest import REPO, Apiserver, apply_documents
from tests.kubernetes.test_apiserver import RESTRICTED, chart_objects, dry_run, jobs_namespace  # noqa: F401

pytestmark = pytest.mark.timeout(1800)  # the session's apiserver may have to be built first (see conftest.py)

SPARK_MANIFESTS = REPO / "manifests" / "spark"


def kubernetes_dag_pods() -> dict[str, dict]:
    """task id -> the pod its KubernetesPodOperator would create, for every such task of every DAG (the status
    check's subclass included; not the SparkApplication tasks, whose pods the operator makes)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
    from kubernetes.client import ApiClient

    from tests.orchestration.conftest import load_dagbag

    bag = load_dagbag("kubernetes")
    client = ApiClient()
    pods = {}
    for dag in bag.dags.values():
        for task in dag.tasks:
            if isinstance(task, KubernetesPodOperator) and not isinstance(task, SparkKubernetesOperator):
                pods[f"{dag.dag_id}.{task.task_id}"] = client.sanitize_for_serialization(
                    task.build_pod_request_obj(dry_run=True))
    return pods


def spark_pods(manifest: dict) -> list[dict]:
    """The driver and executor pods as the Spark Operator builds them from a SparkApplication: the role's
    labels + spark-role, its securityContext on the container and podSecurityContext on the pod, the driver's
    service account, envFrom, the volumes it mounts and the emptyDir Spark uses as local dir (no operator runs
    here: this mirrors it)."""
    spec, meta = manifest["spec"], manifest["metadata"]
    pods = []
    for role in ("driver", "executor"):
        part = spec[role]
        container = {"name": f"spark-kubernetes-{role}", "image": part.get("image", spec["image"]),
                     "args": [role], "envFrom": part.get("envFrom", []),
                     "volumeMounts": [{"name": "spark-local-dir-1", "mountPath": "/var/data/spark-local"},
                                      *part.get("volumeMounts", [])]}
        if "securityContext" in part:
            container["securityContext"] = part["securityContext"]
        mounted = {m["name"] for m in part.get("volumeMounts", [])}  # the webhook adds the volumes a role mounts
        pod_spec = {"restartPolicy": "Never", "containers": [container],
                    "volumes": [{"name": "spark-local-dir-1", "emptyDir": {}},
                                *(v for v in spec.get("volumes", []) if v["name"] in mounted)]}
        if "podSecurityContext" in part:
            pod_spec["securityContext"] = part["podSecurityContext"]
        if role == "driver":
            pod_spec["serviceAccountName"] = part["serviceAccount"]
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"{meta['name']}-{role}", "namespace": meta["namespace"],
                                  "labels": {**part.get("labels", {}), "spark-role": role}},
                     "spec": pod_spec})
    return pods


def _manifests() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(SPARK_MANIFESTS.glob("*.yaml"))]


def test_every_dag_pod_is_admitted_under_restricted(apiserver, jobs_namespace):
    pods = kubernetes_dag_pods()
    assert {"backup.backup", "status.status"} <= set(pods) and len(pods) > 12  # the extractors, backup, status
    distinct = {json.dumps({**pod["spec"]}, sort_keys=True): task for task, pod in pods.items()}
    for task in distinct.values():
        pod = pods[task]
        assert pod["metadata"]["namespace"] == jobs_namespace
        done = dry_run(apiserver, pod)
        assert done.returncode == 0, f"{task}: {done.stderr}"


@pytest.mark.parametrize("manifest", _manifests(), ids=lambda m: m["metadata"]["name"])
def test_spark_driver_and_executor_pods_are_admitted_under_restricted(apiserver, jobs_namespace, manifest):
    apply_documents(apiserver, [o for o in chart_objects("kind") if o["kind"] == "ServiceAccount"],
                    namespace=jobs_namespace)
    for pod in spark_pods(manifest):
        done = dry_run(apiserver, pod)
        assert done.returncode == 0, f"{pod['metadata']['name']}: {done.stderr}"


def test_a_spark_pod_without_its_security_context_is_refused(apiserver, jobs_namespace):
    """The check above can fail: drop the executor's securityContext and restricted refuses the pod."""
    manifest = copy.deepcopy(_manifests()[0])
    del manifest["spec"]["executor"]["securityContext"]
    executor = spark_pods(manifest)[1]
    rejected = dry_run(apiserver, executor)
    assert rejected.returncode != 0 and 'violates PodSecurity "restricted:latest"' in rejected.stderr
    assert "allowPrivilegeEscalation" in rejected.stderr and "runAsNonRoot" in rejected.stderr


# --- NetworkPolicies ---------------------------------------------------------------------------------------------


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels + matchExpressions) against a pod's labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        ok = {"Exists": key in labels, "DoesNotExist": key not in labels,
              "In": labels.get(key) in values, "NotIn": labels.get(key) not in values}[operator]
        if not ok:
            return False
    return True


def _stored_policies(apiserver: Apiserver, namespace: str) -> list[dict]:
    objects = chart_objects("kind")
    policies = [copy.deepcopy(o) for o in objects if o["kind"] == "NetworkPolicy"]
    for policy in policies:
        policy["metadata"]["namespace"] = namespace
    apiserver.ensure_namespace(namespace, RESTRICTED)
    apply_documents(apiserver, policies, namespace=namespace)
    listed = json.loads(apiserver.kubectl("get", "networkpolicies", "-n", namespace, "-o", "json").stdout)
    return listed["items"]


def _workload_pods() -> dict[str, dict[str, str]]:
    """component -> the labels of its pods: the chart's servers, the Spark pods, an extractor pod."""
    pods = {}
    for obj in chart_objects("kind"):
        if obj["kind"] in ("Deployment", "StatefulSet"):
            labels = obj["spec"]["template"]["metadata"]["labels"]
            pods[labels["app.kubernetes.io/component"]] = labels
    driver, executor = spark_pods(_manifests()[0])
    pods["spark-driver"], pods["spark-executor"] = driver["metadata"]["labels"], executor["metadata"]["labels"]
    extractor = next(p for t, p in kubernetes_dag_pods().items() if not t.endswith(".backup"))
    pods["extract"] = extractor["metadata"]["labels"]
    return pods


def test_network_policies_are_stored_as_default_deny_with_an_explicit_allow_per_component(apiserver):
    stored = _stored_policies(apiserver, "cryptolake-netpol")
    deny = [p for p in stored if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
            and not p["spec"].get("egress") and sorted(p["spec"]["policyTypes"]) == ["Egress", "Ingress"]]
    assert deny, "no default-deny NetworkPolicy stored in the namespace"
    explicit = [p for p in stored if p["spec"]["podSelector"] != {}]
    ports = {o["spec"]["selector"].get("app.kubernetes.io/component"): {p["targetPort"] for p in o["spec"]["ports"]}
             for o in chart_objects("kind") if o["kind"] == "Service" and o["spec"].get("selector")}
    for component, labels in _workload_pods().items():
        mine = [p for p in explicit if selects(p["spec"]["podSelector"], labels)]
        assert mine, f"{component}: no explicit NetworkPolicy selects its pods"
        if component in ports:  # a server: its Service's ports are allowed in, by name or number
            allowed = {port.get("port") for p in mine for rule in p["spec"].get("ingress") or []
                       for port in rule.get("ports") or []}
            named = {c_port["name"] for o in chart_objects("kind") if o["kind"] in ("Deployment", "StatefulSet")
                     for c in o["spec"]["template"]["spec"]["containers"] for c_port in c.get("ports") or []
                     if c_port.get("containerPort") in allowed and "name" in c_port}
            assert ports[component] & (allowed | named), f"{component}: ports {ports[component]} not allowed in"
    assert any("Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], _workload_pods()["extract"])
               for p in explicit), "extractors have no egress allow to the API"


def test_the_selector_check_can_fail():
    assert selects({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not selects({"matchLabels": {"a": "1"}}, {"a": "2"})
    assert selects({"matchExpressions": [{"key": "spark-role", "operator": "Exists"}]}, {"spark-role": "driver"})
    assert not selects({"matchExpressions": [{"key": "spark-role", "operator": "Exists"}]}, {"a": "1"})
