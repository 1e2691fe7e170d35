"""What only a real kube-apiserver can say: server-side dry runs of the SparkApplications against the Spark
Operator's CRD, Pod Security "restricted" on the extractor pods the DAGs build, and RBAC for the Airflow worker.

One apiserver serves the session (see conftest.py); each test uses its own namespaces where it creates any.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from cryptolake import pipeline
from tests.kubernetes.conftest import REPO, Apiserver, apply_documents

# The first test's timeout covers the session fixture, which builds the binaries when the cache lacks them
# (about 11 minutes cold on 2 cores; `make kube-bins` and .ci/run build them ahead of the tests).
pytestmark = pytest.mark.timeout(1800)

CRD = REPO / "manifests" / "crds" / "sparkoperator.k8s.io_sparkapplications.yaml"
SPARK_MANIFESTS = REPO / "manifests" / "spark"
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}


@pytest.fixture(scope="module")
def jobs_namespace(apiserver: Apiserver) -> str:
    """The pipeline's jobs namespace, enforcing Pod Security restricted, with the Spark Operator's CRD."""
    namespace = pipeline.default().kubernetes.namespace
    apiserver.ensure_namespace(namespace, {**RESTRICTED, "pod-security.kubernetes.io/enforce-version": "latest"})
    apiserver.kubectl("apply", "--server-side", "-f", str(CRD))
    name = yaml.safe_load(CRD.read_text())["metadata"]["name"]
    apiserver.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    return namespace


def dry_run(apiserver: Apiserver, document: dict, *extra: str):
    return apiserver.kubectl("apply", "--dry-run=server", "--warnings-as-errors", *extra, "-f", "-",
                             input=json.dumps(document), check=False)


def test_the_apiserver_runs_the_version_the_build_pins(apiserver):
    go_mod = (REPO / "cluster/node/kube/go.mod").read_text()
    pinned = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)", go_mod, re.M).group(1)
    assert re.fullmatch(r"v1\.\d+\.\d+", pinned)
    versions = json.loads(apiserver.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == pinned
    assert versions["clientVersion"]["gitVersion"] == pinned


# --- SparkApplications --------------------------------------------------------------------------------------


def test_every_spark_manifest_passes_a_server_side_dry_run(apiserver, jobs_namespace):
    names = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in sorted(SPARK_MANIFESTS.glob("*.yaml"))]
    assert len(names) == 10
    done = apiserver.kubectl("apply", "--dry-run=server", "--warnings-as-errors", "--validate=strict",
                             "-f", str(SPARK_MANIFESTS))
    for name in names:
        assert f"sparkapplication.sparkoperator.k8s.io/{name} created (server dry run)" in done.stdout


def test_the_dry_run_rejects_a_broken_spark_manifest(apiserver, jobs_namespace):
    manifest = yaml.safe_load((SPARK_MANIFESTS / "daily-load.yaml").read_text())
    assert dry_run(apiserver, manifest, "--validate=strict").returncode == 0

    wrong_type = copy.deepcopy(manifest)
    wrong_type["spec"]["driver"]["cores"] = "one"
    rejected = dry_run(apiserver, wrong_type, "--validate=strict")
    assert rejected.returncode != 0 and "spec.driver.cores" in rejected.stderr

    typo = copy.deepcopy(manifest)
    typo["spec"]["executor"]["instanses"] = 2
    rejected = dry_run(apiserver, typo, "--validate=strict")
    assert rejected.returncode != 0 and 'unknown field "spec.executor.instanses"' in rejected.stderr


# --- the extractor pods the DAGs build ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extractor_pod() -> dict:
    """One extractor's pod exactly as the KubernetesPodOperator of the Kubernetes DAGs would create it."""
    from kubernetes.client import ApiClient

    from tests.orchestration.conftest import load_dagbag

    bag = load_dagbag("kubernetes")
    task = next(task for dag in bag.dags.values() for task in dag.tasks
                if type(task).__name__ == "KubernetesPodOperator" and task.task_id != "backup")
    return ApiClient().sanitize_for_serialization(task.build_pod_request_obj(dry_run=True))


def as_root(pod: dict) -> dict:
    root = copy.deepcopy(pod)
    root["spec"]["securityContext"].update(runAsNonRoot=False, runAsUser=0)
    for container in root["spec"]["containers"]:
        container["securityContext"].update(runAsNonRoot=False, runAsUser=0)
    return root


def test_pod_security_restricted_admits_the_extractor_pod(apiserver, jobs_namespace, extractor_pod):
    assert extractor_pod["metadata"]["namespace"] == jobs_namespace
    done = dry_run(apiserver, extractor_pod)
    assert done.returncode == 0, done.stderr
    assert f"pod/{extractor_pod['metadata']['name']} created (server dry run)" in done.stdout


def test_pod_security_rejects_the_extractor_pod_run_as_root(apiserver, jobs_namespace, extractor_pod):
    rejected = dry_run(apiserver, as_root(extractor_pod))
    assert rejected.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in rejected.stderr and "runAsNonRoot" in rejected.stderr


def test_workloads_only_warn_so_warnings_fail_the_dry_run(apiserver, jobs_namespace, extractor_pod):
    """Pod Security enforces on pods but only warns on workloads: --warnings-as-errors turns that into a failure."""
    pod = as_root(extractor_pod)
    labels = {"app.kubernetes.io/name": "pod-security-probe"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "pod-security-probe", "namespace": jobs_namespace},
                  "spec": {"selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels},
                                        "spec": {**pod["spec"], "restartPolicy": "Always"}}}}
    warned = apiserver.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(deployment))
    assert 'would violate PodSecurity "restricted:latest"' in warned.stderr
    rejected = dry_run(apiserver, deployment)
    assert rejected.returncode != 0 and "PodSecurity" in rejected.stderr


# --- the chart -----------------------------------------------------------------------------------------------

PROFILES = {"kind": "values-kind.yaml", "cloud": "values-cloud.yaml"}


def chart_objects(profile: str) -> list[dict]:
    """charts/cryptolake with one of its profiles, rendered offline by the Helm SDK (tests/chart/render.py),
    hooks and `helm test` pods included, with the fake Secrets values tests/chart renders with."""
    from tests.chart.render import CHART, PROFILE_SECRETS, render

    return render([CHART / PROFILES[profile]], PROFILE_SECRETS)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_chart_passes_a_server_side_dry_run_under_pod_security_restricted(apiserver, jobs_namespace, profile):
    """`helm template | kubectl apply --dry-run=server --warnings-as-errors`: every object the chart makes is
    valid and strict, and its pods and workloads pass Pod Security restricted without even a warning."""
    objects = chart_objects(profile)
    namespaces = {o["metadata"].get("namespace", jobs_namespace) for o in objects}
    for namespace in namespaces - {jobs_namespace}:  # Airflow's, for the pipeline-spec ConfigMap
        apiserver.ensure_namespace(namespace, RESTRICTED)
    # A dry-run ServiceAccount is not stored, and the chart's `helm test` pods run as one: create them for real.
    apply_documents(apiserver, [o for o in objects if o["kind"] == "ServiceAccount"], namespace=jobs_namespace)
    for namespace in sorted(namespaces):
        items = [o for o in objects if o["metadata"].get("namespace", jobs_namespace) == namespace]
        done = apiserver.kubectl("apply", "--dry-run=server", "--warnings-as-errors", "--validate=strict",
                                 "-n", namespace, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                              "items": items}), check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count(" (server dry run)") == len(items), done.stdout
        for item in items:
            assert f"/{item['metadata']['name']} " in done.stdout
    assert {"Pod", "Job", "Deployment", "Role", "RoleBinding"} <= {o["kind"] for o in objects}


# --- RBAC ---------------------------------------------------------------------------------------------------

RBAC_KINDS = {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def launchers(documents: list[dict], namespace: str) -> list[str]:
    """The service accounts that a RoleBinding in `namespace` lets create SparkApplications there."""
    roles = {(d["kind"], d["metadata"]["name"]): d for d in documents if d["kind"] in ("Role", "ClusterRole")}
    found = []
    for binding in documents:
        if binding["kind"] != "RoleBinding" or binding["metadata"].get("namespace") != namespace:
            continue
        role = roles.get((binding["roleRef"]["kind"], binding["roleRef"]["name"]), {})
        if any("sparkapplications" in rule.get("resources", []) and "create" in rule.get("verbs", [])
               for rule in role.get("rules", [])):
            found += [f"system:serviceaccount:{s['namespace']}:{s['name']}" for s in binding.get("subjects", [])
                      if s["kind"] == "ServiceAccount"]
    return found


def test_airflow_may_launch_jobs_in_the_jobs_namespace_and_nothing_else(apiserver, jobs_namespace):
    """The chart's RBAC applied for real, then asked with `kubectl auth can-i --as=system:serviceaccount:...`."""
    from tests.chart.render import user_values

    documents = [o for o in chart_objects("kind") if o["kind"] in RBAC_KINDS]
    output = apply_documents(apiserver, documents, namespace=jobs_namespace)
    assert all(line.endswith(("created", "configured", "unchanged")) for line in output.splitlines()), output

    airflow = user_values([REPO / "charts/cryptolake/values.yaml"])["airflow"]
    worker = f"system:serviceaccount:{airflow['namespace']}:{airflow['workerServiceAccount']}"
    assert launchers(documents, jobs_namespace) == [worker]
    apiserver.kubectl("get", "serviceaccount", airflow["workerServiceAccount"], "-n", airflow["namespace"])
    for verb, resource in [("create", "pods"), ("get", "pods"), ("watch", "pods"), ("delete", "pods"),
                           ("get", "pods/log"), ("list", "events"), ("watch", "events"),
                           ("create", "sparkapplications.sparkoperator.k8s.io"),
                           ("delete", "sparkapplications.sparkoperator.k8s.io"),
                           ("get", "sparkapplications.sparkoperator.k8s.io/status")]:
        assert apiserver.can_i(worker, verb, resource, jobs_namespace), (verb, resource)
    for verb, resource, namespace in [("get", "secrets", jobs_namespace), ("list", "secrets", jobs_namespace),
                                      ("create", "pods/exec", jobs_namespace), ("create", "roles", jobs_namespace),
                                      ("create", "events", jobs_namespace), ("list", "events", "default"),
                                      ("create", "pods", "default"), ("get", "pods", "default"),
                                      ("create", "sparkapplications.sparkoperator.k8s.io", "default"),
                                      ("create", "pods", airflow["namespace"])]:
        assert not apiserver.can_i(worker, verb, resource, namespace), (verb, resource, namespace)

    driver = f"system:serviceaccount:{jobs_namespace}:{pipeline.default().kubernetes.spark_service_account}"
    for resource in ("pods", "services", "configmaps"):
        assert apiserver.can_i(driver, "create", resource, jobs_namespace), resource
    assert not apiserver.can_i(driver, "create", "pods", "default")
    assert not apiserver.can_i(driver, "get", "secrets", jobs_namespace)
    assert not apiserver.can_i(driver, "create", "sparkapplications.sparkoperator.k8s.io", jobs_namespace)


def test_the_rbac_check_can_fail(apiserver, jobs_namespace):
    """can-i says no to an account nothing binds, and yes once a binding grants too much (secrets)."""
    probe = f"system:serviceaccount:{jobs_namespace}:rbac-probe"
    assert not apiserver.can_i(probe, "create", "pods", jobs_namespace)
    too_much = [{"apiGroups": [""], "resources": ["pods", "pods/log", "secrets"], "verbs": ["get", "create"]},
                {"apiGroups": ["sparkoperator.k8s.io"], "resources": ["sparkapplications"], "verbs": ["create"]}]
    documents = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "rbac-probe", "namespace": jobs_namespace}, "rules": too_much},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "rbac-probe", "namespace": jobs_namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rbac-probe"},
         "subjects": [{"kind": "ServiceAccount", "name": "rbac-probe", "namespace": jobs_namespace}]},
    ]
    apply_documents(apiserver, documents)  # creates the bound ServiceAccount too
    apiserver.kubectl("get", "serviceaccount", "rbac-probe", "-n", jobs_namespace)
    assert launchers(documents, jobs_namespace) == [probe]
    assert apiserver.can_i(probe, "get", "pods/log", jobs_namespace)
    assert apiserver.can_i(probe, "get", "secrets", jobs_namespace)  # what the worker check above rules out
    assert not apiserver.can_i(probe, "get", "secrets", "default")
    assert not apiserver.can_i(probe, "get", "pods/exec", jobs_namespace)  # a subresource is not its pod
