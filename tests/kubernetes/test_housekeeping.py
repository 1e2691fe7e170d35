"""On the real apiserver: the housekeeping DAG's cleanup removes the pipeline's failed pods once they are older
than the spec's retention, and nothing else (recent failures, running pods, Spark drivers owned by their
application, other people's pods)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from cryptolake import pipeline
from cryptolake.orchestration.housekeeping import delete_expired_failed_pods
from tests.kubernetes.test_apiserver import jobs_namespace  # noqa: F401
from tests.kubernetes.test_pod_security_and_network import kubernetes_dag_pods

pytestmark = pytest.mark.timeout(1800)  # the session's apiserver may have to be built first (see conftest.py)


@pytest.fixture
def core_v1(apiserver):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def _pod(template: dict, name: str, **metadata) -> dict:
    pod = copy.deepcopy(template)
    pod["metadata"] = {"name": name, "labels": {**template["metadata"]["labels"]}, **metadata}
    return pod


def _end(core_v1, namespace: str, name: str, phase: str, finished: datetime) -> None:
    """What the kubelet would report: the pod's phase and, for a failed one, when its container ended."""
    state = ({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": (finished - timedelta(minutes=1)).isoformat(),
                             "finishedAt": finished.isoformat()}} if phase == "Failed" else
             {"running": {"startedAt": finished.isoformat()}})
    container = {"name": "base", "image": "cryptolake-extract:0.1.0", "imageID": "", "ready": False,
                 "restartCount": 0, "state": state}
    core_v1.patch_namespaced_pod_status(name, namespace, {"status": {"phase": phase,
                                                                    "containerStatuses": [container]}})


def test_failed_pods_stay_for_the_retention_then_go(apiserver, jobs_namespace, core_v1):
    retention = timedelta(hours=pipeline.default().kubernetes.finished_retention_hours)
    template = kubernetes_dag_pods()["10x.extract.key_info"]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    old, recent = now - retention - timedelta(hours=1), now - retention + timedelta(hours=1)
    owner = {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication", "name": "cryptolake-10x-load-x",
             "uid": "00000000-0000-0000-0000-000000000001"}
    cases = {  # name -> (metadata, phase, ended, deleted?)
        "hk-old-failure": ({}, "Failed", old, True),
        "hk-recent-failure": ({}, "Failed", recent, False),
        "hk-old-running": ({}, "Running", old, False),
        "hk-old-spark-driver": ({"ownerReferences": [owner]}, "Failed", old, False),
        "hk-not-ours": ({"labels": {"app": "someone-else"}}, "Failed", old, False),
    }
    for name, (metadata, phase, ended, _) in cases.items():
        pod = _pod(template, name, **{k: v for k, v in metadata.items() if k != "labels"})
        if "labels" in metadata:
            pod["metadata"]["labels"] = metadata["labels"]
        core_v1.create_namespaced_pod(jobs_namespace, pod)
        _end(core_v1, jobs_namespace, name, phase, ended)

    deleted = delete_expired_failed_pods(core_v1, jobs_namespace, retention)

    assert deleted == [name for name, case in cases.items() if case[3]] == ["hk-old-failure"]
    left = {p.metadata.name for p in core_v1.list_namespaced_pod(jobs_namespace).items if p.metadata.name.startswith("hk-")}
    # no kubelet here: a deleted pod with no node goes at once
    assert left == {name for name, case in cases.items() if not case[3]}
    # a second run finds nothing more to do, and a later one removes the recent failure in its turn
    assert delete_expired_failed_pods(core_v1, jobs_namespace, retention) == []
    assert delete_expired_failed_pods(core_v1, jobs_namespace, retention,
                                      now=now + timedelta(hours=2)) == ["hk-recent-failure"]
