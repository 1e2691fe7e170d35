"""The real Spark Operator on the node: installed by `make spark-operator` (cluster/spark-operator/install.sh), a
SparkApplication runs to COMPLETED with a driver pod and an executor pod, and the mutating webhook puts the spec's
env and volume mounts into both (the pipeline's SparkApplications depend on it for their ConfigMap and Secret).

The application is a small PySpark job on the project's Spark image (the pipeline's; its Spark is the pyspark pinned
here, tests/images), mounted
from a ConfigMap; it runs in the jobs namespace under a ServiceAccount of its own, removed afterwards.
"""

from __future__ import annotations

import json
import subprocess
import time
from importlib.metadata import version

import pytest
import yaml

from cryptolake.pipeline import default
from tests.conftest import REPO

pytestmark = pytest.mark.cluster

NAME = "operator-proof"
MARKER = "set-by-the-webhook"
COMPLETION_TIMEOUT_S = 600  # about a minute here; a slow CI machine gets headroom, not forever

# Counts in two partitions and reports, from each task, the marker env var and the pod it ran in.
APP = """\
import json, os, socket
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("operator-proof").getOrCreate()
rdd = spark.sparkContext.parallelize(range(1000), 2)
seen = rdd.map(lambda _: (os.environ.get("PROOF_MARKER", "missing"), socket.gethostname())).distinct().collect()
print("PROOF " + json.dumps({"sum": rdd.sum(), "driver_marker": os.environ.get("PROOF_MARKER", "missing"),
                             "tasks": sorted(seen)}), flush=True)
spark.stop()
"""


def _pod_spec(role: str) -> dict:
    """What a driver or executor needs under the namespace's restricted Pod Security level (as manifests/spark/)."""
    return {
        "cores": 1, "coreRequest": "200m", "memory": "512m",
        "env": [{"name": "PROOF_MARKER", "value": MARKER}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "app", "mountPath": "/opt/proof"}],
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": 185, "runAsGroup": 185, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **({"serviceAccount": NAME} if role == "driver" else {"instances": 1}),
    }


def _manifests(namespace: str, image: str) -> list[dict]:
    meta = {"name": NAME, "namespace": namespace}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [""], "resources": ["pods", "services", "configmaps"],
                    "verbs": ["create", "get", "list", "watch", "update", "patch", "delete", "deletecollection"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"pi.py": APP}},
        {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication", "metadata": meta,
         "spec": {
             "type": "Python", "pythonVersion": "3", "mode": "cluster", "image": image,
             "imagePullPolicy": "Never", "sparkVersion": version("pyspark"),
             "mainApplicationFile": "local:///opt/proof/pi.py", "restartPolicy": {"type": "Never"},
             "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "app", "configMap": {"name": NAME}}],
             "driver": _pod_spec("driver"), "executor": _pod_spec("executor"),
         }},
    ]


@pytest.fixture(scope="module")
def spark_job_namespace(node) -> tuple[str, str]:
    """The operator installed (idempotent: a no-op `helm upgrade` when it is), the jobs namespace and Spark image."""
    subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "spark-operator",
                    f"CLUSTER_DIR={node.paths.root}"], check=True)
    kubernetes = default().kubernetes
    return kubernetes.namespace, kubernetes.images["spark"]


def test_a_spark_application_runs_with_a_driver_and_an_executor(node, spark_job_namespace):
    namespace, image = spark_job_namespace
    documents = yaml.safe_dump_all(_manifests(namespace, image))
    node.kubectl("delete", "--ignore-not-found", "--wait", "-f", "-", input=documents)
    try:
        node.kubectl("apply", "-f", "-", input=documents)
        started = time.monotonic()
        state = {}
        while time.monotonic() - started < COMPLETION_TIMEOUT_S:
            app = node.kubectl("get", "sparkapplication", NAME, "-n", namespace, "-o", "json").stdout
            state = json.loads(app).get("status", {})
            if state.get("applicationState", {}).get("state") in ("COMPLETED", "FAILED", "SUBMISSION_FAILED"):
                break
            time.sleep(3)
        print(f"SparkApplication {NAME}: {state.get('applicationState')} after {time.monotonic() - started:.0f}s")
        assert state.get("applicationState", {}).get("state") == "COMPLETED", state

        driver = state["driverInfo"]["podName"]
        executors = state.get("executorState", {})
        assert executors and set(executors.values()) == {"COMPLETED"}, executors
        proof = [line for line in node.kubectl("logs", "-n", namespace, driver).stdout.splitlines()
                 if line.startswith("PROOF ")]
        assert proof, f"no PROOF line in the log of {driver}"
        result = json.loads(proof[0].removeprefix("PROOF "))
        assert result["sum"] == sum(range(1000))
        # Both the driver and every executor task saw the env the webhook injects.
        assert result["driver_marker"] == MARKER
        assert {marker for marker, _ in result["tasks"]} == {MARKER}
        # The tasks ran in the executor pods the operator recorded, not in the driver.
        assert {host for _, host in result["tasks"]} <= set(executors), (result["tasks"], executors)
    finally:
        node.kubectl("delete", "--ignore-not-found", "-f", "-", input=documents, check=False)
