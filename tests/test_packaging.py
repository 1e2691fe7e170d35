"""The wheel the images install, built from the tree: it holds every module and data file, and installed into
a fresh venv outside the checkout with only the extractor image's extra it runs that image's commands; a
command whose extra is missing says which one to install."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from cryptolake.cli import EXTRA_OF_MODULE

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
ROOTS = {"cryptolake": REPO / "cryptolake", "cryptolake/services": REPO / "services",
         "cryptolake/spark_apps": REPO / "spark_apps", "cryptolake/warehouse": REPO / "warehouse",
         "cryptolake/migrations": REPO / "migrations"}


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_build_requires_a_setuptools_that_reads_an_spdx_license():
    assert isinstance(PYPROJECT["project"]["license"], str)  # PEP 639 expression: setuptools >= 77
    [setuptools] = [r for r in PYPROJECT["build-system"]["requires"] if requirement_name(r) == "setuptools"]
    assert re.fullmatch(r"setuptools>=(\d+).*", setuptools) and int(setuptools.split(">=")[1]) >= 77


def test_each_optional_module_names_the_extra_that_installs_it():
    extras = PYPROJECT["project"]["optional-dependencies"]
    dists = {module: {requirement_name(d) for d in found} for module, found in packages_distributions().items()}
    for module, extra in EXTRA_OF_MODULE.items():
        assert dists[module] & {requirement_name(r) for r in extras[extra]}, (module, extra)
    for extra in ("extract", "sandbox", "spark", "warehouse"):
        for requirement in extras[extra]:
            name = requirement_name(requirement)
            if name != "cryptolakehouse":
                assert any(name in dists[m] for m in EXTRA_OF_MODULE), f"{name} ({extra}) not in EXTRA_OF_MODULE"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built the way an image build does: isolated, with the build-system requirements from PyPI."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    [built] = out.glob("cryptolakehouse-*.whl")
    return built


def install(wheel: Path, extra: str, venv: Path) -> Path:
    """A fresh venv with the wheel and one extra, from PyPI, blind to this checkout."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    outside = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                    f"{wheel}[{extra}]"], check=True, env=outside, timeout=600)
    return venv


@pytest.mark.wheel
def test_the_wheel_holds_every_module_and_the_pom(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{prefix}/{path.relative_to(root).as_posix()}"
                for prefix, root in ROOTS.items() for path in root.rglob("*.py")}
    assert expected - names == set(), "add the missing packages to [tool.setuptools] packages in pyproject.toml"
    assert "cryptolake/spark_apps/pom.xml" in names  # the hint for resolving jars without a checkout
    assert "cryptolake/migrations/script.py.mako" in names  # Alembic's template, read from the package
    assert {f"cryptolake/warehouse/{p.relative_to(REPO / 'warehouse').as_posix()}"
            for p in (REPO / "warehouse" / "sql").rglob("*.sql")} <= names  # the SQL the migrations apply
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text
    extras = {"extract", "sandbox", "spark", "warehouse", "report", "airflow", "dev"}
    assert set(re.findall(r"^Provides-Extra: (\S+)$", text, re.M)) == extras


@pytest.mark.wheel
def test_the_installed_wheel_runs_the_extractor_image_commands_outside_the_checkout(wheel, tmp_path, stack_env):
    venv = install(wheel, "extract", tmp_path / "venv")
    work = tmp_path / "elsewhere"
    work.mkdir()
    lake = tmp_path / "lake"
    settings = {"CMC_BASE_URL": stack_env["CMC_BASE_URL"], "CMC_API_KEY": stack_env["CMC_API_KEY"],
                "LAKE_URI": lake.as_uri()}

    def run(*args: str, program: str = "cryptolake") -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / program), *args], capture_output=True, text=True, cwd=work,
                              env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **settings}, timeout=120)

    where = run("-c", "import cryptolake, importlib.util as u; print(cryptolake.__file__, u.find_spec('numpy'))",
                program="python")
    assert where.stdout.startswith(str(venv)) and where.stdout.split()[-1] == "None", where.stdout  # no numpy
    assert (done := run("--help")).returncode == 0 and "transform" in done.stdout, done.stderr
    done = run("extract", "key_info")
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(lake.glob("bronze/key_info/snapshot_date=*/key_info-*.parquet"))
    assert (done := run("transform", "--help")).returncode == 0 and "--group" in done.stdout, done.stderr
    for args, extra in ((("transform", "--group", "daily"), "spark"), (("sandbox", "serve", "--port", "1"), "sandbox"),
                        (("migrate",), "warehouse"), (("report", "--out", "r.html"), "report")):
        done = run(*args)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [
            f"error: cryptolake {args[0]} needs the '{extra}' extra. Install it: pip install 'cryptolakehouse[{extra}]'"]


@pytest.mark.wheel
def test_the_installed_wheel_migrates_the_warehouse_outside_the_checkout(wheel, tmp_path, stack_env):
    from tests.warehouse.conftest import fresh_database

    venv = install(wheel, "warehouse", tmp_path / "venv")
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        done = subprocess.run([str(venv / "bin" / "cryptolake"), "migrate"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120,
                              env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "WAREHOUSE_URL": url})
    assert done.returncode == 0 and done.stdout == "warehouse at revision 0004 (head)\n", done.stderr[-3000:]
