"""Every command a DAG or manifest runs is a real `cryptolake` command, and the pods run it safely."""

from __future__ import annotations

import click
import pytest
import yaml

from cryptolake.cli import cli
from cryptolake.orchestration import commands
from cryptolake.services.extract import registry
from tests.orchestration.conftest import MANIFEST_DIR


def parse(argv: list[str]) -> click.Context:
    """The subcommand's context as the real CLI parses argv (usage errors raise)."""
    assert argv[0] == "cryptolake"
    with cli.make_context("cryptolake", list(argv[1:])) as group:
        name, command, rest = cli.resolve_command(group, list(argv[1:]))
        assert command is not None, argv
        return command.make_context(name, rest, parent=group)


def pod_tasks(bag) -> list:
    """The tasks that run a pod of their own (not a SparkApplication)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator

    return [task for dag in bag.dags.values() for task in dag.tasks
            if isinstance(task, KubernetesPodOperator) and not isinstance(task, SparkKubernetesOperator)]


def commands_of(bag) -> list[list[str]]:
    """Every argv the DAGs of one DagBag run (pods: cmds + arguments; local: argv; Spark: via the manifest)."""
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator

    from cryptolake.orchestration.local import CryptolakeCommandOperator

    found = [[*task.cmds, *task.arguments] for task in pod_tasks(bag)]
    for dag in bag.dags.values():
        for task in dag.tasks:
            if isinstance(task, CryptolakeCommandOperator):
                found.append(task.argv)
            elif isinstance(task, SparkKubernetesOperator):
                manifest = yaml.safe_load(task.application_file)  # read by Airflow from manifests/spark
                app = manifest["spec"]["mainApplicationFile"].rsplit("/", 1)[1].removesuffix(".py")
                found.append(["cryptolake", app, *manifest["spec"]["arguments"]])
    return found


def check_command(spec, argv: list[str]) -> None:
    ctx = parse(argv)
    if ctx.command.name == "extract":
        extractor, group = ctx.params["extractor"], ctx.params["group"]
        assert extractor in registry.EXTRACTORS
        assert registry.job(extractor, group, spec).extractor.name == extractor  # runs in that group
    elif ctx.command.name in spec.spark_apps:
        assert ctx.params["group"] in spec.groups and ctx.params["tables"] == ()
    elif ctx.command.name == "status":
        assert ctx.params == {"as_json": True}  # the status task reads the JSON
    else:
        assert argv == ["cryptolake", "backup"]


@pytest.mark.parametrize("backend", ["kubernetes", "local"])
def test_every_task_command_parses_with_the_real_cli(dagbags, spec, backend):
    found = commands_of(dagbags[backend])
    for argv in found:
        check_command(spec, argv)
    extract = sorted(tuple(a) for a in found if a[1] == "extract")
    assert extract == sorted(tuple(commands.extract(j.extractor, j.group)) for j in spec.jobs)
    spark = sorted(tuple(a) for a in found if a[1] in ("transform", "load"))
    assert spark == sorted(tuple(commands.spark_app(app, g)) for g in spec.groups for app in spec.spark_apps)
    assert found.count(["cryptolake", "backup"]) == 1
    assert found.count(commands.status()) == 1


def test_the_backends_run_identical_commands(dagbags):
    assert sorted(commands_of(dagbags["kubernetes"])) == sorted(commands_of(dagbags["local"]))


def test_the_parser_check_can_fail():
    with pytest.raises(click.UsageError):
        parse(["cryptolake", "transform", "--group", "hourly"])
    with pytest.raises(click.UsageError):
        parse(["cryptolake", "extract", "key_info", "--grop", "10x"])
    with pytest.raises(ValueError):
        commands.extract("key_info", "hourly")
    with pytest.raises(ValueError):
        commands.spark_app("optimize", "daily")


def pod_dict(task) -> dict:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(task.build_pod_request_obj(dry_run=True))


def test_extractor_pods_take_settings_and_secrets_from_the_cluster_and_run_restricted(dagbags, spec):
    k8s = spec.kubernetes
    pods = [(task, pod_dict(task)) for task in pod_tasks(dagbags["kubernetes"])]
    assert len(pods) == len(spec.jobs) + 2  # + backup, status
    for task, pod in pods:
        (container,) = pod["spec"]["containers"]
        on_spark_image = task.task_id in ("backup", "status")  # they read the warehouse
        assert container["image"] == k8s.images["spark" if on_spark_image else "extract"]
        assert pod["metadata"]["namespace"] == k8s.namespace
        # its own Secret: the extractors' holds the API key and no warehouse login, the backup's no API key; the
        # status check reads with the backup's (a read-only warehouse login)
        assert container["envFrom"] == [{"configMapRef": {"name": k8s.config_map}},
                                        {"secretRef": {"name": k8s.secrets["backup" if on_spark_image else "extract"]}}]
        assert container.get("env", []) == []  # no value in the DAG, secret or not
        assert container["resources"] == {
            "requests": {"cpu": k8s.extract_resources["cpu"], "memory": k8s.extract_resources["memory"]},
            "limits": {"memory": k8s.extract_resources["memory_limit"]}}
        pod_security = pod["spec"]["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod_security.get("runAsUser") == (185 if on_spark_image else None)
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert pod["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {}}]
        assert pod["spec"]["automountServiceAccountToken"] is False
        labels = pod["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "cryptolake"
        assert labels["app.kubernetes.io/component"] == (task.task_id if on_spark_image else "extract")
        # a succeeded pod goes, a failed one stays for inspection (the housekeeping DAG removes it later) and its
        # events reach the task log
        assert task.on_finish_action.value == "delete_succeeded_pod" and task.get_logs and not task.deferrable
        assert task.log_events_on_failure and task.log_events_on_startup
        assert len(pod["metadata"]["name"]) <= 63 and "_" not in pod["metadata"]["name"]


def test_spark_tasks_submit_the_group_manifest_and_stream_the_driver_log(dagbags, spec):
    for group in spec.groups:
        dag = dagbags["kubernetes"].dags[group]
        for app in spec.spark_apps:
            task = dag.get_task(app)
            assert task.namespace == spec.kubernetes.namespace
            # the application is left to its timeToLiveSeconds, so a failed one can still be read the next morning
            assert task.get_logs and not task.delete_on_termination and task.log_events_on_failure
            assert task.do_xcom_push is False and task.deferrable is False
            # Airflow replaced the file name by the file's content when it loaded the DAG
            assert task.application_file == (MANIFEST_DIR / f"{group}-{app}.yaml").read_text()
