"""Renders of the chart per profile, made once per session (each takes a fraction of a second)."""

from __future__ import annotations

import pytest

from tests.chart.render import CLOUD_VALUES, KIND_VALUES, NODE_VALUES, PROFILE_SECRETS, merge, render

# profile -> (values files, --set values)
PROFILES = {
    "default": ([], PROFILE_SECRETS),
    "kind": ([KIND_VALUES], PROFILE_SECRETS),
    "node": ([KIND_VALUES, NODE_VALUES], PROFILE_SECRETS),
    "cloud": ([CLOUD_VALUES], None),
    "minio": ([], merge(PROFILE_SECRETS, {"objectStore": {"type": "minio"}})),
}


@pytest.fixture(scope="session")
def renders() -> dict[str, list[dict]]:
    return {name: render(files, values) for name, (files, values) in PROFILES.items()}


@pytest.fixture(scope="session")
def spec():
    from cryptolake import pipeline

    return pipeline.default()
