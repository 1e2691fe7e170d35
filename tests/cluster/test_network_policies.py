"""NetworkPolicies are enforced on the node (`make network-policies`: kube-network-policies as a DaemonSet,
cluster/network-policies): with a default-deny ingress policy a pod's HTTP server is unreachable from other pods, and
an allow rule for pods labelled as clients lets those through and no others.

Server and clients run the project's extract image (its Python: an http.server and urllib), the way the chart's own
pods talk to each other, in a namespace of the test's own, removed afterwards.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from cryptolake.pipeline import default
from tests.conftest import REPO

pytestmark = pytest.mark.cluster

NAMESPACE = "netpol-proof"
PORT = 8080
SETTLE_TIMEOUT_S = 60  # the agent applies a policy within a second or two here; headroom, not forever
FETCH = ("import sys, urllib.request; "
         "print(urllib.request.urlopen(f'http://{sys.argv[1]}:%d/', timeout=3).status)" % PORT)
RESTRICTED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _pod(name: str, labels: dict, image: str, command: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"containers": [{"name": name, "image": image, "imagePullPolicy": "Never", "command": command,
                                     "securityContext": RESTRICTED, "workingDir": "/tmp",
                                     "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                     "volumes": [{"name": "tmp", "emptyDir": {}}], "terminationGracePeriodSeconds": 0}}


def _policy(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


DENY_ALL = _policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
ALLOW_CLIENTS = _policy("allow-clients", {
    "podSelector": {"matchLabels": {"role": "server"}}, "policyTypes": ["Ingress"],
    "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                 "ports": [{"protocol": "TCP", "port": PORT}]}]})


def _reaches(node, client: str, server_ip: str) -> bool:
    result = node.kubectl("exec", "-n", NAMESPACE, client, "--", "python3", "-c", FETCH, server_ip, check=False)
    return result.returncode == 0 and result.stdout.strip() == "200"


def _settles(node, client: str, server_ip: str, reachable: bool) -> bool:
    """Whether the client's reach becomes `reachable` (the agent applies a policy change asynchronously)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        if _reaches(node, client, server_ip) == reachable:
            return True
        time.sleep(1)
    return False


@pytest.fixture(scope="module")
def server_ip(node):
    """The agent installed (`make network-policies`, idempotent), three pods up; the server's pod IP."""
    subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "network-policies",
                    f"CLUSTER_DIR={node.paths.root}"], check=True)
    image = default().kubernetes.images["extract"]
    node.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait")
    node.kubectl("create", "namespace", NAMESPACE)
    try:
        node.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
            _pod("server", {"role": "server"}, image, ["python3", "-m", "http.server", str(PORT)]),
            _pod("client", {"role": "client"}, image, ["sleep", "infinity"]),
            _pod("stranger", {"role": "stranger"}, image, ["sleep", "infinity"])]))
        node.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "pod", "--all", "--timeout=120s")
        yield json.loads(node.kubectl("get", "pod", "server", "-n", NAMESPACE, "-o", "json").stdout)["status"]["podIP"]
    finally:
        node.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)


def test_default_deny_blocks_pod_to_pod_and_an_allow_rule_lets_clients_through(node, server_ip):
    node.kubectl("delete", "networkpolicy", "--all", "-n", NAMESPACE)
    assert _settles(node, "client", server_ip, reachable=True), "the server is unreachable without any NetworkPolicy"
    assert _reaches(node, "stranger", server_ip)

    node.kubectl("apply", "-f", "-", input=yaml.safe_dump(DENY_ALL))
    assert _settles(node, "client", server_ip, reachable=False), "default-deny did not block pod-to-pod traffic"
    assert not _reaches(node, "stranger", server_ip)

    node.kubectl("apply", "-f", "-", input=yaml.safe_dump(ALLOW_CLIENTS))
    assert _settles(node, "client", server_ip, reachable=True), "the allow rule did not let the client through"
    # Only the pods the rule selects.
    assert not _reaches(node, "stranger", server_ip)
