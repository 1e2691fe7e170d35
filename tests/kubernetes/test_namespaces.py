"""charts/namespaces.sh, which `make deploy` runs first, on the real apiserver: the jobs namespace enforces Pod
Security restricted (what docs/kubernetes.md promises for every pipeline pod), Airflow's and the operator's
baseline with restricted warnings; a re-run changes nothing and fixes a namespace made by hand."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.kubernetes.conftest import REPO

pytestmark = pytest.mark.timeout(1800)  # the session's apiserver may have to be built first (see conftest.py)

SCRIPT = REPO / "charts" / "namespaces.sh"
JOBS, AIRFLOW, OPERATOR = "ns-test-jobs", "ns-test-airflow", "ns-test-operator"
ROOT_POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root-pod"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def run(apiserver) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{apiserver.bin_dir}{os.pathsep}{os.environ['PATH']}",
           "KUBECONFIG": str(apiserver.kubeconfig)}
    return subprocess.run([str(SCRIPT), "test", JOBS, AIRFLOW, OPERATOR], env=env, capture_output=True, text=True,
                          timeout=120, check=True)


def labels(apiserver, namespace: str) -> dict[str, str]:
    found = json.loads(apiserver.kubectl("get", "namespace", namespace, "-o", "json").stdout)["metadata"]["labels"]
    return {k.removeprefix("pod-security.kubernetes.io/"): v for k, v in found.items()
            if k.startswith("pod-security.kubernetes.io/")}


def admitted(apiserver, namespace: str) -> subprocess.CompletedProcess:
    return apiserver.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(ROOT_POD),
                             check=False)


def test_the_jobs_namespace_enforces_restricted_and_the_others_baseline(apiserver):
    apiserver.kubectl("create", "namespace", AIRFLOW)  # made by hand before: the script labels it all the same
    first = run(apiserver)
    assert f"namespace {JOBS}: enforces Pod Security restricted" in first.stdout
    levels = {"warn": "restricted", "audit": "restricted",
              "enforce-version": "latest", "warn-version": "latest", "audit-version": "latest"}
    assert labels(apiserver, JOBS) == {"enforce": "restricted", **levels}
    for namespace in (AIRFLOW, OPERATOR):
        assert labels(apiserver, namespace) == {"enforce": "baseline", **levels}

    for namespace in (JOBS, AIRFLOW):  # what the controller-manager would add (none runs here)
        apiserver.kubectl("create", "serviceaccount", "default", "-n", namespace)
    refused = admitted(apiserver, JOBS)  # a pod that may run as root, with every capability
    assert refused.returncode != 0 and 'violates PodSecurity "restricted:latest"' in refused.stderr
    allowed = admitted(apiserver, AIRFLOW)  # baseline admits it, and says what restricted would refuse
    assert allowed.returncode == 0, allowed.stderr
    assert 'would violate PodSecurity "restricted:latest"' in allowed.stderr

    run(apiserver)  # idempotent
    assert labels(apiserver, JOBS)["enforce"] == "restricted"
