"""What the end-to-end harnesses share (kind_e2e.py for kind, cluster_e2e.py for the real node): the images
they name, bounded waits, the cluster through the `kubernetes` client (sandbox, pods, exec, SparkApplications,
port-forward) and a keeper of pod logs that outlives the pods. pytest does not collect this file."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_VALUES = REPO / "charts" / "values" / "airflow.yaml"
SANDBOX_NAMESPACE = "cmc-sandbox"
SANDBOX_NAME = "cmc-sandbox"
SANDBOX_PORT = 18080
# The sandbox pods' labels; values-kind.yaml's networkPolicy.extractEgress selects them (a test keeps them equal).
SANDBOX_LABELS = {"app.kubernetes.io/name": SANDBOX_NAME, "app.kubernetes.io/part-of": "cryptolakehouse"}
AIRFLOW_NAMESPACE = "airflow"
SPARK_OPERATOR_NAMESPACE = "spark-operator"
DAGS = ("init", "10x")


def airflow_image() -> str:
    """The Airflow image (dags/Dockerfile) as charts/values/airflow.yaml names it: the one place that name lives."""
    import yaml

    image = yaml.safe_load(AIRFLOW_VALUES.read_text())["images"]["airflow"]
    return f"{image['repository']}:{image['tag']}"


def images() -> dict[str, str]:
    """Image tags: extract and spark from the pipeline spec, the sandbox variant named after the extract image,
    airflow from charts/values/airflow.yaml."""
    from cryptolake.pipeline import default

    tags = dict(default().kubernetes.images)
    sandbox = tags["extract"].replace("cryptolake-extract", "cryptolake-sandbox")
    if sandbox == tags["extract"]:
        raise SystemExit(f"cannot name the sandbox image after {tags['extract']!r} (no 'cryptolake-extract' in it)")
    return {"extract": tags["extract"], "spark": tags["spark"], "sandbox": sandbox, "airflow": airflow_image()}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def make(*targets: str, environment: dict[str, str] | None = None, **variables: str) -> None:
    """Run make targets with variables; `environment` adds to make's environment (not shown in the log line)."""
    argv = ["make", "--no-print-directory", *targets, *(f"{k}={v}" for k, v in variables.items())]
    log("$ " + " ".join(argv))
    subprocess.run(argv, cwd=REPO, check=True, env={**os.environ, **(environment or {})})


def wait_until(what: str, timeout: float, probe, interval: float = 5.0):
    """Call probe() until it returns something truthy; raise TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
        time.sleep(interval)


class Cluster:
    def __init__(self, context: str | None = None, kubeconfig: Path | None = None) -> None:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None, context=context)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        from cryptolake.pipeline import default

        self.spec = default().kubernetes
        self.jobs = self.spec.namespace

    # -- the sandbox ------------------------------------------------------------------------------------------
    def deploy_sandbox(self, image: str, timeout: float, pull_policy: str = "IfNotPresent",
                       serve_args: tuple[str, ...] = ()) -> str:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        labels = SANDBOX_LABELS
        try:
            self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=SANDBOX_NAMESPACE)))
        except ApiException as exc:
            if exc.status != 409:
                raise
        container = client.V1Container(
            name="sandbox", image=image, image_pull_policy=pull_policy,
            args=["sandbox", "serve", "--host", "0.0.0.0", "--port", str(SANDBOX_PORT), *serve_args],
            ports=[client.V1ContainerPort(container_port=SANDBOX_PORT, name="http")],
            readiness_probe=client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=SANDBOX_PORT),
                                           period_seconds=2),
            resources=client.V1ResourceRequirements(requests={"cpu": "100m", "memory": "256Mi"},
                                                    limits={"memory": "1Gi"}),
            security_context=client.V1SecurityContext(
                allow_privilege_escalation=False, read_only_root_filesystem=True, run_as_non_root=True,
                capabilities=client.V1Capabilities(drop=["ALL"])),
            volume_mounts=[client.V1VolumeMount(name="tmp", mount_path="/tmp")])
        deployment = client.V1Deployment(
            metadata=client.V1ObjectMeta(name=SANDBOX_NAME, labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=1, selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[container], automount_service_account_token=False,
                        security_context=client.V1PodSecurityContext(
                            run_as_non_root=True, seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")),
                        volumes=[client.V1Volume(name="tmp", empty_dir=client.V1EmptyDirVolumeSource())]))))
        service = client.V1Service(
            metadata=client.V1ObjectMeta(name=SANDBOX_NAME, labels=labels),
            spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(
                name="http", port=SANDBOX_PORT, target_port=SANDBOX_PORT)]))
        for create, replace, body in (
                (self.apps.create_namespaced_deployment, self.apps.replace_namespaced_deployment, deployment),
                (self.core.create_namespaced_service, None, service)):
            try:
                create(SANDBOX_NAMESPACE, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                if replace:
                    replace(SANDBOX_NAME, SANDBOX_NAMESPACE, body)
        wait_until("sandbox Deployment available", timeout, lambda: (
            self.apps.read_namespaced_deployment_status(SANDBOX_NAME, SANDBOX_NAMESPACE).status.available_replicas
            or 0) >= 1)
        return f"http://{SANDBOX_NAME}.{SANDBOX_NAMESPACE}.svc.cluster.local:{SANDBOX_PORT}"

    # -- pods -------------------------------------------------------------------------------------------------
    def unready_pods(self, namespace: str) -> list[str]:
        pending = []
        for pod in self.core.list_namespaced_pod(namespace).items:
            phase = pod.status.phase
            if phase == "Succeeded":
                continue
            ready = all(c.ready for c in (pod.status.container_statuses or [])) and pod.status.container_statuses
            if phase != "Running" or not ready:
                pending.append(f"{namespace}/{pod.metadata.name} ({phase})")
        return pending

    def wait_for_pods(self, namespaces: list[str], timeout: float) -> None:
        def probe():
            pending = [p for ns in namespaces for p in self.unready_pods(ns)]
            if pending:
                log("waiting for " + ", ".join(pending[:6]) + (" ..." if len(pending) > 6 else ""))
            return not pending
        wait_until("every pod Ready", timeout, probe, interval=10)

    def pod(self, namespace: str, selector: str) -> str:
        pods = [p for p in self.core.list_namespaced_pod(namespace, label_selector=selector).items
                if p.status.phase == "Running"]
        if not pods:
            raise RuntimeError(f"no running pod matches {selector!r} in namespace {namespace}")
        return pods[0].metadata.name

    def exec(self, namespace: str, pod: str, container: str, argv: list[str], timeout: float = 120) -> str:
        """Run argv in the container; its stdout, or RuntimeError with its stderr on a non-zero exit."""
        from kubernetes.stream import stream

        ws = stream(self.core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                    command=argv, stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
        out, err = [], []
        deadline = time.monotonic() + timeout
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            if ws.peek_stdout():
                out.append(ws.read_stdout())
            if ws.peek_stderr():
                err.append(ws.read_stderr())
        if ws.is_open():
            ws.close()
            raise TimeoutError(f"{' '.join(argv)} in {pod}: still running after {timeout:.0f} s")
        ws.close()
        if ws.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {pod} exited {ws.returncode}: {''.join(err).strip()[-2000:]}")
        return "".join(out)

    def pod_log(self, pod: str, container: str | None = None, limit_bytes: int = 4 * 1024 * 1024) -> str:
        """The container's log as `kubectl logs` shows it. Read raw: the client's own decoding hands back the
        repr of the bytes (b'...\\n...'), in which no line starts with the JSON record's brace."""
        response = self.core.read_namespaced_pod_log(pod, self.jobs, container=container, limit_bytes=limit_bytes,
                                                     _preload_content=False)
        return response.data.decode(errors="replace")

    # -- SparkApplications ------------------------------------------------------------------------------------
    def spark_applications(self) -> dict[str, str]:
        found = self.custom.list_namespaced_custom_object("sparkoperator.k8s.io", "v1beta2", self.jobs,
                                                          "sparkapplications")
        return {item["metadata"]["name"]: ((item.get("status") or {}).get("applicationState") or {}).get(
            "state", "NEW") for item in found["items"]}

    # -- port-forward -----------------------------------------------------------------------------------------
    def service_pod(self, name_part: str, port: int) -> tuple[str, int]:
        """The running pod behind the jobs namespace's Service whose name contains name_part and exposes port,
        and the container port the Service sends that port to."""
        for svc in self.core.list_namespaced_service(self.jobs).items:
            ports = [p for p in svc.spec.ports or [] if p.port == port]
            if name_part in svc.metadata.name and ports and svc.spec.selector:
                selector = ",".join(f"{k}={v}" for k, v in svc.spec.selector.items())
                target = ports[0].target_port
                return self.pod(self.jobs, selector), target if isinstance(target, int) else port
        raise RuntimeError(f"no Service named *{name_part}* with port {port} in namespace {self.jobs}")

    def port_forward(self, pod: str, port: int) -> PortForward:
        return PortForward(self.core, self.jobs, pod, port)


class PortForward:
    """127.0.0.1:<local_port> relayed to a pod's port through the API server (the kubernetes client's
    portforward), one stream per accepted connection."""

    def __init__(self, core, namespace: str, pod: str, port: int) -> None:
        self.core, self.namespace, self.pod, self.port = core, namespace, pod, port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.local_port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        from kubernetes.stream import portforward

        while True:
            try:
                client_sock, _ = self.listener.accept()
            except OSError:
                return
            forward = portforward(self.core.connect_get_namespaced_pod_portforward, self.pod, self.namespace,
                                  ports=str(self.port))
            threading.Thread(target=self._relay, args=(client_sock, forward.socket(self.port), forward),
                             daemon=True).start()

    @staticmethod
    def _relay(local: socket.socket, remote, forward) -> None:
        remote.setblocking(True)
        try:
            while True:
                readable, _, _ = select.select([local, remote], [], [], 60)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (remote if source is local else local).sendall(data)
        except OSError:
            return
        finally:
            local.close()
            remote.close()
            forward.close()

    def close(self) -> None:
        self.listener.close()


class LogKeeper:
    """Watches the jobs namespace's pods and keeps each extractor's and Spark driver's log, fetched on every
    change of the pod, so the log survives the pod's deletion by the DAG task."""

    CONTAINERS = {"extract": "base", "driver": "spark-kubernetes-driver"}

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.logs: dict[str, tuple[str, dict[str, str], str]] = {}  # pod -> (kind, labels, text)
        self.executors: dict[str, dict[str, str]] = {}  # Spark executor pod -> labels (seen running)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    @staticmethod
    def kind(labels: dict[str, str]) -> str | None:
        if labels.get("app.kubernetes.io/component") == "extract":
            return "extract"
        if labels.get("spark-role") == "driver":
            return "driver"
        return None

    def _watch(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(self.cluster.core.list_namespaced_pod, self.cluster.jobs,
                                                  timeout_seconds=60):
                    pod = event["object"]
                    labels = pod.metadata.labels or {}
                    if labels.get("spark-role") == "executor" and pod.status.phase == "Running":
                        self.executors[pod.metadata.name] = labels
                    kind = self.kind(labels)
                    if kind and event["type"] != "DELETED" and pod.status.phase in ("Running", "Succeeded",
                                                                                        "Failed"):
                        self._fetch(pod.metadata.name, kind, labels)
                    if self._stop.is_set():
                        return
            except Exception as exc:  # a dropped watch is resumed; the logs fetched so far stay
                log(f"pod watch restarted: {exc}")
                time.sleep(2)

    def _fetch(self, name: str, kind: str, labels: dict[str, str]) -> None:
        try:
            text = self.cluster.pod_log(name, self.CONTAINERS[kind])
        except Exception:
            return  # not started yet, or already gone: the last text fetched stays
        if text:
            self.logs[name] = (kind, labels, text)

    def stop(self) -> None:
        self._stop.set()


def json_lines_with_run_id(text: str) -> list[dict]:
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("run_id"):
                found.append(record)
    return found


