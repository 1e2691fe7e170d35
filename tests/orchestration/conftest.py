"""Airflow for these tests lives in a throwaway AIRFLOW_HOME (nothing touches ~/airflow, no metadata DB is
needed: DagBag parses files, and DAG serialization is in memory), and the two DagBags are loaded once."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports airflow (it reads AIRFLOW_HOME and its config once, on import).
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="cryptolake-airflow-home-")
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

REPO = Path(__file__).resolve().parents[2]
DAG_FOLDER = REPO / "dags"
MANIFEST_DIR = REPO / "manifests" / "spark"
CRD = REPO / "manifests" / "crds" / "sparkoperator.k8s.io_sparkapplications.yaml"
BACKENDS = ("kubernetes", "local")


def load_dagbag(backend: str, environ: dict[str, str] | None = None):
    from airflow.dag_processing.dagbag import DagBag

    from cryptolake import pipeline

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        patch.setenv("CRYPTOLAKE_DAG_BACKEND", backend)
        for key, value in (environ or {}).items():
            patch.setenv(key, value)
        return DagBag(dag_folder=str(DAG_FOLDER), safe_mode=True,
                      known_pools={pipeline.default().airflow.api_pool})


@pytest.fixture(scope="session")
def dagbags():
    """backend -> the DagBag of dags/ loaded by Airflow with that backend (each holds DAGs: checks over them
    would otherwise see nothing)."""
    bags = {backend: load_dagbag(backend) for backend in BACKENDS}
    assert all(bag.dags for bag in bags.values()), {backend: bag.import_errors for backend, bag in bags.items()}
    return bags


@pytest.fixture(scope="session")
def spec():
    from cryptolake import pipeline

    return pipeline.default()
