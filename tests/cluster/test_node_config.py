"""What cluster/node/node.py renders for the node, checked without a node: the containment settings."""

from __future__ import annotations

import ipaddress


def test_contain_rules_drop_every_range_both_ways_past_loopback_and_the_bridge(node_module):
    rules = node_module.contain_rules()
    assert set(rules) == {"CRYPTOLAKE-EGRESS", "CRYPTOLAKE-INGRESS"}
    for chain, flag in (("CRYPTOLAKE-EGRESS", "-o"), ("CRYPTOLAKE-INGRESS", "-i")):
        # The only exemptions, first: loopback and the pod bridge; everything else falls through to the drops.
        assert rules[chain][:2] == [[flag, "lo", "-j", "RETURN"], [flag, node_module.BRIDGE, "-j", "RETURN"]]
        assert all(rule[-1] == "DROP" for rule in rules[chain][2:])
        for cidr in (node_module.POD_CIDR, node_module.SERVICE_CIDR, f"{node_module.NODE_IP}/32"):
            for match in ("-s", "-d"):
                assert [match, cidr, "-j", "DROP"] in rules[chain]


def test_rules_render_as_iptables_prints_them(node_module):
    """cluster-up compares `iptables -S` with this rendering to leave rules in place that are already right."""
    assert node_module.render_rule(["-o", "lo", "-j", "RETURN"]) == "-o lo -j RETURN"
    assert node_module.render_rule(["-i", "eth0", "-d", "10.0.0.0/8", "-j", "DROP"]) == "-d 10.0.0.0/8 -i eth0 -j DROP"


def test_pods_get_no_default_route_and_no_masquerade(node_module, tmp_path):
    config = node_module.cni_config(node_module.Paths(tmp_path))
    bridge = config["plugins"][0]
    assert bridge["ipMasq"] is False and bridge["isDefaultGateway"] is False
    routes = [ipaddress.ip_network(route["dst"]) for route in bridge["ipam"]["routes"]]
    assert routes and all(route.prefixlen > 0 for route in routes)


def test_coredns_answers_cluster_names_only(node_module):
    corefile = next(item for item in node_module.coredns_manifest("img")
                    if item["kind"] == "ConfigMap")["data"]["Corefile"]
    plugins = {line.split()[0] for line in corefile.splitlines()[1:] if line.startswith("    ") and
               not line.startswith("     ") and line.strip() != "}"}
    assert "kubernetes" in plugins
    assert not plugins & {"forward", "proxy", "hosts", "file", "auto"}


def test_kubelet_serves_no_anonymous_request_and_keeps_every_image(node_module, tmp_path):
    config = node_module.kubelet_config(node_module.Paths(tmp_path))
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authentication"]["webhook"]["enabled"] is True
    assert config["authorization"]["mode"] == "Webhook"
    assert config["readOnlyPort"] == 0
    assert config["resolvConf"] == ""
    assert config["imageGCHighThresholdPercent"] == 100


def test_cluster_dns_listens_on_the_port_network_policies_allow(node_module):
    """NetworkPolicies match the port the DNS pod itself listens on (after the Service's DNAT): the chart lets its
    pods reach kube-dns on 53, as every cluster's DNS serves it, so the node's CoreDNS must listen there too."""
    objects = node_module.coredns_manifest("coredns:test")
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    listened = {(p["protocol"], p["containerPort"]) for c in pod["containers"] for p in c["ports"]}
    from tests.chart.render import KIND_VALUES, NODE_VALUES, PROFILE_SECRETS, render

    policy = next(o for o in render([KIND_VALUES, NODE_VALUES], PROFILE_SECRETS) if o["kind"] == "NetworkPolicy"
                  and o["metadata"]["name"].endswith("allow-dns-and-namespace-egress"))
    [dns_rule] = [r for r in policy["spec"]["egress"]
                  if any(p.get("podSelector", {}).get("matchLabels") == pod_labels(objects) for p in r["to"])]
    allowed = {(p["protocol"], p["port"]) for p in dns_rule["ports"]}
    assert listened and listened <= allowed
    assert pod["securityContext"]["runAsNonRoot"]


def pod_labels(objects: list[dict]) -> dict:
    return next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["metadata"]["labels"]


def test_an_up_from_another_checkout_names_the_node_that_is_up(node_module, tmp_path, monkeypatch):
    """One node per machine: the machine record names the state directory of the node that is up; a node whose
    processes are gone, or this checkout's own, is not "elsewhere"."""
    import os

    record = tmp_path / "machine-record"
    monkeypatch.setattr(node_module, "MACHINE_RECORD", record)
    mine, other = node_module.Paths(tmp_path / "mine"), node_module.Paths(tmp_path / "other")
    assert node_module.node_elsewhere(mine) is None  # no record
    record.write_text(f"{other.root}\n")
    assert node_module.node_elsewhere(mine) is None  # its processes are not running
    other.run.mkdir(parents=True)
    (other.run / "etcd.pid").write_text(f"{os.getpid()} {node_module._start_time(os.getpid())}")
    assert node_module.node_elsewhere(mine) == other.root
    record.write_text(f"{mine.root}\n")
    assert node_module.node_elsewhere(mine) is None  # this checkout's own node
