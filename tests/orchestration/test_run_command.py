"""`cryptolake run --group` runs a group's cycle as its DAG orders it, on the embedded stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.warehouse.migrate import upgrade
from tests.conftest import settings_for
from tests.warehouse.conftest import fresh_database

CLI = str(Path(sys.executable).parent / "cryptolake")


def test_run_5x_extracts_transforms_loads_and_refreshes_statistics(stack_env):
    lake_uri = f"s3://cryptolake/tests/run-{uuid.uuid4().hex[:8]}"
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        engine = create_engine(url)
        upgrade(engine)
        env = {**os.environ, **stack_env, "LAKE_URI": lake_uri, "WAREHOUSE_URL": url}
        done = subprocess.run([CLI, "--log-json", "run", "--group", "5x"], capture_output=True, text=True, env=env,
                              timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        with engine.connect() as connection:
            categories = connection.execute(text("SELECT count(*) FROM dw.dim_crypto_category")).scalar()
            facts = connection.execute(text("SELECT count(*) FROM dw.fact_crypto_category")).scalar()
            analyzed = connection.execute(text(
                "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'dw' AND last_analyze IS NOT NULL"
            )).scalar()
        engine.dispose()
    assert categories == facts == 300  # the sandbox's categories, one snapshot
    assert analyzed == 14  # the post-load SQL analyzed every dw table (none had statistics yet)
    ledger = Ledger(Lake.from_settings(settings_for(lake_uri, stack_env)))
    assert [r.status for r in ledger.runs("extract", "crypto_categories")] == ["success"]
    assert ledger.latest("extract", "crypto_categories").details["job"]["group"] == "5x"
    assert ledger.latest("load", "fact_crypto_category").status == "success"
    assert password_free(done.stdout + done.stderr, url)


def password_free(output: str, url: str) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(url).password not in output
