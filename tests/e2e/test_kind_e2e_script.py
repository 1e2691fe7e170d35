"""The kind end-to-end harness cannot run here (no Docker): it imports, its --help works, it names the images
the pipeline spec names, and every kind target says it skips, in one line, exiting 0, where Docker is absent."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cryptolake.pipeline import default

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "e2e" / "kind_e2e.py"


def test_the_harness_imports_and_has_its_entry_points():
    spec = importlib.util.spec_from_file_location("kind_e2e", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main) and module.DAGS == ("init", "10x")


def test_help_lists_the_options():
    run = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    for option in ("--cluster", "--skip-build", "--timeout-init", "--timeout-10x", "--print-images"):
        assert option in run.stdout


def test_print_images_names_the_spec_images_and_the_sandbox_variant():
    run = subprocess.run([sys.executable, str(SCRIPT), "--print-images"], capture_output=True, text=True,
                         timeout=60, check=True)
    images = default().kubernetes.images
    assert run.stdout.split() == [images["extract"], images["spark"],
                                  images["extract"].replace("cryptolake-extract", "cryptolake-sandbox")]


@pytest.mark.parametrize("target", ["kind-up", "images", "kind-load", "deploy", "e2e-kind"])
def test_kind_targets_skip_in_one_line_without_docker(target, tmp_path):
    """A `docker` whose `info` fails, first on PATH: the target prints one line and exits 0, touching nothing."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["make", "-s", "--no-print-directory", target], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"{target} skipped: no Docker engine on this machine (docker info failed); "
                                       "run it where Docker runs"]
