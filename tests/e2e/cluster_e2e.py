"""End to end on the real single-node cluster (`make e2e-cluster`, run by .ci/run; pytest does not collect this
file). Everything is real: the node of cluster/node, the images built from the repo's Dockerfiles, the Spark
Operator built from source, NetworkPolicies enforced, the chart installed by helm, Airflow on this machine with
the kubernetes backend. Each wait is bounded.

  1. `make cluster-deploy`: node up, images built and imported, the add-ons (network policies, Spark Operator),
     namespaces and Secrets, the cryptolake chart (values-node.yaml) with `--wait`, then `helm test`; the sandbox
     API as a Deployment in namespace cmc-sandbox first, so the chart's CMC_BASE_URL points at it;
  2. Airflow standalone here (`cryptolake local airflow --kubeconfig`): `init` runs by itself (@once, active on
     the kubernetes backend), then `10x` is triggered; its transform driver is killed once it has logged its
     first JSON line (inside the step), and Airflow's retry has to finish the run;
  3. checks, each a line when it fails:
     - every extractor ran as a pod, every Spark app as a driver with executor pods;
     - extractor and driver logs (the API `kubectl logs` reads) have JSON lines with a run_id; no log holds a
       value of any Secret of the jobs or Airflow namespace;
     - the fault matrix's independent check (tests/reliability/check.py): served = bronze = silver = warehouse,
       nothing lost or duplicated, the killed run accounted for;
     - the History Server's REST API lists the transform and load applications of 10x;
     - `cryptolake status --json` as a Job in the cluster reports the 10x tables fresh.
The node and the release stay up afterwards (`make cluster-down` removes them), for a person to look around.
Exit status 0 when every check passed; otherwise 1, after a line per failed check.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repository's `tests` package

from tests.e2e.harness import (  # noqa: E402
    AIRFLOW_NAMESPACE, REPO, SANDBOX_NAME, SANDBOX_NAMESPACE, SANDBOX_PORT, Cluster, LogKeeper, images,
    json_lines_with_run_id, log, make, wait_until,
)

DEFAULT_STATE = REPO / ".local" / "e2e-cluster"  # Airflow's home and metadata database (a local PostgreSQL)
AIRFLOW_PORT = 18295  # not 18290: the test suite's Airflow (tests/orchestration) may run at the same time
METADATA_PG_PORT = 25632  # no port the test suite uses (25432, 25532)
STATUS_JOB = "cryptolake-e2e-status"
# A smaller market than the sandbox's default and a paid plan's rate limit (its key_info tells the extractors):
# init's exchange_assets would otherwise spend 20 minutes at the free plan's 30 requests a minute.
SANDBOX_MARKET = ("--coins", "2000", "--exchanges", "100", "--categories", "60", "--rate-limit", "600")


def kubeconfig() -> Path:
    """The node's admin kubeconfig, where `make cluster-up` writes it (`make cluster-status` prints it)."""
    found = subprocess.run(["make", "--no-print-directory", "-s", "cluster-kubeconfig"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.strip()
    return Path(found)


class Airflow:
    """Airflow on this machine, on the cluster; its CLI for runs and task states."""

    def __init__(self, state_dir: Path, config: Path) -> None:
        from cryptolake.local.airflow import ClusterAirflow
        from cryptolake.local.stack import LocalStack

        # ports of its own: a local stack (15432) or the test stack (25432) may be running beside it
        self.local = ClusterAirflow(LocalStack(state_dir, pg_port=METADATA_PG_PORT), config, port=AIRFLOW_PORT)

    def start(self) -> None:
        self.local.up()
        self.env = self.local.env()

    def cli(self, *args: str) -> str:
        done = subprocess.run([self.local.executable(), *args], env=self.env, capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-1500:]}")
        return done.stdout

    def stop(self) -> None:
        """Airflow and its metadata database stop with the run (`make cluster-airflow` starts one again); the
        node and the release stay."""
        self.local.down()
        self.local.stack.postgres.down()

    def tries(self, dag: str, run_id: str) -> dict[str, int]:
        """Each task's number of tries in the run, from Airflow's metadata database (the CLI does not list it)."""
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.local.stack.postgres.url(self.local.metadata_database))
        try:
            with engine.connect() as connection:
                return dict(connection.execute(sqlalchemy.text(
                    "SELECT task_id, try_number FROM task_instance WHERE dag_id = :dag AND run_id = :run"),
                    {"dag": dag, "run": run_id}).all())
        finally:
            engine.dispose()

    def cli_json(self, *args: str) -> list[dict]:
        """A listing's JSON: its last line (Airflow prints warnings, e.g. about graphviz, on stdout before it)."""
        lines = [line for line in self.cli(*args, "--output", "json").splitlines() if line.startswith("[")]
        return json.loads(lines[-1]) if lines else []

    def runs(self, dag: str) -> list[dict]:
        return self.cli_json("dags", "list-runs", dag)

    def task_states(self, dag: str, run_id: str) -> list[dict]:
        return self.cli_json("tasks", "states-for-dag-run", dag, run_id)


def follow(cluster: Cluster, airflow: Airflow, dag: str, timeout: float, kill_driver: str | None = None) -> dict:
    """Follow a run of `dag` to its end: init's own first run, any other DAG triggered here. With
    `kill_driver` (a Spark app), that app's first driver pod is deleted at once (grace 0) when it has logged a
    JSON line with a run_id: the step is running. Returns the run (state, run_id) and what was killed."""
    run_id = None
    if dag != "init":
        wait_until(f"DAG {dag} known to Airflow", 300, lambda: any(d.get("dag_id") == dag for d in airflow.cli_json("dags", "list")))
        run_id = f"e2e-{dag}-{time.strftime('%Y%m%dT%H%M%S')}"
        airflow.cli("dags", "trigger", dag, "--run-id", run_id)
        log(f"triggered {dag} ({run_id})")
    killed: list[str] = []

    def kill_inside_step() -> None:
        selector = f"spark-role=driver,cryptolake/group={dag},app.kubernetes.io/component=spark-{kill_driver}"
        for pod in cluster.core.list_namespaced_pod(cluster.jobs, label_selector=selector).items:
            if pod.status.phase != "Running":
                continue
            try:
                text = cluster.pod_log(pod.metadata.name, "spark-kubernetes-driver")
            except Exception:  # noqa: BLE001 (the container may not be up yet)
                continue
            if json_lines_with_run_id(text):
                cluster.core.delete_namespaced_pod(pod.metadata.name, cluster.jobs, grace_period_seconds=0)
                log(f"killed driver {pod.metadata.name} inside its step")
                killed.append(pod.metadata.name)
                return

    seen_running = []

    def probe():
        if kill_driver and not killed:
            kill_inside_step()
        runs = airflow.runs(dag)
        run = next((r for r in runs if run_id is None or r.get("run_id") == run_id), None)
        if run and run.get("state") in ("success", "failed"):
            return run
        seen_running.append(True)
        return None

    run = wait_until(f"DAG {dag} run finished", timeout, probe, interval=5)
    # A run that had ended before this process looked (init, when the e2e runs again on a deployed node) left
    # its pods' logs to an earlier watcher.
    return {**run, "killed": killed, "watched": bool(seen_running)}


def secret_values(cluster: Cluster) -> list[str]:
    """What no log may show: every secret in the Secrets of the release and of Airflow (8 characters or more),
    and the passwords inside their URLs and JSON connections, which a log could show on their own. Not the
    access key IDs: an S3 identity's name (the public half of its key pair), which is also in app names."""
    from urllib.parse import unquote, urlsplit

    values = set()
    for namespace in (cluster.jobs, AIRFLOW_NAMESPACE):
        for secret in cluster.core.list_namespaced_secret(namespace).items:
            for key, raw in (secret.data or {}).items():
                if key.endswith("ACCESS_KEY_ID"):
                    continue
                value = base64.b64decode(raw).decode(errors="replace")
                values.add(value)
                if "://" in value and urlsplit(value).password:
                    values.add(unquote(urlsplit(value).password))
                try:
                    values.add(str(json.loads(value)["password"]))
                except (ValueError, TypeError, KeyError):
                    pass
    return sorted(v for v in values if len(v) >= 8)


def service_url(cluster: Cluster, name_part: str, port: int, scheme: str = "http") -> str:
    """A Service of the jobs namespace by its ClusterIP, which this machine reaches (cluster/node routes it)."""
    for svc in cluster.core.list_namespaced_service(cluster.jobs).items:
        if name_part in svc.metadata.name and any(p.port == port for p in svc.spec.ports or []):
            return f"{scheme}://{svc.spec.cluster_ip}:{port}"
    raise RuntimeError(f"no Service *{name_part}* with port {port} in namespace {cluster.jobs}")


def lake_world(cluster: Cluster):
    """What the independent check reads, from this machine: the lake with the transform identity (it may read
    all of the bucket), the warehouse as the loader, the sandbox's served journal."""
    from cryptolake.settings import Settings
    from cryptolake.local.airflow import ClusterAirflow

    def secret(role: str) -> dict[str, str]:
        found = cluster.core.read_namespaced_secret(cluster.spec.secrets[role], cluster.jobs)
        return {k: base64.b64decode(v).decode() for k, v in (found.data or {}).items()}

    config = {k: v for k, v in cluster.core.read_namespaced_config_map(cluster.spec.config_map,
                                                                        cluster.jobs).data.items()}
    endpoint = config["AWS_ENDPOINT_URL"]
    service = endpoint.split("//", 1)[1].split(".", 1)[0]
    port = int(endpoint.rsplit(":", 1)[1].rstrip("/"))
    transform = secret("transform")
    env = {**config, "AWS_ENDPOINT_URL": service_url(cluster, service, port),
           "AWS_ACCESS_KEY_ID": transform["AWS_ACCESS_KEY_ID"],
           "AWS_SECRET_ACCESS_KEY": transform["AWS_SECRET_ACCESS_KEY"],
           "WAREHOUSE_URL": ClusterAirflow.reachable(cluster.core, secret("load")["WAREHOUSE_URL"])}
    sandbox = cluster.core.read_namespaced_service(SANDBOX_NAME, SANDBOX_NAMESPACE).spec.cluster_ip
    return SimpleNamespace(settings=Settings.load(env), sandbox=SimpleNamespace(url=f"http://{sandbox}:{SANDBOX_PORT}"),
                           outputs={})


def status_pod_spec():
    """The pod the status DAG runs (`cryptolake status --json` on the Spark image with the backup Secret), as its
    KubernetesPodOperator builds it: the DAG's own definition, not a copy of it."""
    from cryptolake.orchestration.dags import STATUS_DAG, build_dags
    from cryptolake.pipeline import default

    task = build_dags(default(), "kubernetes", str(REPO / "manifests" / "spark"))[STATUS_DAG].tasks[0]
    return task.build_pod_request_obj().spec


def status_in_cluster(cluster: Cluster, timeout: float) -> dict:
    """The status DAG's pod as a Job; the JSON its log holds."""
    from kubernetes import client

    try:
        cluster.batch.delete_namespaced_job(STATUS_JOB, cluster.jobs, propagation_policy="Foreground")
        wait_until("the previous status Job gone", 120, lambda: not cluster.batch.list_namespaced_job(
            cluster.jobs, field_selector=f"metadata.name={STATUS_JOB}").items, interval=2)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    labels = {"app.kubernetes.io/name": "cryptolake", "app.kubernetes.io/part-of": "cryptolakehouse",
              "app.kubernetes.io/component": "status"}
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name=STATUS_JOB, labels=labels),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels), spec=status_pod_spec())))
    cluster.batch.create_namespaced_job(cluster.jobs, job)

    def ended():
        status = cluster.batch.read_namespaced_job_status(STATUS_JOB, cluster.jobs).status
        return status.succeeded or status.failed
    wait_until("the status Job ended", timeout, ended, interval=3)
    pod = cluster.core.list_namespaced_pod(cluster.jobs, label_selector=f"job-name={STATUS_JOB}").items[0]
    text = cluster.pod_log(pod.metadata.name)
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {"unparsed": text[-2000:]}


def history_applications(url: str, timeout: float) -> list[str]:
    def probe():
        try:
            with urllib.request.urlopen(f"{url}/api/v1/applications?status=completed", timeout=30) as response:
                names = [app["name"] for app in json.load(response)]
        except OSError as exc:
            log(f"History Server: {exc}")
            return None
        steps = {step for step in ("transform", "load") for n in names if "10x" in n and step in n}
        return names if steps == {"transform", "load"} else None
    return wait_until("transform and load of 10x in the History Server", timeout, probe, interval=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-deploy", action="store_true", help="use the node and the releases as they are")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="Airflow's state here")
    parser.add_argument("--timeout-init", type=float, default=1500, help="seconds for the init DAG run")
    parser.add_argument("--timeout-10x", type=float, default=1200, help="seconds for the 10x DAG run")
    parser.add_argument("--history-port", type=int, default=18080, help="the History Server Service's port")
    args = parser.parse_args(argv)

    from cryptolake.services.sandbox import DEFAULT_API_KEY

    started = time.monotonic()
    tags = images()
    config = kubeconfig()
    os.environ["KUBECONFIG"] = str(config)  # also for the operators whose pods this process builds (status)
    cluster = Cluster(kubeconfig=config)
    if not args.skip_deploy:
        make("cluster-up", "cluster-images", "cluster-addons")  # `make e2e-cluster` did them: each is a no-op then
        sandbox_url = cluster.deploy_sandbox(tags["sandbox"], timeout=300, pull_policy="Never",
                                             serve_args=SANDBOX_MARKET)
        log(f"sandbox at {sandbox_url}")
        make("cluster-deploy", environment={"CMC_API_KEY": DEFAULT_API_KEY},
             DEPLOY_ARGS=f"--set-string config.env.CMC_BASE_URL={sandbox_url}")
    log(f"deployed in {time.monotonic() - started:.0f} s")

    failures: list[str] = []
    airflow = Airflow(args.state_dir, config)
    airflow.start()
    keeper = LogKeeper(cluster)
    runs = {"init": follow(cluster, airflow, "init", args.timeout_init)}
    log(f"init: {runs['init']['state']} after {time.monotonic() - started:.0f} s")
    runs["10x"] = follow(cluster, airflow, "10x", args.timeout_10x, kill_driver="transform")
    log(f"10x: {runs['10x']['state']} after {time.monotonic() - started:.0f} s")
    keeper.stop()
    task_states = {dag: airflow.task_states(dag, run["run_id"]) for dag, run in runs.items()}
    tries = airflow.tries("10x", runs["10x"]["run_id"])
    airflow.stop()

    for dag, run in runs.items():
        if run["state"] != "success":
            states = {t["task_id"]: t["state"] for t in task_states[dag]}
            failures.append(f"DAG {dag} ended {run['state']}: {states}")
    log(f"10x tries: {tries}")
    if not runs["10x"]["killed"]:
        failures.append("no 10x transform driver was killed inside its step: the retry was not exercised")
    elif not (tries.get("transform") or 0) >= 2:
        failures.append(f"the killed transform was not retried by Airflow (tries {tries.get('transform')})")

    for dag in [d for d, run in runs.items() if run["watched"]]:
        kept = {pod: v for pod, v in keeper.logs.items() if v[1].get("cryptolake/group") == dag}
        by_kind = {"extract": [v for v in kept.values() if v[0] == "extract"],
                   "transform": [v for v in kept.values() if v[0] == "driver"
                                 and v[1].get("app.kubernetes.io/component") == "spark-transform"],
                   "load": [v for v in kept.values() if v[0] == "driver"
                            and v[1].get("app.kubernetes.io/component") == "spark-load"]}
        for what, entries in by_kind.items():
            records = [r for _, _, text in entries for r in json_lines_with_run_id(text)]
            log(f"{dag} {what}: {len(entries)} pod log(s), {len(records)} JSON lines with a run_id")
            if not records:
                failures.append(f"no {what} log of the {dag} run had a JSON line with a run_id")
        executors = [pod for pod, v in keeper.executors.items() if v.get("cryptolake/group") == dag]
        if not executors:
            failures.append(f"no executor pod ran for the Spark apps of {dag}")
    secrets = secret_values(cluster)
    leaked = {pod for pod, (_, _, text) in keeper.logs.items() for value in secrets if value in text}
    log(f"secret scan: {len(keeper.logs)} pod logs against {len(secrets)} secret values")
    if not secrets or not keeper.logs:
        failures.append("the secret scan had nothing to compare")
    if leaked:
        failures.append(f"a Secret's value is in the log of {sorted(leaked)}")

    from tests.reliability.check import assert_nothing_lost, counts

    try:
        tally = assert_nothing_lost(lake_world(cluster), allow_orphans=bool(runs["10x"]["killed"]))
        log(f"independent check: {counts(tally)}")
    except AssertionError as exc:
        failures.append(f"independent check: {exc}")

    names = history_applications(service_url(cluster, "history", args.history_port), timeout=300)
    log(f"History Server applications: {names}")

    shown = status_in_cluster(cluster, timeout=300)
    stale = [t["table"] for t in shown.get("tables", []) if "10x" in t["groups"] and t["state"] != "OK"]
    log(f"status in the cluster: {shown.get('verdict', shown)}")
    if "tables" not in shown or stale:
        failures.append(f"status in the cluster: 10x tables not fresh: {stale or shown}")

    for failure in failures:
        print(f"e2e-cluster FAILED: {failure}", file=sys.stderr)
    log(("e2e-cluster passed" if not failures else f"e2e-cluster: {len(failures)} check(s) failed")
        + f" in {time.monotonic() - started:.0f} s; the node and the release stay up (`make cluster-down`)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
