"""What `make test` leaves out by default (pyproject's pytest addopts) still runs: a make target runs it, the README
names that target, and `.ci/run` runs it."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import REPO


def _targets_running(marker: str) -> list[str]:
    """The Makefile targets whose recipe runs pytest on `-m <marker>`."""
    found, target = [], None
    for line in (REPO / "Makefile").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_-]+):", line):
            target = match[1]
        elif line.startswith("\t") and re.search(rf"pytest\b.*-m '?{marker}\b", line) and target:
            found.append(target)
    return found


def test_markers_left_out_by_default_are_run_by_a_target_the_readme_names_and_ci_runs():
    addopts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    left_out = re.findall(r"\bnot (\w+)", addopts)
    assert left_out, f"addopts ({addopts!r}) leaves no marker out any more: this test has nothing left to check"
    readme = (REPO / "README.md").read_text()
    ci = [line.split("#")[0] for line in (REPO / ".ci" / "run").read_text().splitlines()]
    for marker in left_out:
        targets = _targets_running(marker)
        assert targets, f"no Makefile target runs pytest -m {marker}"
        assert any(f"`make {t}`" in readme for t in targets), f"the README names none of {targets}"
        assert any(re.search(rf"^\s*make {t}\b", line) for t in targets for line in ci), \
            f".ci/run runs none of {targets}"
