"""A real kube-apiserver (with its etcd) on loopback for the whole test session.

The binaries come from cluster/node/kube/build.sh (built from the Go module proxy and cached under
~/.cache/cryptolake/kube/<version>/; `make kube-bins` and .ci/run build them ahead, this fixture builds them
when they are missing). No controller-manager, scheduler or kubelet runs: objects are stored and admitted
(RBAC, Pod Security, CRD schemas, server-side dry-run) but nothing reconciles them, so ServiceAccounts, even a
namespace's `default` one, have to be created explicitly.
"""

from __future__ import annotations

import ctypes
import datetime
import json
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "cluster" / "node" / "kube" / "build.sh"
READY_TIMEOUT_S = 90  # it is ready about 5 s after start here; slow CI machines get headroom, not forever


def kube_bin_dir() -> Path:
    out = subprocess.run([BUILD_SCRIPT, "--print-dir"], check=True, capture_output=True, text=True).stdout
    return Path(out.strip()) / "bin"


def ensure_binaries() -> Path:
    """The cached binaries, built first when absent (a cold build takes about 11 minutes)."""
    subprocess.run([BUILD_SCRIPT], check=True)
    return kube_bin_dir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when pytest dies, so no apiserver outlives a killed session."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# --- credentials -------------------------------------------------------------------------------------------


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject, public_key, issuer_name, issuer_key, *, ca=False, server_names=(), client=False):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name or subject)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server_names:
        names = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in server_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_credentials(directory: Path) -> dict[str, Path]:
    """A CA, the apiserver's serving cert, an admin client cert (O=system:masters) and the service-account
    signing key pair, as PEM files in `directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    files = {}

    def write(label: str, data: bytes) -> None:
        files[label] = directory / label
        files[label].write_bytes(data)
        files[label].chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("cryptolake-test-ca")
    ca = _certificate(ca_name, ca_key.public_key(), None, ca_key, ca=True)
    write("ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    for label, subject, kwargs in [
        ("apiserver", name("kube-apiserver"), {"server_names": (
            "127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")}),
        ("admin", name("cryptolake-test-admin", "system:masters"), {"client": True}),
    ]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, key.public_key(), ca_name, ca_key, **kwargs)
        write(f"{label}.crt", cert.public_bytes(serialization.Encoding.PEM))
        write(f"{label}.key", _pem_key(key))
    sa_key = ec.generate_private_key(ec.SECP256R1())
    write("sa.key", _pem_key(sa_key))
    write("sa.pub", sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return files


# --- the cluster -------------------------------------------------------------------------------------------


@dataclass
class Apiserver:
    """A running kube-apiserver: its URL, an admin kubeconfig, and kubectl bound to both."""

    url: str
    kubeconfig: Path
    bin_dir: Path
    workdir: Path

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        argv = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig),
                "--cache-dir", str(self.workdir / "kubectl-cache"), *args]
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def can_i(self, user: str, verb: str, resource: str, namespace: str) -> bool:
        """`resource` may name a subresource, `pods/log`: kubectl would read that as the pod called `log`."""
        resource, _, subresource = resource.partition("/")
        args = [f"--subresource={subresource}"] if subresource else []
        done = self.kubectl("auth", "can-i", verb, resource, *args, "-n", namespace, f"--as={user}", check=False)
        answer = done.stdout.strip()
        if answer not in ("yes", "no"):
            raise AssertionError(f"kubectl auth can-i answered {done.returncode}: {done.stdout}{done.stderr}")
        return answer == "yes"

    def ensure_namespace(self, namespace: str, labels: dict[str, str] | None = None) -> None:
        """The namespace with its `default` ServiceAccount (the controller-manager would create that one)."""
        apply_documents(self, [
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": namespace, "labels": labels or {}}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}},
        ])


# Applied first to last, so that what a later document refers to exists when it is admitted.
_APPLY_ORDER = ["Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Role",
                "ClusterRoleBinding", "RoleBinding"]


def apply_documents(api: Apiserver, documents: list[dict], namespace: str = "default") -> str:
    """Apply rendered manifests for real (not a dry run), namespaced ones without a namespace into `namespace`.

    Every namespace they name is created first with its `default` ServiceAccount, and so is every
    ServiceAccount a binding names: without a controller-manager (or the chart that owns it) none would exist.
    Returns kubectl's output (one `<kind>/<name> created|configured|unchanged` line per object)."""
    documents = [d for d in documents if d]
    namespaces = {d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"}
    # Bound ServiceAccounts that no document creates (Airflow's worker comes from Airflow's chart)
    accounts = {(d["metadata"].get("namespace", namespace), d["metadata"]["name"])
                for d in documents if d["kind"] == "ServiceAccount"}
    bound = {(s["namespace"], s["name"]) for d in documents if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
             for s in d.get("subjects") or [] if s["kind"] == "ServiceAccount"}
    documents = documents + [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": n, "namespace": ns}}
                             for ns, n in sorted(bound - accounts)]
    needed = {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} - {None, *namespaces}
    for name in sorted(needed):  # created when missing, not applied: that would drop the labels it has
        if api.kubectl("get", "namespace", name, check=False).returncode != 0:
            api.kubectl("create", "namespace", name)
    default_sas = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": n}}
                   for n in sorted(needed | namespaces)
                   if not any(d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "default"
                              and d["metadata"].get("namespace") == n for d in documents)]
    ordered = sorted([*default_sas, *documents],
                     key=lambda d: _APPLY_ORDER.index(d["kind"]) if d["kind"] in _APPLY_ORDER else len(_APPLY_ORDER))
    output = []
    for document in ordered:  # one at a time: kubectl sorts a multi-document file only partially
        target = document["metadata"].get("namespace", namespace)  # kubectl ignores it for cluster-scoped kinds
        output.append(api.kubectl("apply", "-n", target, "-f", "-", input=json.dumps(document)).stdout.strip())
    return "\n".join(output)


def _wait_ready(label: str, url: str, context: ssl.SSLContext | None, processes: dict[str, subprocess.Popen],
                logs: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                tail = (logs / f"{name}.log").read_text()[-4000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError as error:
            last = str(error)
        time.sleep(0.25)
    tail = (logs / f"{label}.log").read_text()[-4000:]
    raise RuntimeError(f"{label} not ready within {READY_TIMEOUT_S}s ({last}):\n{tail}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def apiserver():
    """etcd + kube-apiserver on free loopback ports, RBAC + Node authorization, default admission plugins
    (Pod Security among them); an admin kubeconfig. Stopped, with their files removed, at the session's end."""
    bin_dir = ensure_binaries()
    workdir = Path(tempfile.mkdtemp(prefix="cryptolake-kube-"))
    processes: dict[str, subprocess.Popen] = {}
    try:
        creds = write_credentials(workdir)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"

        def start(label: str, argv: list[str]) -> None:
            with open(workdir / f"{label}.log", "wb") as log:
                processes[label] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                                    stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

        start("etcd", [
            str(bin_dir / "etcd"), "--name", "test", "--data-dir", str(workdir / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"test={peer_url}", "--unsafe-no-fsync", "--log-level", "warn",
        ])
        _wait_ready("etcd", f"{etcd_url}/health", None, processes, workdir)
        start("kube-apiserver", [
            str(bin_dir / "kube-apiserver"),
            "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(api_port),
            "--tls-cert-file", str(creds["apiserver.crt"]), "--tls-private-key-file", str(creds["apiserver.key"]),
            "--client-ca-file", str(creds["ca.crt"]),
            "--authorization-mode", "Node,RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(creds["sa.pub"]),
            "--service-account-signing-key-file", str(creds["sa.key"]),
            "--service-cluster-ip-range", "10.96.0.0/16",  # a setting only: nothing routes to it
            "--endpoint-reconciler-type=none",  # the `kubernetes` Service's endpoint may not be a loopback IP
            "--profiling=false",
        ])
        url = f"https://127.0.0.1:{api_port}"
        context = ssl.create_default_context(cafile=str(creds["ca.crt"]))
        context.load_cert_chain(str(creds["admin.crt"]), str(creds["admin.key"]))
        _wait_ready("kube-apiserver", f"{url}/readyz", context, processes, workdir)

        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": url,
                                                      "certificate-authority": str(creds["ca.crt"])}}],
            "users": [{"name": "admin", "user": {"client-certificate": str(creds["admin.crt"]),
                                                 "client-key": str(creds["admin.key"])}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        }))
        kubeconfig.chmod(0o600)
        yield Apiserver(url=url, kubeconfig=kubeconfig, bin_dir=bin_dir, workdir=workdir)
    finally:
        for label in ("kube-apiserver", "etcd"):
            if label in processes:
                _stop(processes[label])
        shutil.rmtree(workdir, ignore_errors=True)
