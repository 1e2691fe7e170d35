"""Long extractions show a progress bar to a person at a terminal, and plain JSON lines to everything else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tests.conftest import REPO
from tests.extract.conftest import extract_env
from tests.terminal import run_on_terminal


def _extract(env: dict[str, str], terminal: bool) -> tuple[int, str]:
    """`cryptolake extract fear_greed_historical` (three pages), its stderr on a pseudo-terminal or a pipe."""
    command = [sys.executable, "-m", "cryptolake", "extract", "fear_greed_historical"]
    env = {**os.environ, **env}
    if not terminal:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stderr
    return run_on_terminal(command, env=env, cwd=REPO, timeout=120)


def test_a_terminal_gets_a_progress_bar_and_a_pipe_gets_json_lines(fresh_sandbox, stack_env):
    env = {**stack_env, **extract_env(fresh_sandbox), "LAKE_URI": f"s3://cryptolake/tests/progress-{uuid.uuid4().hex[:8]}"}

    status, shown = _extract(env, terminal=True)
    assert status == 0, shown[-2000:]
    assert "fear_greed_historical:   0%|" in shown and "| 0/1 [" in shown, shown[-2000:]  # estimate: 1 page
    assert "fear_greed_historical: success, 1223 rows" in shown  # log lines still show, above the bar

    status, piped = _extract(env, terminal=False)
    assert status == 0
    lines = [line for line in piped.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["job"] == "extract:fear_greed_historical" for line in lines)
    assert "\r" not in piped
