"""End to end on a kind cluster: `make e2e-kind` runs this script (pytest does not collect it: its name does not
match test_*.py). It needs Docker, kind, kubectl and helm; the Makefile target says so in one line and exits 0
where there is no Docker engine.

What it does, each wait bounded:
  1. `make kind-up images kind-load`: the cluster of kind-config.yaml and the four images in it;
  2. the CoinMarketCap sandbox as a Deployment + Service in namespace cmc-sandbox (the extract image's sandbox
     variant, `cryptolake sandbox serve`), so nothing leaves the cluster;
  3. `make deploy` with the cryptolake chart pointed at that sandbox (CMC_BASE_URL; the sandbox key as CMC_API_KEY
     for the Secrets `make deploy` creates; values-kind.yaml lets the extractors reach cmc-sandbox:18080);
  4. every pod of the jobs, spark-operator and airflow namespaces Ready (or Succeeded, for the chart's Jobs);
  5. the `init` DAG's own first run (its @once schedule: nobody unpauses or triggers it, as after a user's install),
     then the `10x` DAG triggered in Airflow's scheduler pod, until the run is `success`; meanwhile the SparkApplications of the group are followed and the logs of every extractor pod and
     Spark driver are kept (the DAG tasks delete succeeded pods and finished SparkApplications);
  6. the logs: an extractor pod and a transform and a load driver per group logged JSON lines with a run_id;
  7. rows in the warehouse, through a port-forward to PostgreSQL with the chart's WAREHOUSE_URL;
  8. a transform and a load application in the Spark History Server's REST API, through a port-forward.
Exit status 0 when every check passed; otherwise 1, after a line per failed check.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
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
# The tables a 10x cycle (after init) must have filled, a dimension and the group's facts.
WAREHOUSE_TABLES = ("dw.dim_crypto_id", "dw.fact_crypto_market", "dw.fact_global_market", "dw.fact_market_sentiment")


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
    def __init__(self, context: str) -> None:
        from kubernetes import client, config

        config.load_kube_config(context=context)
        self.core = client.CoreV1Api()
        self.apps = client.AppsV1Api()
        self.custom = client.CustomObjectsApi()
        from cryptolake.pipeline import default

        self.spec = default().kubernetes
        self.jobs = self.spec.namespace

    # -- the sandbox ------------------------------------------------------------------------------------------
    def deploy_sandbox(self, image: str, timeout: float) -> str:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        labels = SANDBOX_LABELS
        try:
            self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=SANDBOX_NAMESPACE)))
        except ApiException as exc:
            if exc.status != 409:
                raise
        container = client.V1Container(
            name="sandbox", image=image, image_pull_policy="IfNotPresent",
            args=["sandbox", "serve", "--host", "0.0.0.0", "--port", str(SANDBOX_PORT)],
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
            text = self.cluster.core.read_namespaced_pod_log(name, self.cluster.jobs,
                                                              container=self.CONTAINERS[kind],
                                                              limit_bytes=4 * 1024 * 1024)
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


def run_dag(cluster: Cluster, dag: str, timeout: float) -> tuple[str, dict[str, str]]:
    """Follow a run of `dag` and its SparkApplications; return the run's final state and the last state seen of
    each SparkApplication. `init` runs by itself after the install (the DAGs start active and its schedule is
    @once): its first run is followed; any other DAG is triggered in the scheduler pod."""
    scheduler = cluster.pod(AIRFLOW_NAMESPACE, "component=scheduler")
    airflow = ["airflow", "dags"]
    run_id = None
    if dag != "init":
        run_id = f"e2e-{dag}-{time.strftime('%Y%m%dT%H%M%S')}"
        cluster.exec(AIRFLOW_NAMESPACE, scheduler, "scheduler", [*airflow, "trigger", dag, "--run-id", run_id])
        log(f"triggered {dag} ({run_id})")
    seen: dict[str, str] = {}

    def probe():
        for name, state in cluster.spark_applications().items():
            if name.startswith(f"cryptolake-{dag}-") and seen.get(name) != state:
                log(f"SparkApplication {name}: {state}")
                seen[name] = state
        runs = json.loads(cluster.exec(AIRFLOW_NAMESPACE, scheduler, "scheduler",
                                       [*airflow, "list-runs", dag, "--output", "json"]) or "[]")
        state = next((r.get("state") for r in runs if run_id is None or r.get("run_id") == run_id), None)
        return state if state in ("success", "failed") else None

    return wait_until(f"DAG {dag} run {run_id} finished", timeout, probe, interval=10), seen


def warehouse_counts(cluster: Cluster) -> dict[str, int]:
    import sqlalchemy

    # the loader's login reads dw (the owner's URL is only in the admin Secret)
    secret = cluster.core.read_namespaced_secret(cluster.spec.secrets["load"], cluster.jobs)
    url = sqlalchemy.engine.make_url(base64.b64decode(secret.data["WAREHOUSE_URL"]).decode())
    pod, port = cluster.service_pod("postgres", url.port or 5432)
    forward = cluster.port_forward(pod, port)
    try:
        engine = sqlalchemy.create_engine(url.set(host="127.0.0.1", port=forward.local_port))
        with engine.connect() as connection:
            return {t: connection.execute(sqlalchemy.text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in WAREHOUSE_TABLES}
    finally:
        forward.close()


def history_applications(cluster: Cluster, port: int, timeout: float) -> list[str]:
    pod, target = cluster.service_pod("history", port)
    forward = cluster.port_forward(pod, target)
    try:
        def probe():
            url = f"http://127.0.0.1:{forward.local_port}/api/v1/applications?status=completed"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    names = [app["name"] for app in json.load(response)]
            except OSError as exc:  # not listening yet, or the relay dropped: ask again
                log(f"History Server: {exc}")
                return None
            wanted = [n for n in names if "10x" in n and ("transform" in n or "load" in n)]
            return names if len({("transform" if "transform" in n else "load") for n in wanted}) == 2 else None
        return wait_until("transform and load of 10x in the History Server", timeout, probe, interval=10)
    finally:
        forward.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", default="cryptolake", help="kind cluster name (context kind-<name>)")
    parser.add_argument("--skip-build", action="store_true", help="use the cluster and images as they are")
    parser.add_argument("--skip-deploy", action="store_true", help="use the releases as they are")
    parser.add_argument("--timeout-pods", type=float, default=900, help="seconds for every pod to be Ready")
    parser.add_argument("--timeout-init", type=float, default=2700, help="seconds for the init DAG run")
    parser.add_argument("--timeout-10x", type=float, default=1800, help="seconds for the 10x DAG run")
    parser.add_argument("--history-port", type=int, default=18080, help="the History Server Service's port")
    parser.add_argument("--print-images", action="store_true",
                        help="print the extract, spark, sandbox and airflow image tags on one line and exit")
    args = parser.parse_args(argv)
    if args.print_images:
        tags = images()
        print(tags["extract"], tags["spark"], tags["sandbox"], tags["airflow"])
        return 0

    from cryptolake.services.sandbox import DEFAULT_API_KEY  # the key the sandbox accepts by default

    tags = images()
    if not args.skip_build:
        make("kind-up", "images", "kind-load", KIND_CLUSTER=args.cluster)
    cluster = Cluster(f"kind-{args.cluster}")
    sandbox_url = cluster.deploy_sandbox(tags["sandbox"], timeout=300)
    log(f"sandbox at {sandbox_url}")
    if not args.skip_deploy:
        # The Secrets are made by `make deploy` (charts/kind-secrets.sh), with the sandbox's key as CMC_API_KEY;
        # the extractors' egress to the sandbox is in values-kind.yaml (networkPolicy.extractEgress).
        make("deploy", environment={"CMC_API_KEY": DEFAULT_API_KEY}, KIND_CLUSTER=args.cluster,
             DEPLOY_ARGS=f"--set-string config.env.CMC_BASE_URL={sandbox_url}")
    cluster.wait_for_pods([cluster.jobs, SPARK_OPERATOR_NAMESPACE, AIRFLOW_NAMESPACE], args.timeout_pods)

    failures: list[str] = []
    keeper = LogKeeper(cluster)
    timeouts = {"init": args.timeout_init, "10x": args.timeout_10x}
    for dag in DAGS:
        state, apps = run_dag(cluster, dag, timeouts[dag])
        log(f"DAG {dag}: {state}; SparkApplications seen: {apps or 'none'}")
        if state != "success":
            failures.append(f"DAG {dag} ended {state}")
        for step in ("transform", "load"):
            if not any(name.startswith(f"cryptolake-{dag}-{step}") for name in apps):
                failures.append(f"no SparkApplication cryptolake-{dag}-{step}* was seen during the {dag} run")
    keeper.stop()

    for dag in DAGS:
        kept = {pod: v for pod, v in keeper.logs.items() if v[1].get("cryptolake/group") == dag}
        checks = {"extract": [v for v in kept.values() if v[0] == "extract"],
                  "transform": [v for v in kept.values()
                                if v[0] == "driver" and v[1].get("app.kubernetes.io/component") == "spark-transform"],
                  "load": [v for v in kept.values()
                           if v[0] == "driver" and v[1].get("app.kubernetes.io/component") == "spark-load"]}
        for what, entries in checks.items():
            records = [r for _, _, text in entries for r in json_lines_with_run_id(text)]
            log(f"{dag} {what}: {len(entries)} pod log(s), {len(records)} JSON lines with a run_id"
                + (f"; last: {json.dumps(records[-1])[:300]}" if records else ""))
            if not records:
                failures.append(f"no {what} log of the {dag} run had a JSON line with a run_id")

    counts = warehouse_counts(cluster)
    log("warehouse rows: " + ", ".join(f"{t}={n}" for t, n in counts.items()))
    failures += [f"{t} is empty after init + 10x" for t, n in counts.items() if n == 0]

    names = history_applications(cluster, args.history_port, timeout=300)
    log(f"History Server applications: {names}")

    for failure in failures:
        print(f"e2e-kind FAILED: {failure}", file=sys.stderr)
    log("e2e-kind passed" if not failures else f"e2e-kind: {len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
