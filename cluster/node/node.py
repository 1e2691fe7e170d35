#!/usr/bin/env python3
"""A real single-node Kubernetes cluster on this machine, from the binaries cluster/node/build.sh makes.

`up` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (Debian's), kubelet,
kube-proxy and CoreDNS with their own PKI; `down` stops what `up` started (by PID file) and undoes what it changed
on the host (recorded in <state>/host.json); `status` prints each component; `kubeconfig` prints the admin
kubeconfig's path. Standard library only, so it runs
from a fresh clone before any venv exists. Runs as root (kubelet, containerd, iptables).

Containment: pods get no default route (only the service range and the node IP are routed), CoreDNS has no
`forward`, and iptables drop the pod, service and node addresses on every external interface.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NODE_NAME = "cryptolake-node"
# Private ranges with unusual second octets, so that they are unlikely to clash with a LAN, a VPN, Docker
# (172.17+/16), kind (10.244/16, 10.96/12) or Tailscale (100.64/10). docs/kubernetes.md lists them.
POD_CIDR = "10.213.0.0/24"
SERVICE_CIDR = "10.214.0.0/16"
NODE_IP = "10.215.0.1"
BRIDGE = "cryptolake0"
ETCD_PORT = 12379
ETCD_PEER_PORT = 12380
APISERVER_PORT = 6443
CLUSTER_DOMAIN = "cluster.local"
KUBELET_DIR = Path("/var/lib/kubelet")
CNI_DIR = Path("/var/lib/cni")
NETNS_DIR = Path("/var/run/netns")
CNI_BIN_DIR = "/usr/lib/cni"
READY_TIMEOUT_S = 180  # Ready ~5 s after start here; a loaded CI machine gets headroom, never forever
# Chains the kubelet creates in every table it touches (iptables and ip6tables); kube-proxy --cleanup does not
# remove them.
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")


def service_ip(index: int) -> str:
    return str(ipaddress.ip_network(SERVICE_CIDR)[index])


API_SERVICE_IP = service_ip(1)
DNS_SERVICE_IP = service_ip(10)


def state_dir() -> Path:
    return Path(os.environ.get("CRYPTOLAKE_CLUSTER_DIR") or REPO / ".local" / "cluster").resolve()


# One node per machine (the kubelet's /var/lib/kubelet, ports 6443 and 12379, iptables): the state directory of the
# node that is up, so that an `up` from another checkout names it instead of failing half way. /run: gone at reboot,
# with the processes.
MACHINE_RECORD = Path("/run/cryptolake-node")


def node_elsewhere(paths: Paths) -> Path | None:
    """The state directory of a node up on this machine from another checkout, if any."""
    try:
        other = Path(MACHINE_RECORD.read_text().strip())
    except OSError:
        return None
    if other == paths.root:
        return None
    return other if any(running_pid(Paths(other), name) for name in ORDER) else None


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def host_record(self) -> Path:
        return self.root / "host.json"

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    def conf(self, name: str) -> Path:
        return self.conf_dir / name


# --- configuration rendering (pure; tests/cluster/test_node_config.py) ----------------------------------------


# Containment chains: each RETURNs for loopback and the pod bridge, and DROPs the pod, service and node
# addresses on every other interface, present or future (a VPN's tun, another bridge's veth): chain -> (the
# interface match, the built-in chains that jump to it).
CONTAIN_CHAINS = {"CRYPTOLAKE-EGRESS": ("-o", ("FORWARD", "OUTPUT")),
                  "CRYPTOLAKE-INGRESS": ("-i", ("INPUT", "FORWARD"))}


def contain_rules() -> dict[str, list[list[str]]]:
    """The rules of each containment chain: nothing to or from the pod, service or node addresses crosses an
    interface other than loopback and the pod bridge, in either direction."""
    ranges = (POD_CIDR, SERVICE_CIDR, f"{NODE_IP}/32")
    return {chain: [[flag, "lo", "-j", "RETURN"], [flag, BRIDGE, "-j", "RETURN"],
                    *([match, cidr, "-j", "DROP"] for cidr in ranges for match in ("-s", "-d"))]
            for chain, (flag, _) in CONTAIN_CHAINS.items()}


def render_rule(rule: list[str]) -> str:
    """A rule as `iptables -S` prints it (addresses before interfaces)."""
    options = dict(zip(rule[::2], rule[1::2]))
    return " ".join(f"{flag} {options[flag]}" for flag in ("-s", "-d", "-i", "-o", "-j") if flag in options)


def cni_config(paths: Paths) -> dict:
    """Bridge without masquerade; the pods' only routes are the service range and the node IP (no default)."""
    return {
        "cniVersion": "1.0.0",
        "name": "cryptolake",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "isDefaultGateway": False, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                      "routes": [{"dst": SERVICE_CIDR}, {"dst": f"{NODE_IP}/32"}],
                      "dataDir": str(paths.root / "cni" / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": False},
        ],
    }


def containerd_config(paths: Paths, sandbox_image: str) -> str:
    root = paths.root / "containerd"
    return f"""version = 2
root = "{root / 'root'}"
state = "{root / 'state'}"
# Snapshotters this node never uses (their probes only log errors here).
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{paths.containerd_socket}"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The VM withholds CAP_SYS_RESOURCE even from root: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{root / 'cni'}"
    max_conf_num = 1
"""


def kubelet_config(paths: Paths) -> dict:
    pki = paths.pki
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        # This VM has cgroup v1 (kubelet 1.35+ refuses it unless told) and no systemd managing cgroups.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [DNS_SERVICE_IP],
        # Pods must not inherit the host's resolver: cluster names only.
        "resolvConf": "",
        # Images here cannot be pulled again (no registry): never garbage-collect one.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # Absolute floors: the default percentages (imagefs 15 %) put a large shared disk under "pressure"
        # with tens of GB free, and the node then schedules nothing.
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2Gi", "imagefs.available": "2Gi",
                         "nodefs.inodesFree": "5%", "imagefs.inodesFree": "5%"},
        "failSwapOn": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }


def kube_proxy_config(paths: Paths) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(paths.conf("kube-proxy.kubeconfig"))},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # NodePorts answer on the node IP only, never on an external interface.
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # Leave the host's conntrack sysctls alone.
        "conntrack": {"maxPerCore": 0},
    }


def kubeconfig(paths: Paths, user: str) -> dict:
    pki = paths.pki
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "cryptolake", "cluster": {
            "server": f"https://{NODE_IP}:{APISERVER_PORT}", "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": user, "user": {"client-certificate": str(pki / f"{user}.crt"),
                                          "client-key": str(pki / f"{user}.key")}}],
        "contexts": [{"name": "cryptolake", "context": {"cluster": "cryptolake", "user": user}}],
        "current-context": "cryptolake",
    }


# Client certificates: file stem -> (CN, O).
CLIENTS = {
    "admin": ("cryptolake-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kube-proxy": ("system:kube-proxy", None),
    "node": (f"system:node:{NODE_NAME}", "system:nodes"),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
    "apiserver-etcd-client": ("kube-apiserver-etcd-client", None),
}
# Serving certificates: file stem -> (CN, subjectAltName).
SERVERS = {
    "apiserver": ("kube-apiserver",
                  f"IP:{NODE_IP},IP:127.0.0.1,IP:{API_SERVICE_IP},DNS:localhost,DNS:kubernetes,"
                  "DNS:kubernetes.default,DNS:kubernetes.default.svc,"
                  f"DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}"),
    "kubelet": (NODE_NAME, f"IP:{NODE_IP},DNS:{NODE_NAME}"),
    "etcd": ("etcd", "IP:127.0.0.1,DNS:localhost"),
}


def component_commands(paths: Paths, bins: Path) -> dict[str, list[str]]:
    """Each component's argv, in start order (containerd is Debian's, the rest from build.sh)."""
    pki, conf = paths.pki, paths.conf
    etcd_url = f"https://127.0.0.1:{ETCD_PORT}"
    peer_url = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    with_kubeconfig = lambda name: [f"--kubeconfig={conf(name)}", f"--authentication-kubeconfig={conf(name)}",
                                    f"--authorization-kubeconfig={conf(name)}"]
    return {
        "etcd": [str(bins / "etcd"), "--name=default", f"--data-dir={paths.root / 'etcd'}",
                 f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                 f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                 f"--initial-cluster=default={peer_url}", "--client-cert-auth",
                 f"--trusted-ca-file={pki / 'ca.crt'}", f"--cert-file={pki / 'etcd.crt'}",
                 f"--key-file={pki / 'etcd.key'}", "--log-level=warn"],
        "kube-apiserver": [
            str(bins / "kube-apiserver"), f"--advertise-address={NODE_IP}", f"--bind-address={NODE_IP}",
            f"--secure-port={APISERVER_PORT}", f"--etcd-servers={etcd_url}", f"--etcd-cafile={pki / 'ca.crt'}",
            f"--etcd-certfile={pki / 'apiserver-etcd-client.crt'}",
            f"--etcd-keyfile={pki / 'apiserver-etcd-client.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}", "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction", "--allow-privileged=true", "--profiling=false"],
        "kube-controller-manager": [
            str(bins / "kube-controller-manager"), *with_kubeconfig("controller-manager.kubeconfig"),
            "--bind-address=127.0.0.1", "--leader-elect=false", "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--root-ca-file={pki / 'ca.crt'}", f"--service-account-private-key-file={pki / 'sa.key'}",
            "--allocate-node-cidrs=true", f"--cluster-cidr={POD_CIDR}",
            f"--node-cidr-mask-size={ipaddress.ip_network(POD_CIDR).prefixlen}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--profiling=false"],
        "kube-scheduler": [str(bins / "kube-scheduler"), *with_kubeconfig("scheduler.kubeconfig"),
                           "--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false"],
        "containerd": [shutil.which("containerd") or "/usr/bin/containerd",
                       f"--config={conf('containerd.toml')}"],
        "kubelet": [str(bins / "kubelet"), f"--config={conf('kubelet.yaml')}",
                    f"--kubeconfig={conf('kubelet.kubeconfig')}", f"--hostname-override={NODE_NAME}",
                    f"--node-ip={NODE_IP}"],
        "kube-proxy": [str(bins / "kube-proxy"), f"--config={conf('kube-proxy.yaml')}"],
    }


def coredns_manifest(image: str) -> list[dict]:
    """CoreDNS with the kubernetes plugin only: no `forward`, so no name outside the cluster resolves."""
    corefile = f""".:53 {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
    loadbalance
}}
"""
    labels = {"k8s-app": "kube-dns"}
    meta = lambda name: {"name": name, "namespace": "kube-system", "labels": dict(labels)}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("coredns")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns"},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                    "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("coredns"), "data": {"Corefile": corefile}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("coredns"),
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "serviceAccountName": "coredns", "priorityClassName": "system-cluster-critical",
                      "dnsPolicy": "Default",
                      # Port 53 as non-root, by the pod's own (namespaced, "safe") sysctl: NetworkPolicies
                      # name the port the pod listens on, and every cluster's DNS policy says 53.
                      "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                          "seccompProfile": {"type": "RuntimeDefault"},
                                          "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start",
                                                       "value": "53"}]},
                      "containers": [{
                          "name": "coredns", "image": image, "imagePullPolicy": "Never",
                          "args": ["-conf", "/etc/coredns/Corefile"],
                          "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}],
                          "resources": {"requests": {"cpu": "50m", "memory": "40Mi"},
                                        "limits": {"memory": "128Mi"}},
                          "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                              "capabilities": {"drop": ["ALL"]}},
                          "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                          "livenessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                            "initialDelaySeconds": 10, "periodSeconds": 10},
                          "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}]}],
                      "volumes": [{"name": "config", "configMap": {"name": "coredns"}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("kube-dns"),
         "spec": {"clusterIP": DNS_SERVICE_IP, "selector": labels,
                  "ports": [{"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"}]}},
    ]


# --- host commands -------------------------------------------------------------------------------------------


def run(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, input=input)
    if check and done.returncode != 0:
        sys.exit(f"cluster: {' '.join(argv)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done


def say(message: str) -> None:
    print(f"cluster: {message}", flush=True)


def build_output(name: str) -> list[str]:
    return run(str(HERE / "build.sh"), "--print", name).stdout.split()


def write_json(path: Path, document) -> None:
    """JSON is YAML: the kubelet, kube-proxy and kubectl read these as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


# --- PKI -------------------------------------------------------------------------------------------------------


def make_pki(pki: Path) -> None:
    """A CA, a serving certificate per server and a client certificate per component, made once."""
    if (pki / "complete").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    openssl = lambda *argv: run("openssl", *argv)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=cryptolake-ca",
            "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"))

    def issue(stem: str, subject: str, extensions: str) -> None:
        key, csr, crt = (pki / f"{stem}.{suffix}" for suffix in ("key", "csr", "crt"))
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(key),
                "-out", str(csr))
        ext = pki / f"{stem}.ext"
        ext.write_text(extensions)
        openssl("x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
                "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(crt))
        csr.unlink()
        ext.unlink()

    basic = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    for stem, (cn, organisation) in CLIENTS.items():
        issue(stem, f"/CN={cn}" + (f"/O={organisation}" if organisation else ""),
              basic + "extendedKeyUsage=clientAuth\n")
    for stem, (cn, alt_names) in SERVERS.items():
        issue(stem, f"/CN={cn}", basic + f"extendedKeyUsage=serverAuth\nsubjectAltName={alt_names}\n")
    openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    for path in pki.iterdir():
        os.chmod(path, 0o600)
    (pki / "complete").touch()


def write_configs(paths: Paths, sandbox_image: str) -> None:
    conf = paths.conf
    paths.conf_dir.mkdir(parents=True, exist_ok=True)
    conf("containerd.toml").write_text(containerd_config(paths, sandbox_image))
    write_json(paths.root / "containerd" / "cni" / "10-cryptolake.conflist", cni_config(paths))
    write_json(conf("kubelet.yaml"), kubelet_config(paths))
    write_json(conf("kube-proxy.yaml"), kube_proxy_config(paths))
    endpoint = f"unix://{paths.containerd_socket}"
    write_json(conf("crictl.yaml"), {"runtime-endpoint": endpoint, "image-endpoint": endpoint, "timeout": 10})
    write_json(paths.kubeconfig, kubeconfig(paths, "admin"))
    for stem, name in (("controller-manager", "controller-manager"), ("scheduler", "scheduler"),
                       ("kube-proxy", "kube-proxy"), ("node", "kubelet")):
        write_json(conf(f"{name}.kubeconfig"), kubeconfig(paths, stem))
    for path in [paths.kubeconfig, *paths.conf_dir.glob("*.kubeconfig")]:
        os.chmod(path, 0o600)


# --- processes: started by us, known by PID file --------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def running_pid(paths: Paths, name: str) -> int | None:
    """The PID of the component we started, when that very process still runs (not a reused PID)."""
    try:
        pid_text, started = (paths.run / f"{name}.pid").read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if _start_time(pid) != started:
        return None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    return None if state == "Z" else pid


def start(paths: Paths, name: str, argv: list[str]) -> None:
    paths.run.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    with open(paths.logs / f"{name}.log", "ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=paths.root,
                                   start_new_session=True)
    (paths.run / f"{name}.pid").write_text(f"{process.pid} {_start_time(process.pid)}\n")
    say(f"started {name} (pid {process.pid}, log {paths.logs / f'{name}.log'})")


def stop(paths: Paths, name: str, grace_s: float = 15) -> None:
    pid = running_pid(paths, name)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while running_pid(paths, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        if running_pid(paths, name):
            os.kill(pid, signal.SIGKILL)
            while running_pid(paths, name):
                time.sleep(0.1)
        say(f"stopped {name} (pid {pid})")
    (paths.run / f"{name}.pid").unlink(missing_ok=True)


def wait_for(what: str, probe, timeout_s: float = READY_TIMEOUT_S, paths: Paths | None = None,
             name: str | None = None) -> float:
    """Poll probe() until true; fail with the component's log tail when it dies or the time is up."""
    started = time.monotonic()
    while not probe():
        if paths and name and running_pid(paths, name) is None:
            sys.exit(f"cluster: {name} exited; last log lines:\n{tail(paths.logs / f'{name}.log')}")
        if time.monotonic() - started > timeout_s:
            sys.exit(f"cluster: {what} not ready after {timeout_s}s" +
                     (f"; last lines of {name}'s log:\n{tail(paths.logs / f'{name}.log')}" if name else ""))
        time.sleep(0.5)
    return time.monotonic() - started


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def kubectl(paths: Paths, bins: Path, *argv: str, check: bool = True, input: str | None = None):
    return run(str(bins / "kubectl"), f"--kubeconfig={paths.kubeconfig}", "--request-timeout=30s", *argv,
               check=check, input=input)


# --- host changes: each one recorded, so that `down` undoes exactly what `up` did -----------------------------


def load_record(paths: Paths) -> dict:
    try:
        return json.loads(paths.host_record.read_text())
    except (OSError, ValueError):
        return {}


def save_record(paths: Paths, record: dict) -> None:
    write_json(paths.host_record, record)


def setup_host(paths: Paths, record: dict) -> None:
    def note(key, value):
        record[key] = value
        save_record(paths, record)

    for directory in (KUBELET_DIR, NETNS_DIR):
        if not directory.exists() and str(directory) not in record.get("created_dirs", []):
            note("created_dirs", [*record.get("created_dirs", []), str(directory)])
    if f"{NODE_IP}/32" not in run("ip", "-o", "addr", "show", "dev", "lo").stdout:
        run("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        note("address", f"{NODE_IP}/32")
    # The host (the apiserver calling webhooks, a person with curl) reaches ClusterIPs through lo, from the node IP.
    if not run("ip", "route", "show", SERVICE_CIDR).stdout.strip():
        run("ip", "route", "add", SERVICE_CIDR, "dev", "lo", "src", NODE_IP)
        note("route", SERVICE_CIDR)
    for sysctl, wanted in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")):
        path = Path("/proc/sys") / sysctl
        if not path.exists():
            sys.exit(f"cluster: {path} is missing: load the br_netfilter kernel module (modprobe br_netfilter)")
        before = path.read_text().strip()
        if before != wanted:
            path.write_text(wanted)
            note("sysctls", {**record.get("sysctls", {}), sysctl: before})
    for chain, rules in contain_rules().items():
        present = run("iptables", "-S", chain, check=False)
        if present.stdout.splitlines() == [f"-N {chain}", *(f"-A {chain} {render_rule(rule)}" for rule in rules)]:
            continue  # already in place: never flushed, so there is no moment without the drops
        if present.returncode != 0:
            run("iptables", "-N", chain)
        run("iptables", "-F", chain)
        for rule in rules:
            run("iptables", "-A", chain, *rule)
    contain_first()
    say(f"drop rules for {POD_CIDR}, {SERVICE_CIDR} and {NODE_IP} on every interface but lo and {BRIDGE}")


def contain_first() -> None:
    """Make the containment jumps the first rule of their built-in chains (kube-proxy and the kubelet insert
    theirs at the top when they start; an ACCEPT of theirs must not come first)."""
    for chain, (_, hooks) in CONTAIN_CHAINS.items():
        for hook in hooks:
            rules = run("iptables", "-S", hook).stdout.splitlines()
            jump = f"-A {hook} -j {chain}"
            position = rules.index(jump) if jump in rules else None  # rules[0] is the policy (-P)
            if position == 1 or (position == 2 and rules[1].split()[-1] in CONTAIN_CHAINS):
                continue
            if position is not None:
                run("iptables", "-D", hook, "-j", chain)
            run("iptables", "-I", hook, "1", "-j", chain)


def teardown_host(paths: Paths, record: dict, bins: Path) -> None:
    # kube-proxy's own rules (iptables, and the nftables/ipvs ones it may probe), then the kubelet's chains.
    run(str(bins / "kube-proxy"), "--cleanup", check=False)
    for binary in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            rules = run(binary, "-t", table, "-S", check=False).stdout.splitlines()
            ours = [chain for chain in KUBELET_CHAINS if f"-N {chain}" in rules]
            # portmap's per-pod chains (CNI-DN-*) carry the network's name in a comment; the shared CNI-HOSTPORT-*
            # chains and other CNI users' (buildah's RUN, podman) chains stay.
            ours += sorted({line.split()[1] for line in rules
                            if line.startswith("-A CNI-DN-") and 'name: \\"cryptolake\\"' in line})
            if binary == "iptables" and table == "filter":
                ours += [chain for chain in CONTAIN_CHAINS if f"-N {chain}" in rules]
            for line in rules:
                words = line.split()
                if words[0] == "-A" and "-j" in words and words[words.index("-j") + 1] in ours \
                        and words[1] not in ours:
                    run(binary, "-t", table, "-D", *words[1:], check=False)
            for chain in ours:
                run(binary, "-t", table, "-F", chain, check=False)
            for chain in ours:
                run(binary, "-t", table, "-X", chain, check=False)
    # Mounts the kubelet and containerd made (the kubelet's own bind mount of its root and the pod volumes'
    # tmpfs, the rootfs overlays, the pods' network namespaces), deepest first. Other CNI users on the machine
    # (buildah's RUN, podman) keep their namespaces, chains and IPAM files.
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    ours = tuple(str(directory.resolve()) for directory in (KUBELET_DIR, paths.root))
    netns = {str(Path(path).resolve()) for path in record.get("pod_netns", [])}
    for mount in sorted((m for m in mounts if m in netns or m in ours or m.startswith(tuple(f"{d}/" for d in ours))),
                        key=len, reverse=True):
        run("umount", "-l", mount, check=False)
    for path in netns:
        Path(path).unlink(missing_ok=True)
    for sandbox in record.get("pod_sandboxes", []):
        for result in (CNI_DIR / "results").glob(f"*-{sandbox}-*"):
            result.unlink()
    if run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        run("ip", "link", "delete", BRIDGE, check=False)
    shutil.rmtree(paths.root / "cni", ignore_errors=True)
    for directory in record.get("created_dirs", []):
        if Path(directory) == KUBELET_DIR:
            shutil.rmtree(directory, ignore_errors=True)
        else:  # shared with other CNI users: removed only when nobody put anything in it
            try:
                Path(directory).rmdir()
            except OSError:
                pass
    if record.get("route"):
        run("ip", "route", "del", record["route"], "dev", "lo", check=False)
    if record.get("address"):
        run("ip", "addr", "del", record["address"], "dev", "lo", check=False)
    for sysctl, before in record.get("sysctls", {}).items():
        (Path("/proc/sys") / sysctl).write_text(before)
    paths.host_record.unlink(missing_ok=True)


def stop_pods(paths: Paths, record: dict) -> None:
    """Kill every pod container (containerd still up, so its shims exit), then anything left in the kubelet's
    kubepods cgroups, and remove those cgroups. Records the pods' network namespaces and sandbox ids for
    teardown_host (there is no CNI DEL: containerd goes down with the pods)."""
    if running_pid(paths, "containerd"):
        ctr = ["ctr", "--address", str(paths.containerd_socket), "-n", "k8s.io"]
        for container in run(*ctr, "containers", "ls", "-q", check=False).stdout.split():
            info = run(*ctr, "containers", "info", container, check=False)
            if info.returncode != 0:
                continue
            spec = json.loads(info.stdout).get("Spec") or {}
            for namespace in spec.get("linux", {}).get("namespaces", []):
                if namespace.get("type") == "network" and namespace.get("path"):
                    record.setdefault("pod_netns", []).append(namespace["path"])
                    record.setdefault("pod_sandboxes", []).append(container)
        save_record(paths, record)
        for task in run(*ctr, "tasks", "ls", "-q", check=False).stdout.split():
            run(*ctr, "tasks", "kill", "-a", "-s", "SIGKILL", task, check=False)
        time.sleep(1)
        for task in run(*ctr, "tasks", "ls", "-q", check=False).stdout.split():
            run(*ctr, "tasks", "delete", "-f", task, check=False)
    cgroups = sorted(Path("/sys/fs/cgroup").glob("*/kubepods*"))
    for cgroup in cgroups:
        for procs in cgroup.rglob("cgroup.procs"):
            for pid in procs.read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    time.sleep(0.5)
    for cgroup in cgroups:
        for directory in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                                reverse=True) + [cgroup]:
            try:
                directory.rmdir()
            except OSError:
                pass


def containerd_shims(paths: Paths) -> list[int]:
    """Shims our containerd started (they carry its socket in their argv); they outlive containerd."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(paths.containerd_socket).encode() in argv:
            pids.append(int(proc.name))
    return pids


# --- up / down / status ----------------------------------------------------------------------------------------

ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet",
         "kube-proxy")


def node_ready(paths: Paths, bins: Path) -> bool:
    done = kubectl(paths, bins, "get", "node", NODE_NAME, "-o",
                   "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
    return done.returncode == 0 and done.stdout.strip() == "True"


def coredns_ready(paths: Paths, bins: Path) -> bool:
    done = kubectl(paths, bins, "-n", "kube-system", "get", "deployment", "coredns", "-o",
                   "jsonpath={.status.readyReplicas}", check=False)
    return done.returncode == 0 and done.stdout.strip() not in ("", "0")


def up(paths: Paths) -> None:
    if os.geteuid() != 0:
        sys.exit("cluster: needs root (kubelet, containerd, iptables, addresses on lo)")
    other = node_elsewhere(paths)
    if other:
        sys.exit(f"cluster: a node from {other} is up on this machine (one node per machine); stop it first: "
                 f"CRYPTOLAKE_CLUSTER_DIR={other} make cluster-down")
    bins = Path(build_output("kube-bin")[0])
    if all(running_pid(paths, name) for name in ORDER) and node_ready(paths, bins) and coredns_ready(paths, bins):
        say(f"up already: nothing changed; kubeconfig {paths.kubeconfig}")
        return
    subprocess.run([str(HERE / "build.sh")], check=True)
    MACHINE_RECORD.write_text(f"{paths.root}\n")
    pause_tar, pause_ref = build_output("pause-image")
    coredns_tar, coredns_ref = build_output("coredns-image")
    started = time.monotonic()
    paths.root.mkdir(parents=True, exist_ok=True)
    make_pki(paths.pki)
    write_configs(paths, pause_ref)
    record = load_record(paths)
    setup_host(paths, record)
    commands = component_commands(paths, bins)
    probes = {
        "etcd": lambda: listening("127.0.0.1", ETCD_PORT),
        "kube-apiserver": lambda: kubectl(paths, bins, "get", "--raw", "/readyz", check=False).returncode == 0,
        "containerd": lambda: run("ctr", "--address", str(paths.containerd_socket), "version",
                                  check=False).returncode == 0,
    }
    for name in ORDER:
        if running_pid(paths, name) is None:
            start(paths, name, commands[name])
        if name in probes:
            wait_for(name, probes[name], paths=paths, name=name)
        if name == "containerd":
            for tar in (pause_tar, coredns_tar):
                run("ctr", "--address", str(paths.containerd_socket), "-n", "k8s.io", "images", "import", tar)
    wait_for("node", lambda: node_ready(paths, bins), paths=paths, name="kubelet")
    say(f"node {NODE_NAME} Ready {time.monotonic() - started:.1f}s after start")
    kubectl(paths, bins, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                               "items": coredns_manifest(coredns_ref)}))
    wait_for("CoreDNS", lambda: coredns_ready(paths, bins))
    contain_first()
    say(f"CoreDNS Ready {time.monotonic() - started:.1f}s after start")
    say(f"up: export KUBECONFIG={paths.kubeconfig}")


def down(paths: Paths) -> None:
    if os.geteuid() != 0:
        sys.exit("cluster: needs root")
    bins = Path(build_output("kube-bin")[0])
    stop(paths, "kubelet")
    record = load_record(paths)
    stop_pods(paths, record)
    stop(paths, "containerd")
    for pid in containerd_shims(paths):
        os.kill(pid, signal.SIGKILL)
    stop(paths, "kube-proxy")
    for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        stop(paths, name)
    teardown_host(paths, record, bins)
    if not node_elsewhere(paths) and MACHINE_RECORD.exists():
        MACHINE_RECORD.unlink()
    say(f"down (state kept in {paths.root}: PKI, etcd data, images; delete it to start afresh)")


def status(paths: Paths) -> int:
    bins = Path(build_output("kube-bin")[0])
    all_up = True
    for name in ORDER:
        pid = running_pid(paths, name)
        all_up &= pid is not None
        print(f"  {name:24} {'running (pid %d)' % pid if pid else 'stopped'}")
    ready = all_up and node_ready(paths, bins)
    dns = ready and coredns_ready(paths, bins)
    print(f"  {'node ' + NODE_NAME:24} {'Ready' if ready else 'not ready'}")
    print(f"  {'coredns':24} {'Ready' if dns else 'not ready'}")
    print(f"  kubeconfig               {paths.kubeconfig}")
    print(f"  containerd socket        {paths.containerd_socket} (namespace k8s.io)")
    print(f"  crictl                   {build_output('crictl')[0]} --config {paths.conf('crictl.yaml')} ps")
    return 0 if dns else 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "kubeconfig", "elsewhere"))
    args = parser.parse_args()
    paths = Paths(state_dir())
    if args.command == "elsewhere":  # prints the state directory of a node up from another checkout, if any
        print(node_elsewhere(paths) or "")
    elif args.command == "up":
        up(paths)
    elif args.command == "down":
        down(paths)
    elif args.command == "kubeconfig":
        print(paths.kubeconfig)
    else:
        sys.exit(status(paths))


if __name__ == "__main__":
    main()
