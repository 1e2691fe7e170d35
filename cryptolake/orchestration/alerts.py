"""Alerts: a failed DAG run, or tables `cryptolake status` finds not OK, told to a person through an Airflow
notifier (docs/orchestration.md, "Alerts").

Every DAG's on_failure_callback is an AlertNotifier. Airflow's DAG processor calls it once per failed run: it
writes the message (the DAG, the run id and why it failed, each failed task with its page in the Airflow UI, where
its log is, and for the `status` DAG the tables that are not OK) and hands it to the notifier the spec names
(`airflow.alerts`: SmtpNotifier by default) as `alert` in the template context. The message is made of names,
states, times and links: no setting, connection or environment value goes into it.

The status task reads the JSON `cryptolake status --json` prints (both backends, through `read_report`). When
the command found the warehouse unhealthy, `check_status` keeps the tables that are not OK in an XCom and fails
the task without retry (waiting does not freshen a table): the run fails and its alert names them.
"""

from __future__ import annotations

import copy
import html
import importlib
import json
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import quote

from airflow.sdk import BaseNotifier, conf
from airflow.sdk.exceptions import AirflowFailException

from cryptolake import status as probe
from cryptolake.pipeline import Pipeline, SpecError

STATUS_XCOM = "status"  # XCom key of the status task's findings: the verdict and the tables that are not OK
SUBJECT_PREFIX = "[cryptolake]"


def load_notifier(spec: Pipeline) -> BaseNotifier:
    """The spec's notifier with its arguments; built with the DAGs, so a bad one is an import error of the DAG
    file, not a silent night."""
    policy = spec.airflow.alerts
    module, _, name = policy.notifier.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise SpecError(spec.source, "airflow.alerts.notifier",
                        f"cannot import {policy.notifier} ({exc}); is its Airflow provider installed?") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
        raise SpecError(spec.source, "airflow.alerts.notifier",
                        f"{policy.notifier} is not an Airflow notifier (a subclass of airflow.sdk.BaseNotifier)")
    try:
        return cls(**policy.args)
    except TypeError as exc:
        raise SpecError(spec.source, "airflow.alerts.args", f"{policy.notifier} refuses them: {exc}") from None


@dataclass(frozen=True)
class Alert:
    """What the notifier's templates see as `alert`."""

    subject: str
    text: str

    @property
    def html(self) -> str:
        return f"<pre>{html.escape(self.text)}</pre>"


class AlertNotifier(BaseNotifier):
    """A DAG's on_failure_callback: writes the alert of the failed run and sends it through `target`.

    `status_task`: the task whose findings (XCom `status`) the alert names, in the `status` DAG."""

    def __init__(self, target: BaseNotifier, status_task: str | None = None):
        super().__init__()
        self.target = target
        self.status_task = status_task

    def notify(self, context: Any) -> None:
        alert = compose(context, self.status_task)
        # A copy per alert: rendering the templates replaces the target's fields with their values.
        copy.copy(self.target)({**context, "alert": alert})


def compose(context: Any, status_task: str | None = None) -> Alert:
    """The alert of a failed run from its callback context (dag, run_id, reason and, when a task failed, ti:
    the one that failed last, through which the Task SDK answers for the whole run)."""
    dag, run_id, reason = context["dag"], context["run_id"], context.get("reason") or "failed"
    ti = context.get("ti")
    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    run_url = f"{base}/dags/{dag.dag_id}/runs/{quote(run_id)}"
    failed = _failed_tasks(dag, run_id, ti)
    lines = [f"The Airflow DAG run {dag.dag_id} / {run_id} failed ({reason}).", f"Run: {run_url}", ""]
    if failed:
        lines.append("Failed tasks (each link opens the task and its log):")
        lines += [f"- {task_id}: {run_url}/tasks/{task_id}" for task_id in failed]
    subject = f"{SUBJECT_PREFIX} {dag.dag_id} failed" + (f": {', '.join(failed)}" if failed else f" ({reason})")
    report = ti.xcom_pull(task_ids=status_task, key=STATUS_XCOM) if ti is not None and status_task else None
    if report:
        subject = f"{SUBJECT_PREFIX} warehouse {report['verdict']}"
        tables = [f"- {t['table']} ({t['state']}): {'; '.join(t['problems']) or 'no problem recorded'}"
                  for t in report["tables"]]
        lines = [f"`cryptolake status` on the warehouse: {report['verdict']}", *tables, "", *lines]
    return Alert(subject, "\n".join(lines).rstrip() + "\n")


def _failed_tasks(dag: Any, run_id: str, ti: Any) -> list[str]:
    """The run's failed tasks in the DAG's order (the DAG processor asks the API server for the run's states)."""
    if ti is None:  # the run failed with no task failing (a timeout, a deadlock): the reason says it
        return []
    states = ti.get_task_states(dag_id=dag.dag_id, run_ids=[run_id]).get(run_id, {})
    return [task_id for task_id in dag.task_ids if states.get(task_id) == "failed"]


# -- the status task -------------------------------------------------------------------------------------------
def read_report(lines: Iterable[str]) -> dict | None:
    """The JSON document `cryptolake status --json` printed, among the task's output lines (log lines may come
    before it): its outermost braces stand alone on their lines. None when there is none (the command failed
    before it could tell)."""
    lines = [line.rstrip("\n") for line in lines]
    try:
        end = max(i for i, line in enumerate(lines) if line == "}")
        start = max(i for i, line in enumerate(lines[:end]) if line == "{")
        report = json.loads("\n".join(lines[start:end + 1]))
    except ValueError:  # no braces (max() of nothing) or not JSON
        return None
    return report if isinstance(report, dict) and isinstance(report.get("tables"), list) else None


def check_status(report: dict | None, context: Any) -> None:
    """After `cryptolake status` exited non-zero. When it found the warehouse unhealthy: keep the verdict and the
    tables that are not OK for the run's alert and fail for good. Otherwise (it could not tell) return: the task
    fails as a command does, with retries."""
    if not report or report.get("healthy") is not False:
        return
    tables = [{"table": t["table"], "state": t["state"], "problems": list(t["problems"])}
              for t in report["tables"] if t["state"] != probe.OK]
    context["ti"].xcom_push(key=STATUS_XCOM, value={"verdict": report["verdict"], "tables": tables})
    raise AirflowFailException(f"`cryptolake status`: {report['verdict']}")
