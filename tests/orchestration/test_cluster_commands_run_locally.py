"""What the cluster would run, run here: the 5x DAG's extractor pods (their cmds and arguments) and its
SparkApplications (the repository file the Spark image copies to mainApplicationFile, with the manifest's
arguments, run by Python as spark-submit runs it), against the embedded stack, in the DAG's order."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text

from cryptolake.warehouse.migrate import upgrade
from tests.images.test_images import spark_entries
from tests.orchestration.conftest import MANIFEST_DIR, REPO
from tests.warehouse.conftest import fresh_database

BIN = Path(sys.executable).parent
# mainApplicationFile in the image -> the repository file spark_apps/Dockerfile copies there
ENTRY_FILES = {f"local://{destination}": REPO / source for destination, source in spark_entries().items()}


def test_the_5x_pods_and_spark_applications_run_here_as_on_the_cluster(dagbags, stack_env):
    dag = dagbags["kubernetes"].dags["5x"]
    pods = [t for t in dag.topological_sort() if type(t).__name__ == "KubernetesPodOperator"]
    apps = [yaml.safe_load(t.application_file)["spec"] for t in dag.topological_sort()
            if type(t).__name__ == "SparkKubernetesOperator"]
    assert [p.arguments[1] for p in pods] == ["key_info", "crypto_categories"] and len(apps) == 2
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        engine = create_engine(url)
        upgrade(engine)
        env = {**os.environ, **stack_env, "LAKE_URI": f"s3://cryptolake/tests/pods-{uuid.uuid4().hex[:8]}",
               "WAREHOUSE_URL": url, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        for pod in pods:
            done = subprocess.run([*pod.cmds, *pod.arguments], env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, (pod.task_id, done.stderr[-2000:])
        for app in apps:
            entry = ENTRY_FILES[app["mainApplicationFile"]]
            done = subprocess.run([sys.executable, str(entry), *app["arguments"]], env=env, capture_output=True,
                                  text=True, timeout=900, cwd=REPO)
            assert done.returncode == 0, (app["mainApplicationFile"], done.stderr[-2000:])
        with engine.connect() as connection:
            counts = connection.execute(text(
                "SELECT (SELECT count(*) FROM dw.dim_crypto_category), (SELECT count(*) FROM dw.fact_crypto_category)"
            )).one()
        engine.dispose()
    assert counts == (300, 300)  # the sandbox's categories, one snapshot, through the cluster's commands
    assert sorted(p.name for p in MANIFEST_DIR.glob("5x-*.yaml")) == ["5x-load.yaml", "5x-transform.yaml"]
