"""The Airflow DAGs, built from the pipeline spec: one per frequency group (init, daily, weekly, 5x, 10x),
`backup`, `status` (`cryptolake status` on a schedule) and on the kubernetes backend `housekeeping` (failed
pods removed after the retention). A failed run of any of them alerts a person (alerts.py: the spec's notifier,
SMTP by default).

A group's DAG runs its extractors (TaskGroup `extract`, one task each, in the registry's run order), then its
Spark applications in the spec's order (transform, load), then the post-load SQL on the warehouse connection.
Two backends run the same commands (commands.py):
- kubernetes: a KubernetesPodOperator per extractor on the extract image, a SparkKubernetesOperator per Spark
  app submitting the rendered manifests/spark/<group>-<app>.yaml, the backup and the status check as pods on the
  Spark image;
- local: CryptolakeCommandOperator (local.py), the same argv as a subprocess of the worker.
Building the DAGs does no I/O and builds no extractor: the registry's extractors are module-level declarations.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from airflow.sdk import DAG, BaseOperator, CronTriggerTimetable, TaskGroup, TriggerRule, chain
from airflow.sdk.exceptions import AirflowFailException

from cryptolake.errors import CryptolakeError
from cryptolake.orchestration import commands
from cryptolake.orchestration.alerts import AlertNotifier, load_notifier
from cryptolake.orchestration.render import SPARK_UID, manifest_name
from cryptolake.pipeline import Pipeline, Schedule

BACKENDS = ("kubernetes", "local")
BACKEND_ENV = "CRYPTOLAKE_DAG_BACKEND"
BACKUP_DAG = "backup"
HOUSEKEEPING_DAG = "housekeeping"  # kubernetes backend only: failed pods removed after the retention
HOUSEKEEPING_CRON = "0 6 * * *"  # daily, before the first group of a weekday
STATUS_DAG = "status"
EXTRACT_GROUP = "extract"  # the TaskGroup of a group's extractor tasks
EXTRACT_FAILED = "extract_failed"
POST_LOAD_SQL = "post_load_sql"
START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)  # init's: fixed and in the past; catchup is off
RETRY_BACKOFF = 2.0  # each retry waits twice as long as the one before, up to max_retry_delay
ONCE = "@once"


def backend_from_env(environ: Mapping[str, str] | None = None) -> str:
    """CRYPTOLAKE_DAG_BACKEND, else kubernetes inside a cluster (KUBERNETES_SERVICE_HOST set), else local."""
    environ = os.environ if environ is None else environ
    value = environ.get(BACKEND_ENV, "").strip()
    if not value:
        return "kubernetes" if environ.get("KUBERNETES_SERVICE_HOST") else "local"
    if value not in BACKENDS:
        raise CryptolakeError(f"{BACKEND_ENV}={value!r} is not a DAG backend",
                              f"Set it to {' or '.join(BACKENDS)}, or unset it (kubernetes inside a cluster, "
                              "local elsewhere)")
    return value


def build_dags(spec: Pipeline, backend: str, manifest_dir: str | None = None) -> dict[str, DAG]:
    """Every DAG by dag_id. `manifest_dir` (the kubernetes backend's SparkApplication manifests,
    manifests/spark of the repository) is where SparkKubernetesOperator finds `<group>-<app>.yaml`."""
    if backend not in BACKENDS:
        raise CryptolakeError(f"unknown DAG backend {backend!r}", f"Choose {' or '.join(BACKENDS)}")
    if backend == "kubernetes" and not manifest_dir:
        raise CryptolakeError("the kubernetes DAG backend needs the directory of the SparkApplication manifests",
                              "Pass manifest_dir (dags/cryptolakehouse.py passes manifests/spark)")
    tasks = _KubernetesTasks(spec) if backend == "kubernetes" else _LocalTasks(spec)
    notifier = load_notifier(spec)
    alert = AlertNotifier(notifier)
    dags = {name: _group_dag(spec, name, tasks, backend, manifest_dir, alert) for name in spec.groups}
    dags[BACKUP_DAG] = _backup_dag(spec, tasks, backend, alert)
    dags[STATUS_DAG] = _status_dag(spec, tasks, backend, AlertNotifier(notifier, status_task=STATUS_DAG))
    if backend == "kubernetes":
        dags[HOUSEKEEPING_DAG] = _housekeeping_dag(spec, alert)
    return dags


def default_args(spec: Pipeline) -> dict[str, Any]:
    policy = spec.airflow
    return {"owner": policy.owner, "retries": policy.retries,
            "retry_delay": timedelta(minutes=policy.retry_delay_minutes),
            "retry_exponential_backoff": RETRY_BACKOFF,
            "max_retry_delay": timedelta(minutes=policy.max_retry_delay_minutes)}


def _timeout(spec: Pipeline, kind: str) -> timedelta:
    return timedelta(minutes=spec.airflow.timeout_minutes[kind])


def _schedule(schedule: Schedule | None) -> CronTriggerTimetable | str | None:
    # The spec's times are UTC whatever the deployment's default timezone. A group without a schedule (init)
    # runs once by itself when its DAG first appears, and on demand after that.
    return ONCE if schedule is None else _cron(schedule.cron)


def _cron(expression: str) -> CronTriggerTimetable:
    # run_immediately=0: never the slot just missed when the DAG appears. False would still run a slot missed by
    # less than a tenth of the gap (Airflow 3.3 treats False like None), e.g. a backup minutes after an install.
    return CronTriggerTimetable(expression, timezone="UTC", run_immediately=timedelta(0))


def _start_date(schedule: Schedule | None) -> datetime | None:
    """init (@once) starts at a fixed past date, so it is due the moment the DAG appears. A scheduled DAG has none:
    its first run is then its next slot after it appears (_cron). With a
    past start date Airflow runs the latest missed slot at once, so a fresh install ran daily, 10x, backup and the
    status check beside init, on an empty warehouse."""
    return START_DATE if schedule is None else None


def _paused_upon_creation(backend: str) -> bool | None:
    """On a cluster the DAGs start active: a deployment runs its schedule (init first, at once) without anyone
    unpausing it. The local backend keeps Airflow's setting (paused by default): `make airflow` on a laptop
    starts nothing by itself."""
    return False if backend == "kubernetes" else None


class ExtractFailedOperator(BaseOperator):
    """Fails the DAG run when any extract task failed.

    Transform, load and post-load SQL run anyway (trigger rule all_done), so post_load_sql alone would decide
    the run's state and an extractor's failure would end in a green run; this leaf keeps it red.
    """

    ui_color = "#f2d7d5"

    def execute(self, context: Any) -> None:
        raise AirflowFailException("an extract task failed (see the extract group's logs); the Spark apps and "
                                   "post-load SQL ran on what the other extractors wrote")


def _group_dag(spec: Pipeline, name: str, tasks: "_Tasks", backend: str, manifest_dir: str | None,
               alert: AlertNotifier) -> DAG:
    from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

    from cryptolake.services.extract.registry import group as group_jobs

    group = spec.groups[name]
    extractors = [job.extractor.name for job in group_jobs(name, spec)]
    with DAG(
        dag_id=name,
        description=group.description,
        schedule=_schedule(group.schedule),
        start_date=_start_date(group.schedule),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=_paused_upon_creation(backend),
        default_args=default_args(spec),
        doc_md=_group_doc(spec, name, extractors, backend),
        tags=["cryptolake", name, "extract", "spark", backend],
        template_searchpath=[manifest_dir] if manifest_dir else None,
        on_failure_callback=alert,
    ) as dag:
        with TaskGroup(EXTRACT_GROUP, tooltip="one task per extractor, in run order") as extract_group:
            # In the registry's run order: key_info first (it records the month's credits), the maps before
            # what reads their ids. All share the API pool, so groups running at once take turns on the API.
            # After the first, each runs whatever happened before it (all_done): one endpoint's outage must
            # not stop the others.
            extract_tasks = [tasks.extract(extractor, name, trigger_rule=(
                TriggerRule.ALL_SUCCESS if i == 0 else TriggerRule.ALL_DONE)) for i, extractor in enumerate(extractors)]
            chain(*extract_tasks)
        # Transform runs when extraction is over, even if an extractor failed (all_done): the tables of the
        # extractors that worked are still refreshed, so one API outage does not starve the rest. The failure
        # still fails the run through extract_failed.
        spark_tasks = [tasks.spark(app, name, trigger_rule=TriggerRule.ALL_DONE if i == 0 else
                                   TriggerRule.ALL_SUCCESS) for i, app in enumerate(spec.spark_apps)]
        post_load = SQLExecuteQueryOperator(
            task_id=POST_LOAD_SQL, conn_id=spec.airflow.warehouse_conn_id, sql=list(spec.post_load_sql),
            autocommit=True,  # procedures may commit themselves, which a transaction block refuses
            split_statements=False, do_xcom_push=False, execution_timeout=_timeout(spec, "sql"))
        chain(extract_group, *spark_tasks, post_load)
        extract_tasks >> ExtractFailedOperator(task_id=EXTRACT_FAILED, trigger_rule=TriggerRule.ONE_FAILED,
                                               retries=0, execution_timeout=timedelta(minutes=1))
    return dag


def _backup_dag(spec: Pipeline, tasks: "_Tasks", backend: str, alert: AlertNotifier) -> DAG:
    with DAG(
        dag_id=BACKUP_DAG,
        description="Warehouse backup (pg_dump) to the lake's gold layer.",
        schedule=_schedule(spec.backup_schedule),
        start_date=_start_date(spec.backup_schedule),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=_paused_upon_creation(backend),
        default_args=default_args(spec),
        doc_md=(f"Dumps the warehouse to the lake's gold layer: `{' '.join(commands.backup())}` "
                f"(prints the backup id; `cryptolake restore <id>` restores it). Backend: {backend}. "
                f"Schedule (UTC): `{spec.backup_schedule.cron}`.\n\n"
                "Generated from cryptolake/pipeline.yaml; see docs/orchestration.md."),
        tags=["cryptolake", BACKUP_DAG, backend],
        on_failure_callback=alert,
    ) as dag:
        tasks.backup()
    return dag


def _status_dag(spec: Pipeline, tasks: "_Tasks", backend: str, alert: AlertNotifier) -> DAG:
    schedule = spec.airflow.alerts.status_schedule
    with DAG(
        dag_id=STATUS_DAG,
        description="Warehouse health: alerts when a table is stale, failing or never loaded.",
        schedule=_schedule(schedule),
        start_date=_start_date(schedule),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=_paused_upon_creation(backend),
        default_args=default_args(spec),
        doc_md=(f"Runs `{' '.join(commands.status())}` (docs/status.md). When a table is stale, failing or never "
                "loaded (exit status 3) the task fails without retry and the run's alert names those tables. "
                f"Backend: {backend}. Schedule (UTC): `{schedule.cron}`.\n\n"
                "Generated from cryptolake/pipeline.yaml; see docs/orchestration.md."),
        tags=["cryptolake", STATUS_DAG, backend],
        on_failure_callback=alert,
    ) as dag:
        tasks.status()
    return dag


def _housekeeping_dag(spec: Pipeline, alert: AlertNotifier) -> DAG:
    from airflow.providers.standard.operators.python import PythonOperator

    k8s = spec.kubernetes
    with DAG(
        dag_id=HOUSEKEEPING_DAG,
        description="Removes the pipeline's failed pods once they are older than the retention.",
        schedule=_cron(HOUSEKEEPING_CRON),
        start_date=None,  # first run at its next slot, as _start_date says
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=_paused_upon_creation("kubernetes"),
        default_args=default_args(spec),
        doc_md=(f"Deletes the failed extractor and backup pods in `{k8s.namespace}` that ended more than "
                f"{k8s.finished_retention_hours} hours ago (`kubernetes.finished_retention_hours`); until then "
                "they stay for `kubectl logs` and `describe`. SparkApplications expire by their "
                "timeToLiveSeconds. Schedule (UTC): "
                f"`{HOUSEKEEPING_CRON}`.\n\nGenerated from cryptolake/pipeline.yaml; see docs/orchestration.md."),
        tags=["cryptolake", HOUSEKEEPING_DAG, "kubernetes"],
        on_failure_callback=alert,
    ) as dag:
        PythonOperator(task_id="delete_expired_failed_pods", python_callable=_delete_expired_failed_pods,
                       op_kwargs={"namespace": k8s.namespace, "hours": k8s.finished_retention_hours},
                       execution_timeout=timedelta(minutes=10))
    return dag


def _delete_expired_failed_pods(namespace: str, hours: int) -> list[str]:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    from cryptolake.orchestration.housekeeping import delete_expired_failed_pods

    # The pod operator's connection: in a worker pod, the cluster's own API with the worker's account.
    return delete_expired_failed_pods(KubernetesHook().core_v1_client, namespace, timedelta(hours=hours))


def _group_doc(spec: Pipeline, name: str, extractors: list[str], backend: str) -> str:
    group = spec.groups[name]
    when = (f"`{group.schedule.cron}` (UTC)" if group.schedule else
            "once by itself when the DAG first appears, then on demand (trigger it by hand)")
    runs = "\n".join(f"- `{' '.join(commands.extract(e, name))}`" for e in extractors)
    apps = "\n".join(f"- `{' '.join(commands.spark_app(app, name))}`" for app in spec.spark_apps)
    sql = "\n".join(f"- `{statement}`" for statement in spec.post_load_sql)
    return (f"{group.description}\n\nSchedule: {when}. Backend: {backend}.\n\n"
            f"Extract, one task each, in this order, through the `{spec.airflow.api_pool}` pool:\n{runs}\n\n"
            f"Then the Spark applications (transform runs even if an extractor failed; `{EXTRACT_FAILED}` "
            f"then fails the run):\n{apps}\n\n"
            f"Then on the `{spec.airflow.warehouse_conn_id}` connection:\n{sql}\n\n"
            "Generated from cryptolake/pipeline.yaml; see docs/orchestration.md.")


class _Tasks(ABC):
    """Makes a DAG's command tasks; each backend decides what runs the command."""

    def __init__(self, spec: Pipeline):
        self.spec = spec

    @abstractmethod
    def extract(self, extractor: str, group: str, **kwargs: Any) -> BaseOperator: ...

    @abstractmethod
    def spark(self, app: str, group: str, **kwargs: Any) -> BaseOperator: ...

    @abstractmethod
    def backup(self) -> BaseOperator: ...

    @abstractmethod
    def status(self) -> BaseOperator: ...

    def _extract_common(self) -> dict[str, Any]:
        return {"pool": self.spec.airflow.api_pool, "pool_slots": 1, "execution_timeout": _timeout(self.spec, "extract")}


class _LocalTasks(_Tasks):
    def extract(self, extractor: str, group: str, **kwargs: Any) -> BaseOperator:
        from cryptolake.orchestration.local import CryptolakeCommandOperator

        return CryptolakeCommandOperator(task_id=extractor, argv=commands.extract(extractor, group),
                                         **self._extract_common(), **kwargs)

    def spark(self, app: str, group: str, **kwargs: Any) -> BaseOperator:
        from cryptolake.orchestration.local import CryptolakeCommandOperator

        return CryptolakeCommandOperator(task_id=app, argv=commands.spark_app(app, group),
                                         execution_timeout=_timeout(self.spec, "spark"), **kwargs)

    def backup(self) -> BaseOperator:
        from cryptolake.orchestration.local import CryptolakeCommandOperator

        return CryptolakeCommandOperator(task_id=BACKUP_DAG, argv=commands.backup(),
                                         execution_timeout=_timeout(self.spec, "backup"))

    def status(self) -> BaseOperator:
        from cryptolake.orchestration.local import CryptolakeStatusOperator

        return CryptolakeStatusOperator(task_id=STATUS_DAG, argv=commands.status(),
                                        execution_timeout=_timeout(self.spec, "status"))


class _KubernetesTasks(_Tasks):
    def extract(self, extractor: str, group: str, **kwargs: Any) -> BaseOperator:
        k8s = self.spec.kubernetes
        resources = k8s.extract_resources
        return self._pod(
            task_id=extractor, name=f"cryptolake-{group}-{extractor.replace('_', '-')}",
            image=k8s.images["extract"], argv=commands.extract(extractor, group), run_as_user=None,
            secret=k8s.secrets["extract"],
            labels={"app.kubernetes.io/component": "extract", "cryptolake/group": group,
                    "cryptolake/extractor": extractor},
            resources=(resources["cpu"], resources["memory"], resources["memory_limit"]),
            **self._extract_common(), **kwargs)

    def backup(self) -> BaseOperator:
        # The Spark image has the warehouse extra and pg_dump; its USER is a name, so the uid is given.
        k8s = self.spec.kubernetes
        resources = k8s.extract_resources
        return self._pod(
            task_id=BACKUP_DAG, name="cryptolake-backup", image=k8s.images["spark"], argv=commands.backup(),
            run_as_user=SPARK_UID, secret=k8s.secrets["backup"], labels={"app.kubernetes.io/component": "backup"},
            resources=(resources["cpu"], resources["memory"], resources["memory_limit"]),
            execution_timeout=_timeout(self.spec, "backup"))

    def status(self) -> BaseOperator:
        # Like the backup, and with its credentials: the Spark image has the warehouse extra, and the status only
        # reads (the warehouse as the read-only backup login, the lake's ledger).
        from cryptolake.orchestration.status_pod import StatusPodOperator

        k8s = self.spec.kubernetes
        resources = k8s.extract_resources
        return self._pod(
            task_id=STATUS_DAG, name="cryptolake-status", image=k8s.images["spark"], argv=commands.status(),
            run_as_user=SPARK_UID, secret=k8s.secrets["backup"], labels={"app.kubernetes.io/component": "status"},
            resources=(resources["cpu"], resources["memory"], resources["memory_limit"]),
            execution_timeout=_timeout(self.spec, "status"), operator=StatusPodOperator)

    def spark(self, app: str, group: str, **kwargs: Any) -> BaseOperator:
        from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator

        # The manifest file is found on the DAG's template_searchpath (manifests/spark) and read when the DAG
        # is loaded; non-deferrable and without XCom (known provider bugs), the driver's log in the task log.
        # The application is not deleted when it ends: a failed one stays for inspection until the operator
        # removes it after its timeToLiveSeconds (the spec's finished_retention_hours).
        return SparkKubernetesOperator(
            task_id=app, namespace=self.spec.kubernetes.namespace, application_file=manifest_name(group, app),
            get_logs=True, delete_on_termination=False, log_events_on_failure=True, do_xcom_push=False,
            deferrable=False,
            execution_timeout=_timeout(self.spec, "spark"), **kwargs)

    def _pod(self, *, task_id: str, name: str, image: str, argv: list[str], run_as_user: int | None, secret: str,
             labels: dict[str, str], resources: tuple[str, str, str], operator: type | None = None,
             **kwargs: Any) -> BaseOperator:
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from kubernetes.client import models as k8s

        placement = self.spec.kubernetes
        cpu, memory, memory_limit = resources
        return (operator or KubernetesPodOperator)(
            task_id=task_id, name=name, namespace=placement.namespace, image=image,
            cmds=argv[:1], arguments=argv[1:],
            # Settings from the chart's ConfigMap, credentials from this component's own Secret: no value is in
            # the DAG, and no pod gets another component's credentials.
            env_from=[k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=placement.config_map)),
                      k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret))],
            container_resources=k8s.V1ResourceRequirements(requests={"cpu": cpu, "memory": memory},
                                                           limits={"memory": memory_limit}),
            labels={"app.kubernetes.io/name": "cryptolake", "app.kubernetes.io/part-of": "cryptolakehouse",
                    **labels},
            # Pod Security "restricted"; the root filesystem is read-only, so /tmp is an emptyDir.
            security_context=k8s.V1PodSecurityContext(
                run_as_non_root=True, run_as_user=run_as_user, run_as_group=run_as_user,
                seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault")),
            container_security_context=k8s.V1SecurityContext(
                allow_privilege_escalation=False, read_only_root_filesystem=True, run_as_non_root=True,
                capabilities=k8s.V1Capabilities(drop=["ALL"])),
            volumes=[k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource())],
            volume_mounts=[k8s.V1VolumeMount(name="tmp", mount_path="/tmp")],
            automount_service_account_token=False,  # the commands never call the Kubernetes API
            # A failed pod stays for inspection (the housekeeping DAG removes it after finished_retention_hours);
            # its events go to the task log, as do a starting pod's (why it is Pending).
            on_finish_action="delete_succeeded_pod", log_events_on_failure=True, get_logs=True, deferrable=False,
            **kwargs)
