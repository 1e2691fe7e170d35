"""dags/ as Airflow loads it, for both backends: the DAGs the spec asks for, in the shape and with the policy it
declares."""

from __future__ import annotations

import builtins
import io
import pathlib
from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk import TriggerRule

from cryptolake.services.extract import registry
from tests.orchestration.conftest import BACKENDS, DAG_FOLDER, load_dagbag

DAG_IDS = {"init", "daily", "weekly", "5x", "10x", "backup", "status"}
GROUP_DAGS = ("init", "daily", "weekly", "5x", "10x")
BACKEND_DAG_IDS = {"local": DAG_IDS, "kubernetes": DAG_IDS | {"housekeeping"}}


@pytest.mark.parametrize("backend", BACKENDS)
def test_airflow_loads_the_dags_without_errors(dagbags, backend):
    bag = dagbags[backend]
    assert bag.import_errors == {}
    assert bag.captured_warnings == {}  # e.g. a task in a pool the spec does not declare
    assert set(bag.dag_ids) == BACKEND_DAG_IDS[backend]


@pytest.mark.parametrize("backend", BACKENDS)
def test_schedules_are_the_spec_crons_in_utc_and_runs_never_overlap(dagbags, spec, backend):
    bag = dagbags[backend]
    expected = {name: group.schedule.cron if group.schedule else None for name, group in spec.groups.items()}
    expected["backup"] = spec.backup_schedule.cron
    expected["status"] = spec.airflow.alerts.status_schedule.cron
    for dag_id, cron in expected.items():
        dag = bag.dags[dag_id]
        if cron is None:  # init: once by itself when the DAG appears, then on demand
            assert dag.timetable.__class__.__name__ == "OnceTimetable", dag_id
        else:
            assert (dag.timetable.expression, str(dag.timetable.timezone)) == (cron, "UTC"), dag_id
        assert dag.catchup is False and dag.max_active_runs == 1, dag_id
        # init's fixed past start makes it due at once; a scheduled DAG has none (its next slot comes first)
        assert (dag.start_date is None) == (cron is not None), dag_id
        assert cron is not None or dag.start_date.tzinfo is not None
    assert expected["init"] is None
    assert expected["10x"] == "30 10,11,12,13,14,15,16,17,18,19 * * 1,2,3,4,5"
    assert expected["status"] == "45 10,21 * * *"


def test_on_a_cluster_every_dag_starts_active_and_init_runs_first_by_itself(dagbags):
    """After `helm install` nobody has to unpause anything: the schedule runs, and init runs once at once (its
    @once timetable's first and only run is due as soon as the DAG exists). Locally Airflow's own setting
    (paused) stays, so `make airflow` starts nothing by itself."""
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction

    for dag in dagbags["kubernetes"].dags.values():
        assert dag.is_paused_upon_creation is False, dag.dag_id
    for dag in dagbags["local"].dags.values():
        assert dag.is_paused_upon_creation is None, dag.dag_id
    # the scheduler's view of it: the DAG as the DAG processor stores it
    init = DagSerialization.from_dict(DagSerialization.to_dict(dagbags["kubernetes"].dags["init"]))
    first = init.timetable.next_dagrun_info(last_automated_data_interval=None,
                                            restriction=TimeRestriction(init.start_date, None, catchup=False))
    assert first is not None and first.run_after <= init.start_date  # due the moment the scheduler sees it
    again = init.timetable.next_dagrun_info(last_automated_data_interval=first.data_interval,
                                            restriction=TimeRestriction(init.start_date, None, catchup=False))
    assert again is None  # and never again by itself
    # Every scheduled DAG waits for its next slot: none runs beside init on the empty warehouse of a new install
    scheduled = [d for name, d in dagbags["kubernetes"].dags.items() if name != "init"]
    assert scheduled
    for dag in scheduled:
        stored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        before = datetime.now(timezone.utc)
        first = stored.timetable.next_dagrun_info(last_automated_data_interval=None,
                                                  restriction=TimeRestriction(stored.start_date, None, catchup=False))
        assert first is not None and first.run_after > before, (dag.dag_id, first)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("group", GROUP_DAGS)
def test_a_group_runs_its_extractors_in_order_then_transform_load_and_post_load_sql(dagbags, spec, backend,
                                                                                    group):
    dag = dagbags[backend].dags[group]
    extractors = [job.extractor.name for job in registry.group(group, spec)]
    assert extractors[0] == "key_info"
    extract_ids = [f"extract.{name}" for name in extractors]
    assert {t.task_id for t in dag.tasks} == {*extract_ids, "transform", "load", "post_load_sql", "extract_failed"}
    assert dag.task_group_dict["extract"].children.keys() == set(extract_ids)
    # one line: each step's only upstream is the one before it
    line = [*extract_ids, *(app for app in spec.spark_apps), "post_load_sql"]
    assert list(spec.spark_apps) == ["transform", "load"]
    for before, after in zip(line, line[1:]):
        assert dag.get_task(after).upstream_task_ids == {before}, after
    assert dag.get_task(extract_ids[0]).upstream_task_ids == set()
    # one endpoint's outage does not stop the others, nor the tables they feed; the run still fails
    rules = {t.task_id: TriggerRule(t.trigger_rule).value for t in dag.tasks}
    assert rules[extract_ids[0]] == "all_success"
    assert {rules[i] for i in extract_ids[1:]} <= {"all_done"}
    assert rules["transform"] == "all_done" and rules["load"] == rules["post_load_sql"] == "all_success"
    watcher = dag.get_task("extract_failed")
    assert TriggerRule(watcher.trigger_rule).value == "one_failed" and watcher.upstream_task_ids == set(extract_ids)
    assert watcher.downstream_task_ids == set()


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_extract_task_takes_the_api_pool_and_every_task_has_retries_and_a_timeout(dagbags, spec, backend):
    policy = spec.airflow
    for dag in dagbags[backend].dags.values():
        assert dag.default_args["owner"] == policy.owner
        for task in dag.tasks:
            assert task.execution_timeout is not None and task.execution_timeout > timedelta(0), task.task_id
            if task.task_id == "extract_failed":
                assert task.retries == 0  # it only reports; retrying would not change the outcome
                continue
            if dag.dag_id == "housekeeping":  # one API call's worth of work: a short timeout of its own
                assert task.retries == policy.retries and task.pool != policy.api_pool
                continue
            assert task.retries == policy.retries
            assert task.retry_delay == timedelta(minutes=policy.retry_delay_minutes)
            assert task.retry_exponential_backoff == 2.0
            assert task.max_retry_delay == timedelta(minutes=policy.max_retry_delay_minutes)
            assert task.owner == policy.owner
            kind = ("extract" if task.task_id.startswith("extract.") else "sql" if task.task_id == "post_load_sql"
                    else dag.dag_id if dag.dag_id in ("backup", "status") else "spark")
            assert task.execution_timeout == timedelta(minutes=policy.timeout_minutes[kind]), task.task_id
            if kind == "extract":
                assert (task.pool, task.pool_slots) == (policy.api_pool, 1), task.task_id
            else:
                assert task.pool != policy.api_pool, task.task_id


@pytest.mark.parametrize("backend", BACKENDS)
def test_post_load_sql_runs_the_spec_statements_on_the_warehouse_connection(dagbags, spec, backend):
    for group in GROUP_DAGS:
        task = dagbags[backend].dags[group].get_task("post_load_sql")
        assert type(task).__name__ == "SQLExecuteQueryOperator"
        assert task.conn_id == spec.airflow.warehouse_conn_id
        assert list(task.sql) == list(spec.post_load_sql) == ["CALL meta.refresh_statistics()"]
        assert task.autocommit is True


def test_the_backends_differ_only_in_what_runs_the_commands(dagbags):
    kinds = {backend: {dag_id: {t.task_id: type(t).__name__ for t in dag.tasks}
                       for dag_id, dag in dagbags[backend].dags.items()} for backend in BACKENDS}
    housekeeping = kinds["kubernetes"].pop("housekeeping")  # pods to clean up exist on a cluster only
    assert housekeeping == {"delete_expired_failed_pods": "PythonOperator"}
    assert {d: set(tasks) for d, tasks in kinds["kubernetes"].items()} == \
           {d: set(tasks) for d, tasks in kinds["local"].items()}
    daily = kinds["kubernetes"]["daily"]
    assert daily["extract.crypto_map"] == "KubernetesPodOperator"
    assert daily["transform"] == daily["load"] == "SparkKubernetesOperator"
    assert kinds["kubernetes"]["backup"]["backup"] == "KubernetesPodOperator"
    assert kinds["kubernetes"]["status"]["status"] == "StatusPodOperator"
    local = {name for dag in kinds["local"].values() for name in dag.values()}
    assert local == {"CryptolakeCommandOperator", "CryptolakeStatusOperator", "SQLExecuteQueryOperator",
                     "ExtractFailedOperator"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_docs_and_tags_say_what_runs(dagbags, spec, backend):
    for group, settings in spec.groups.items():
        dag = dagbags[backend].dags[group]
        assert settings.description in dag.doc_md
        assert f"cryptolake extract key_info --group {group}" in dag.doc_md
        assert f"cryptolake transform --group {group}" in dag.doc_md
        assert {"cryptolake", group, backend} <= set(dag.tags)
    assert "cryptolake backup" in dagbags[backend].dags["backup"].doc_md
    assert "cryptolake status --json" in dagbags[backend].dags["status"].doc_md


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_dags_survive_serialization_as_the_dag_processor_stores_them(dagbags, backend):
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in dagbags[backend].dags.values():
        back = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert set(back.task_ids) == set(dag.task_ids)
        assert {t.task_id: t.upstream_task_ids for t in back.tasks} == \
               {t.task_id: t.upstream_task_ids for t in dag.tasks}
        assert back.has_on_failure_callback  # what makes the scheduler ask the DAG processor to run it


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_dag_alerts_through_the_spec_notifier_when_a_run_fails(dagbags, spec, backend):
    from cryptolake.orchestration.alerts import AlertNotifier

    policy = spec.airflow.alerts
    for dag in dagbags[backend].dags.values():
        alert = dag.on_failure_callback
        assert isinstance(alert, AlertNotifier), dag.dag_id
        target = alert.target
        assert f"{type(target).__module__}.{type(target).__name__}" == policy.notifier
        assert (target.smtp_conn_id, target.to, target.from_email) == \
               (policy.args["smtp_conn_id"], policy.args["to"], policy.args["from_email"])
        assert alert.status_task == ("status" if dag.dag_id == "status" else None), dag.dag_id
        assert dag.on_success_callback is None and all(not t.on_failure_callback for t in dag.tasks)  # one mail
    status = dagbags[backend].dags["status"]
    assert status.task_ids == ["status"]


@pytest.mark.parametrize("notifier, args, where, says", [
    ("airflow.providers.slack.notifications.slack.SlackNotifier", {"text": "x"}, "airflow.alerts.notifier",
     "is its Airflow provider installed?"),
    ("cryptolake.pipeline.Pipeline", {}, "airflow.alerts.notifier", "is not an Airflow notifier"),
    ("airflow.providers.smtp.notifications.smtp.SmtpNotifier", {"recipients": ["a@example.com"]},
     "airflow.alerts.args", "refuses them"),
])
def test_a_notifier_that_cannot_be_built_fails_the_dags_naming_the_field(spec, notifier, args, where, says):
    import dataclasses

    from cryptolake.orchestration.dags import build_dags
    from cryptolake.pipeline import SpecError

    alerts = dataclasses.replace(spec.airflow.alerts, notifier=notifier, args=args)
    bad = dataclasses.replace(spec, airflow=dataclasses.replace(spec.airflow, alerts=alerts))
    with pytest.raises(SpecError) as caught:
        build_dags(bad, "local")
    assert caught.value.where == where and says in str(caught.value)


def test_a_bad_backend_is_a_clear_import_error_and_the_default_follows_the_cluster():
    from cryptolake.errors import CryptolakeError
    from cryptolake.orchestration.dags import backend_from_env

    bag = load_dagbag("k8s")
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert "CRYPTOLAKE_DAG_BACKEND='k8s' is not a DAG backend" in error and "kubernetes or local" in error
    with pytest.raises(CryptolakeError, match="kubernetes or local"):
        backend_from_env({"CRYPTOLAKE_DAG_BACKEND": "Local"})
    assert backend_from_env({}) == "local"
    assert backend_from_env({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) == "kubernetes"
    assert backend_from_env({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "CRYPTOLAKE_DAG_BACKEND": "local"}) == "local"


def test_parsing_the_dag_file_reads_no_file(dagbags, monkeypatch):
    """The modules are imported by now; the file itself must open nothing (the spec is a literal in it)."""
    source = (DAG_FOLDER / "cryptolakehouse.py").read_text()
    code = compile(source, str(DAG_FOLDER / "cryptolakehouse.py"), "exec")
    opened = []

    def refuse(*args, **kwargs):
        opened.append(args[:1])
        raise AssertionError(f"file I/O while parsing the DAG file: {args[:1]}")

    monkeypatch.setenv("CRYPTOLAKE_DAG_BACKEND", "kubernetes")
    for target, name in ((builtins, "open"), (io, "open"), (pathlib.Path, "open"), (pathlib.Path, "read_text")):
        monkeypatch.setattr(target, name, refuse)
    namespace = {"__file__": str(DAG_FOLDER / "cryptolakehouse.py"), "__name__": "cryptolakehouse_parse_check"}
    exec(code, namespace)
    monkeypatch.undo()
    assert opened == []
    assert {name for name, value in namespace.items() if type(value).__name__ == "DAG"} == \
        BACKEND_DAG_IDS["kubernetes"]
