"""Small queries over rendered objects (the airflow chart's tests do the same with jmespath)."""

from __future__ import annotations

from typing import Iterator

WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob")


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str | None = None, component: str | None = None) -> dict:
    found = [o for o in find(objects, kind, name)
             if component is None or o["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name!r} (component {component!r})"
    return found[0]


def pod_specs(objects: list[dict]) -> Iterator[tuple[dict, dict]]:
    """(object, pod spec) of every workload and bare Pod."""
    for obj in objects:
        if obj["kind"] == "Pod":
            yield obj, obj["spec"]
        elif obj["kind"] == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]["spec"]


def containers(pod_spec: dict) -> list[dict]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def component(obj: dict) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]
