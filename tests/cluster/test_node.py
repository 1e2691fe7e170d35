"""The running single-node cluster as a user meets it: pods run and find Services by DNS, nothing leaves the
machine, a second `cluster-up` changes nothing, the kubelet serves no anonymous request.

Needs the node up (`make cluster-up`); fails, never skips, when it is not (conftest.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.cluster.conftest import NODE_PY, REPO

pytestmark = pytest.mark.cluster
PROBE_SOURCE = Path(__file__).resolve().parent / "probe"


@pytest.fixture(scope="module")
def probe_report(node, tmp_path_factory):
    """Two pods of the node's pause image running tests/cluster/probe (from a hostPath): a server behind a
    Service, and a client that reports its routes, a GET of that Service by name, and name resolutions."""
    probe_dir = tmp_path_factory.mktemp("probe")
    subprocess.run(["go", "build", "-trimpath", "-o", str(probe_dir / "probe"), "."], cwd=PROBE_SOURCE, check=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOWORK": "off",
                        "PATH": f"/usr/local/go/bin:{os.environ['PATH']}"})
    image = node.module.build_output("pause-image")[1]
    namespace = f"cluster-test-{uuid.uuid4().hex[:8]}"
    service = f"echo.{namespace}.svc.cluster.local"

    def pod(name: str, args: list[str], **extra) -> dict:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
                                                                 "labels": {"app": name}},
                "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "probe", "image": image, "imagePullPolicy": "Never",
                                         "command": ["/probe/probe", *args], **extra,
                                         "volumeMounts": [{"name": "probe", "mountPath": "/probe"}]}],
                         "volumes": [{"name": "probe", "hostPath": {"path": str(probe_dir), "type": "Directory"}}]}}

    node.kubectl("create", "namespace", namespace)
    try:
        server = pod("echo", ["serve"], readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1})
        echo = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": namespace},
                "spec": {"selector": {"app": "echo"}, "ports": [{"port": 8080}]}}
        node.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                             "items": [server, echo]}))
        node.kubectl("-n", namespace, "wait", "--for=condition=Ready", "--timeout=120s", "pod/echo")
        client = pod("client", ["report", f"http://{service}:8080/", service, "kubernetes.default", "example.com"])
        node.kubectl("apply", "-f", "-", input=json.dumps(client))
        node.kubectl("-n", namespace, "wait", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s",
                     "pod/client")
        report = json.loads(node.kubectl("-n", namespace, "logs", "client").stdout)
        cluster_ip = node.kubectl("-n", namespace, "get", "service", "echo", "-o",
                                  "jsonpath={.spec.clusterIP}").stdout
        yield {"report": report, "service": service, "cluster_ip": cluster_ip}
    finally:
        node.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_pod_finds_a_service_by_its_dns_name_and_reaches_it(probe_report, node):
    report = probe_report["report"]
    assert report["resolved"][probe_report["service"]] == [probe_report["cluster_ip"]]
    assert report["get"] == "ok"
    kubernetes_ip = node.kubectl("-n", "default", "get", "service", "kubernetes", "-o",
                                 "jsonpath={.spec.clusterIP}").stdout
    assert report["resolved"]["kubernetes.default"] == [kubernetes_ip]


def test_a_pod_has_no_default_route_and_no_outside_name_resolves(probe_report, node):
    routes = probe_report["report"]["routes"]
    assert routes, "the probe read no routes at all"
    allowed = [ipaddress.ip_network(cidr) for cidr in (node.module.POD_CIDR, node.module.SERVICE_CIDR,
                                                        f"{node.module.NODE_IP}/32")]
    for destination, mask in routes:
        network = ipaddress.ip_network(f"{destination}/{mask}")
        assert network.prefixlen > 0, f"pod has a default route: {routes}"
        assert any(network.subnet_of(cidr) for cidr in allowed), f"pod routes {network} off the node: {routes}"
    # This machine resolves no outside name either, so the pod's failure alone proves little: the pod asks the
    # cluster DNS only, and the Corefile CoreDNS runs forwards nowhere.
    assert probe_report["report"]["resolved"]["example.com"].startswith("error:")
    nameservers = [line.split()[1] for line in probe_report["report"]["resolv_conf"].splitlines()
                   if line.startswith("nameserver")]
    assert nameservers == [node.module.DNS_SERVICE_IP]
    corefile = node.kubectl("-n", "kube-system", "get", "configmap", "coredns", "-o",
                            "jsonpath={.data.Corefile}").stdout
    directives = {line.split()[0] for line in corefile.splitlines() if line.strip()}
    assert "kubernetes" in directives and not directives & {"forward", "proxy", "hosts", "file", "auto"}


def external_interfaces() -> list[str]:
    """Every interface but loopback, the pod bridge and the bridge's ports, read from the kernel here."""
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], check=True, capture_output=True,
                                      text=True).stdout)
    bridge = "cryptolake0"
    return [link["ifname"] for link in links
            if "LOOPBACK" not in link["flags"] and link["ifname"] != bridge and link.get("master") != bridge]


def first_match(rules: list[str], flag: str, interface: str, match: str, address: str) -> str:
    """The target of the first `iptables -S` rule a packet with this interface and address meets."""
    for rule in rules:
        words = rule.split()
        if words[0] != "-A":
            continue
        options = dict(zip(words[2::2], words[3::2]))
        if options.get(flag, interface) != interface:
            continue
        cidr = options.get(match)
        if cidr and ipaddress.ip_address(address) not in ipaddress.ip_network(cidr):
            continue
        if set(options) - {flag, match, "-j"}:
            continue  # a rule on other fields (the other address) does not decide for this packet
        return options["-j"]
    return "end of chain"


def test_every_external_interface_drops_the_pod_service_and_node_addresses(node):
    interfaces = external_interfaces()
    assert interfaces, "no external interface found: the drop rules would be checked against nothing"
    addresses = [str(ipaddress.ip_network(cidr)[1]) for cidr in (node.module.POD_CIDR, node.module.SERVICE_CIDR)]
    addresses.append(node.module.NODE_IP)
    for chain, flag, hooks in (("CRYPTOLAKE-EGRESS", "-o", ("FORWARD", "OUTPUT")),
                               ("CRYPTOLAKE-INGRESS", "-i", ("INPUT", "FORWARD"))):
        rules = subprocess.run(["iptables", "-S", chain], check=True, capture_output=True,
                               text=True).stdout.splitlines()
        for interface in interfaces:
            for address in addresses:
                for match in ("-s", "-d"):
                    verdict = first_match(rules, flag, interface, match, address)
                    assert verdict == "DROP", f"{chain}: {match} {address} {flag} {interface} meets {verdict}"
        for hook in hooks:
            first_two = subprocess.run(["iptables", "-S", hook], check=True, capture_output=True,
                                       text=True).stdout.splitlines()[1:3]
            assert f"-A {hook} -j {chain}" in first_two, f"{hook} does not start with the jump to {chain}"


def test_a_second_cluster_up_changes_nothing(node):
    def snapshot() -> dict:
        files = [*node.paths.run.glob("*.pid"), node.paths.host_record, node.paths.kubeconfig,
                 *node.paths.conf_dir.iterdir()]
        return {str(path): (path.read_bytes(), path.stat().st_mtime_ns) for path in files}

    before = snapshot()
    chains = subprocess.run(["iptables", "-S"], check=True, capture_output=True, text=True).stdout
    again = subprocess.run([str(NODE_PY), "up"], cwd=REPO, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "up already: nothing changed" in again.stdout
    assert snapshot() == before
    contain = lambda listing: [line for line in listing.splitlines() if "CRYPTOLAKE" in line]
    assert contain(subprocess.run(["iptables", "-S"], check=True, capture_output=True, text=True).stdout) == \
        contain(chains)


def kubelet_get(node, path: str, user: str | None) -> int:
    context = ssl.create_default_context(cafile=str(node.paths.pki / "ca.crt"))
    if user:
        context.load_cert_chain(node.paths.pki / f"{user}.crt", node.paths.pki / f"{user}.key")
    try:
        with urllib.request.urlopen(f"https://{node.module.NODE_IP}:10250{path}", context=context, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_kubelet_refuses_anonymous_requests(node):
    assert kubelet_get(node, "/pods", user=None) == 401
    # Authenticated but not authorised (webhook authorisation asks the apiserver's RBAC): refused too.
    assert kubelet_get(node, "/pods", user="kube-proxy") == 403
    # The apiserver's own client is let in, so the refusals above came from a live kubelet.
    assert kubelet_get(node, "/pods", user="apiserver-kubelet-client") == 200
