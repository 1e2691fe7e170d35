"""Failed pipeline pods stay for inspection for a bounded time, then go.

KubernetesPodOperator deletes an extractor or backup pod when it succeeds and keeps it when it fails, so that
`kubectl logs` and `describe` still answer the next morning; nothing in Kubernetes ever removes such a bare pod.
SparkApplications need none of this: the operator deletes them, and their driver pods, timeToLiveSeconds after
they end. Both bounds are the spec's `kubernetes.finished_retention_hours`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

PIPELINE_PODS = "app.kubernetes.io/part-of=cryptolakehouse"


def finished_at(pod) -> datetime:
    """When the pod's last container ended; its start (or creation) when no container says."""
    ends = [status.state.terminated.finished_at for status in pod.status.container_statuses or []
            if status.state and status.state.terminated and status.state.terminated.finished_at]
    return max(ends) if ends else (pod.status.start_time or pod.metadata.creation_timestamp)


def delete_expired_failed_pods(core_v1, namespace: str, retention: timedelta,
                               now: datetime | None = None) -> list[str]:
    """Delete the pipeline's failed bare pods (no owner: a Spark driver belongs to its application) that ended
    more than `retention` ago; the names deleted, oldest first."""
    from kubernetes.client.exceptions import ApiException

    cutoff = (now or datetime.now(timezone.utc)) - retention
    pods = core_v1.list_namespaced_pod(namespace, label_selector=PIPELINE_PODS,
                                       field_selector="status.phase=Failed").items
    expired = sorted((pod for pod in pods if not pod.metadata.owner_references and finished_at(pod) <= cutoff),
                     key=finished_at)
    deleted = []
    for pod in expired:
        try:
            core_v1.delete_namespaced_pod(pod.metadata.name, namespace)
        except ApiException as exc:
            if exc.status != 404:  # gone already (a concurrent run, or someone with kubectl)
                raise
        deleted.append(pod.metadata.name)
    return deleted
