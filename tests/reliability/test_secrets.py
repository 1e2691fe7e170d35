"""Secrets never leave the process: the commands and the failures that tend to print them, scanned end to end.

`_drive` runs the CLI as an operator would (subprocesses against the test stack's PostgreSQL and S3 server and
a sandbox of our own that accepts only a distinctive API key): migrate, a 10x extraction (the slow half: a whole
`run --group 10x` with Spark), a malformed page (quarantine), status, backup; then a wrong API key (401), a
warehouse URL with a wrong password for every command that touches the warehouse, and an unreachable S3
endpoint. Everything they printed and left in the lake (ledger, quarantine, backup manifests, Spark event logs)
is scanned for the API keys, the S3 secret and the warehouse passwords. What the repo ships (chart, manifests,
DAGs, Dockerfiles) is checked too: secrets only ever come from Kubernetes Secrets."""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml
from sqlalchemy.engine import make_url

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from tests.chart.render import KIND_VALUES, render
from tests.conftest import settings_for
from tests.reliability.secret_scan import assert_no_secrets, collect_outputs, find_secrets
from tests.sandbox_process import free_port, launch
from tests.warehouse.conftest import fresh_database

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "cryptolake")
SMALL = ("--seed", "5", "--coins", "80", "--exchanges", "12", "--categories", "19")
# A page that does not parse (after the cycle, so its load is whole), so the extractor writes a quarantine object (with its error) we can scan.
MALFORMED = {"kind": "malformed", "path": "/v3/fear-and-greed/latest", "count": 1}
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|WAREHOUSE_URL", re.IGNORECASE)


def _cli(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def _drive(stack_env, tmp: Path, cycle: bool) -> dict:
    """Run the scenarios; `cycle` adds a whole `run --group 10x` (Spark) and a Spark load on a wrong password."""
    api_key = f"live-{secrets.token_hex(16)}"
    wrong_key = f"wrong-{secrets.token_hex(16)}"
    sandbox, sandbox_url, _ = launch(*SMALL, "--api-key", api_key, log_dir=tmp)
    lake_uri = f"s3://cryptolake/tests/secrets-{uuid.uuid4().hex[:8]}"
    done: dict[str, subprocess.CompletedProcess] = {}
    try:
        with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
            password = make_url(url).password
            wrong_password = f"pw-{secrets.token_hex(12)}"
            wrong_url = make_url(url).set(password=wrong_password).render_as_string(hide_password=False)
            env = {**os.environ, **stack_env, "LAKE_URI": lake_uri, "WAREHOUSE_URL": url,
                   "CMC_BASE_URL": sandbox_url, "CMC_API_KEY": api_key,
                   "WAREHOUSE_LOADER_PASSWORD": f"loader-{secrets.token_hex(12)}",
                   "WAREHOUSE_ANALYST_PASSWORD": f"analyst-{secrets.token_hex(12)}"}
            # the shared stack's login users keep their passwords: other sessions use them
            migrate_env = {k: v for k, v in env.items() if not k.endswith(("_LOADER_PASSWORD", "_ANALYST_PASSWORD"))}
            done["migrate"] = _cli("--log-json", "migrate", env=migrate_env)
            if cycle:
                done["run 10x"] = _cli("--log-json", "run", "--group", "10x", env=env)
            else:
                done["extract 10x"] = _cli("--log-json", "extract", "--group", "10x", env=env)
            requests.post(f"{sandbox_url}/sandbox/faults", json=MALFORMED, timeout=10).raise_for_status()
            done["extract, malformed page"] = _cli("--log-json", "extract", "fear_greed_latest", env=env)
            done["status"] = _cli("--log-json", "status", env=env)
            done["status --json"] = _cli("status", "--json", env=env)
            done["backup"] = _cli("--log-json", "backup", env=env)
            done["extract, wrong API key"] = _cli("--log-json", "extract", "key_info",
                                                  env={**env, "CMC_API_KEY": wrong_key})
            done["extract, wrong API key, text"] = _cli("--log-text", "extract", "key_info",
                                                        env={**env, "CMC_API_KEY": wrong_key})
            bad_pw = {**env, "WAREHOUSE_URL": wrong_url}
            done["migrate, wrong password"] = _cli("migrate", env=bad_pw)
            done["status, wrong password"] = _cli("status", env=bad_pw)
            done["backup, wrong password"] = _cli("backup", env=bad_pw)
            done["report, wrong password"] = _cli("report", "--out", str(tmp / "report.html"), env=bad_pw)
            done["restore, wrong password"] = _cli("restore", done["backup"].stdout.strip().splitlines()[-1]
                                                   if done["backup"].returncode == 0 else "20260101T000000Z",
                                                   "--force", env=bad_pw)
            done["--warehouse-url flag, wrong password"] = _cli("--warehouse-url", wrong_url, "status", env=env)
            if cycle:
                done["load, wrong password"] = _cli("--log-json", "load", "--group", "10x", env=bad_pw)
            unreachable = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
            done["extract, S3 unreachable"] = _cli("--log-json", "extract", "key_info", env=unreachable)
            done["status, S3 unreachable"] = _cli("--log-json", "status", env=unreachable)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    lake = Lake.from_settings(settings_for(lake_uri, stack_env))
    known = [api_key, wrong_key, password, wrong_password, stack_env["AWS_SECRET_ACCESS_KEY"],
             env["WAREHOUSE_LOADER_PASSWORD"], env["WAREHOUSE_ANALYST_PASSWORD"]]
    return {"done": done, "secrets": known, "lake": lake}


@pytest.fixture(scope="module")
def runs(stack_env, tmp_path_factory):
    """name -> finished CLI process, plus the secrets in play and the lake they wrote (no Spark: fast half)."""
    return _drive(stack_env, tmp_path_factory.mktemp("secrets"), cycle=False)


def _outputs(runs) -> dict[str, str]:
    captured = {}
    for name, proc in runs["done"].items():
        captured[f"{name}: stdout"] = proc.stdout
        captured[f"{name}: stderr"] = proc.stderr
    return collect_outputs(lake=runs["lake"], captured=captured)


def _assert_scenarios_happened(runs) -> None:
    """Otherwise the scan would prove nothing: each scenario reached the code that could leak."""
    done = runs["done"]
    for name in ("migrate", "backup", *(n for n in ("run 10x", "extract 10x") if n in done)):
        assert done[name].returncode == 0, f"{name}: {done[name].stderr[-3000:]}"
    assert done["extract, malformed page"].returncode != 0
    assert runs["lake"].list_files("bronze/_quarantine"), "the malformed page was not quarantined"
    ledger = Ledger(runs["lake"])
    assert ledger.latest("extract", "crypto_listings_latest").status == "success"  # the sandbox took the key
    assert "invalid" in done["extract, wrong API key"].stderr.lower()  # 401: This API Key is invalid
    assert "password authentication failed" in done["status, wrong password"].stderr
    assert "cannot read the lake" in done["status, S3 unreachable"].stderr
    refused = {name: proc for name, proc in done.items() if "wrong" in name or "unreachable" in name}
    assert len(refused) >= 10, sorted(refused)  # wrong key (2), wrong password (6+), S3 unreachable (2)
    for name, proc in refused.items():
        assert proc.returncode != 0, f"{name} succeeded: {proc.stderr[-1000:]}"


def test_the_failures_happened_as_intended(runs):
    _assert_scenarios_happened(runs)


def test_no_secret_in_any_output_log_ledger_or_quarantine(runs):
    outputs = _outputs(runs)
    assert sum(1 for name in outputs if name.startswith("lake:_meta/")) >= 5  # the ledger was collected
    assert any(name.startswith("lake:bronze/_quarantine/") for name in outputs)
    assert_no_secrets(outputs, runs["secrets"])


def test_the_scanner_finds_a_planted_secret_in_any_encoding(runs):
    """The negative control: the same scan fails, naming the output and the line, once a secret is planted."""
    api_key = runs["secrets"][0]
    planted = _outputs(runs)
    name = next(iter(planted))
    for form in (api_key, quote(f"x{api_key}!", safe=""), base64.b64encode(f"Basic u:{api_key}".encode()).decode()):
        original = planted[name]
        planted[name] = original + "\nfirst line\n... " + form + " ..."
        with pytest.raises(AssertionError, match=re.escape(f"{name}:")):
            assert_no_secrets(planted, runs["secrets"])
        planted[name] = original
    assert not find_secrets(planted, runs["secrets"])


@pytest.mark.reliability
@pytest.mark.spark
@pytest.mark.timeout(3600)
def test_a_whole_cycle_leaks_no_secret_in_logs_ledger_or_spark_event_logs(stack_env, tmp_path):
    """Slow half: `run --group 10x` (Spark transform + JDBC load) and a Spark load on a wrong password."""
    runs = _drive(stack_env, tmp_path, cycle=True)
    _assert_scenarios_happened(runs)
    assert Ledger(runs["lake"]).latest("load", "fact_global_market").status == "success"
    load = runs["done"]["load, wrong password"]
    # the run's last line says what failed and where the details are (its JSON log lines carry the errors)
    assert load.returncode != 0
    assert load.stderr.strip().splitlines()[-1].startswith("error: load 10x: "), load.stderr[-2000:]
    outputs = _outputs(runs)
    assert any(name.startswith("lake:spark-events/") for name in outputs), "no Spark event log to scan"
    assert_no_secrets(outputs, runs["secrets"])


# -- what the repo ships ------------------------------------------------------------------------------------
IDENTITIES = ("extract", "transform", "load", "backup", "history", "airflow")
DISTINCT = {"objectStore": {"accessKeyId": "akid-4f1c9e2d7b", "secretAccessKey": "s3secret-9d8c7b6a5f4e",
                            "identities": {role: {"secretAccessKey": f"s3secret-{role}-8e7d6c5b"} for role in IDENTITIES}},
            "secrets": {"cmcApiKey": "cmckey-1a2b3c4d5e6f", "warehouseLoaderPassword": "loaderpw-2b3c4d5e6f",
                        "warehouseBackupPassword": "backuppw-3c4d5e6f7a"},
            "postgresql": {"auth": {"password": "pgpass-7e6d5c4b3a2f"}}}


def _secret_values() -> list[str]:
    return [DISTINCT["objectStore"]["secretAccessKey"], DISTINCT["secrets"]["cmcApiKey"],
            DISTINCT["secrets"]["warehouseLoaderPassword"], DISTINCT["secrets"]["warehouseBackupPassword"],
            DISTINCT["postgresql"]["auth"]["password"],
            *(identity["secretAccessKey"] for identity in DISTINCT["objectStore"]["identities"].values())]


def test_the_rendered_chart_keeps_secrets_in_secrets_only():
    """Set through values, the secrets land in Secret objects and nowhere else (no env literal, no ConfigMap)."""
    objects = render([KIND_VALUES], DISTINCT)
    in_secrets = collect_outputs(objects=[o for o in objects if o.get("kind") == "Secret"], )
    assert not in_secrets  # collect_objects skips Secrets: they are where secrets belong
    secret_text = yaml.safe_dump_all([o for o in objects if o.get("kind") == "Secret"])
    assert find_secrets({"secrets": secret_text}, _secret_values()), "the values did not reach the Secrets"
    assert_no_secrets(collect_outputs(objects=objects), _secret_values())


def _env_entries(node):
    """Every container env entry (name + value/valueFrom) anywhere in a manifest or rendered object."""
    if isinstance(node, dict):
        if isinstance(node.get("env"), list):
            yield from (e for e in node["env"] if isinstance(e, dict))
        for value in node.values():
            yield from _env_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_entries(value)


def test_secret_variables_come_from_secret_refs_in_the_chart_and_manifests():
    documents = list(render([KIND_VALUES], DISTINCT))
    for path in sorted((REPO / "manifests").rglob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    entries = [e for d in documents for e in _env_entries(d)]
    assert entries, "no env entries found: the walk is broken"
    literal = [e["name"] for e in entries if SECRET_NAME.search(e["name"]) and "value" in e
               and not str(e["name"]).endswith(("_FILE", "_ID")) and e["value"] not in ("", None)]
    assert not literal, f"secret variables set as literals instead of secretKeyRef: {sorted(set(literal))}"


def test_no_secret_baked_into_images_dags_or_manifests():
    """Dockerfiles set no secret variable (ENV/ARG) with a value; the shipped files hold no known key."""
    from cryptolake.services.sandbox import DEFAULT_API_KEY

    dockerfiles = sorted(REPO.glob("**/Dockerfile*"))
    dockerfiles = [p for p in dockerfiles if ".venv" not in p.parts and "node_modules" not in p.parts]
    assert len(dockerfiles) >= 3, dockerfiles
    baked = []
    for path in dockerfiles:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"\s*(ENV|ARG)\s+([A-Za-z_][A-Za-z0-9_]*)\s*[= ]\s*(\S+)", line)
            if match and SECRET_NAME.search(match.group(2)) and not match.group(2).endswith("_FILE"):
                baked.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not baked, "secrets baked into images:\n" + "\n".join(baked)
    shipped = {str(p.relative_to(REPO)): p.read_text()
               for p in [*dockerfiles, *(REPO / "dags").rglob("*.py"), *(REPO / "manifests").rglob("*.yaml"),
                         *(REPO / "charts").rglob("*.yaml")]}
    # the sandbox's default key is a public test value, but it must not be what a deployment ships with
    assert_no_secrets(shipped, [DEFAULT_API_KEY, *_secret_values()])
