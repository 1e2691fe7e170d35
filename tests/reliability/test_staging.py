"""A real `cryptolake extract` SIGKILLed while its bronze file is staged (its second page held by the sandbox):
the staging file stays, the next runs of the same extractor leave it while it is younger than the extract task's
timeout and remove it once older, and nothing of the killed run is visible. Fast: no Spark, a sandbox of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cryptolake import pipeline
from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from tests.conftest import settings_for
from tests.extract.conftest import extract_env, start_sandbox
from tests.reliability.servers import wait_for
from tests.staging import age

CLI = str(Path(sys.executable).parent / "cryptolake")
JOB = "extract.crypto_info"


@pytest.fixture(scope="module")
def sandbox():
    server = start_sandbox("--rate-limit", "100000")
    yield server
    server.process.terminate()
    server.process.wait(10)


def staged(lake: Lake, tmp: Path) -> list[str]:
    """crypto_info's staging files, where docs/lake.md says they are."""
    if lake.is_local:
        return sorted(str(p) for p in Path(lake.uri.removeprefix("file://")).rglob(".*.tmp"))
    return sorted(str(p) for p in tmp.glob(f"cryptolake-{JOB}.*.part"))


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_a_killed_extracts_staging_file_is_swept_by_a_later_run_once_older_than_the_task_timeout(
        sandbox, backend, tmp_path, request):
    sandbox.reset()
    uri = ((tmp_path / "lake").as_uri() if backend == "file"
           else f"s3://cryptolake/tests/staging-{uuid.uuid4().hex[:10]}")
    tmp = tmp_path / "tmp"  # the steps' temp dir: no other run's files in it
    tmp.mkdir()
    stack = request.getfixturevalue("stack_env") if backend == "s3" else {}
    env = {**os.environ, **stack, **extract_env(sandbox), "LAKE_URI": uri, "TMPDIR": str(tmp)}
    lake = Lake.from_settings(settings_for(uri, {**stack}))

    def extract(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, "--log-json", "extract", name], env=env, capture_output=True, text=True,
                              timeout=300)

    assert extract("crypto_map").returncode == 0
    sandbox.fault(kind="timeout", path="/v2/cryptocurrency/info", after=1, count=None, delay=600)
    step = subprocess.Popen([CLI, "extract", "crypto_info"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: staged(lake, tmp), "the first batch staged", timeout=120)
    finally:
        os.killpg(step.pid, signal.SIGKILL)
        step.wait(30)
    assert step.returncode == -signal.SIGKILL
    [left] = staged(lake, tmp)
    assert Ledger(lake).runs("extract", "crypto_info") == [] and lake.list_files("bronze/crypto_info") == []
    sandbox.control("DELETE", "faults")

    timeout = pipeline.default().airflow.step_timeout("extract")
    age(left, timeout.total_seconds() - 60)  # could still be a live run's under Airflow: kept
    first = extract("crypto_info")
    assert first.returncode == 0, first.stderr[-2000:]
    assert staged(lake, tmp) == [left]
    age(left, timeout.total_seconds() + 60)
    second = extract("crypto_info")
    assert second.returncode == 0, second.stderr[-2000:]
    assert staged(lake, tmp) == []
    assert f"removed 1 staging files a killed run of {JOB} left: {left}" in second.stderr
    assert [r.status for r in Ledger(lake).runs("extract", "crypto_info")][0] == "success"
