"""The status check as a pod (kubernetes backend): `cryptolake status --json` in a KubernetesPodOperator, its
output read from the pod's log as the operator streams it into the task log (`log_formatter` sees each line),
and judged as the local backend judges it (alerts.check_status). Its own module: the provider's import is slow
and the local backend does not need it."""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException

from cryptolake.orchestration.alerts import check_status, read_report


class StatusPodOperator(KubernetesPodOperator):
    def __init__(self, **kwargs: Any):
        super().__init__(log_formatter=self._output, **kwargs)

    def execute(self, context: Any) -> Any:
        self._lines: list[str] = []
        try:
            return super().execute(context)
        except AirflowException:  # the pod failed: exit status 3 when the JSON says the warehouse is unhealthy
            check_status(read_report(self._lines), context)
            raise

    def _output(self, container: str, message: str) -> str:
        if container == self.base_container_name:
            self._lines += message.splitlines()
        return f"[{container}] {message}"
