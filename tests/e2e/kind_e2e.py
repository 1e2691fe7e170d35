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
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repository's `tests` package

from tests.e2e.harness import (  # noqa: E402
    AIRFLOW_NAMESPACE, DAGS, SPARK_OPERATOR_NAMESPACE, Cluster, LogKeeper, images, json_lines_with_run_id, log,
    make, wait_until,
)

# The tables a 10x cycle (after init) must have filled, a dimension and the group's facts.
WAREHOUSE_TABLES = ("dw.dim_crypto_id", "dw.fact_crypto_market", "dw.fact_global_market", "dw.fact_market_sentiment")


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
