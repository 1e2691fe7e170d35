"""`cryptolake`: the one command line of the project (operators, containers and tests all call it)."""

from __future__ import annotations

import shlex
from datetime import datetime, timezone
import sys
from pathlib import Path

import click

from cryptolake import logs
from cryptolake.errors import CryptolakeError
from cryptolake.groups import GROUPS
from cryptolake.services.sandbox.cli import sandbox
from cryptolake.settings import Settings

log = logs.get("cryptolake")


class Context:
    """What every command gets: validated settings (loaded on first use, so `--help` needs none)."""

    def __init__(self, overrides: dict):
        self.overrides = {k: v for k, v in overrides.items() if v is not None}
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load(**self.overrides)
        return self._settings


pass_context = click.make_pass_decorator(Context)

# The optional modules by the extra of pyproject.toml that installs them (tests/test_packaging.py checks both).
EXTRA_OF_MODULE = {"requests": "extract", "tenacity": "extract", "numpy": "sandbox", "pyspark": "spark",
                   "delta": "spark", "sqlalchemy": "warehouse", "alembic": "warehouse",
                   "psycopg2": "warehouse", "airflow": "airflow", "plotly": "report"}


class _Cli(click.Group):
    """A command whose extra is not installed fails with one line naming it, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            extra = EXTRA_OF_MODULE.get((exc.name or "").partition(".")[0])
            if extra is None:
                raise
            raise CryptolakeError(f"cryptolake {ctx.invoked_subcommand} needs the '{extra}' extra",
                                  f"Install it: pip install 'cryptolakehouse[{extra}]'") from None


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--lake-uri", help="Lake root, s3://bucket[/prefix] or file:///abs/path (env LAKE_URI).")
@click.option("--cmc-base-url", help="CoinMarketCap API base URL (env CMC_BASE_URL).")
@click.option("--warehouse-url", help="SQLAlchemy URL of the warehouse (env WAREHOUSE_URL).")
@click.option("--log-json/--log-text", default=None, help="Force JSON or text logs (default: text on a terminal).")
@click.pass_context
def cli(ctx: click.Context, lake_uri, cmc_base_url, warehouse_url, log_json) -> None:
    """CryptoLakehouse: CoinMarketCap snapshots to a Delta lake and a PostgreSQL warehouse."""
    logs.configure(job=ctx.invoked_subcommand, json_lines=log_json)
    ctx.obj = Context({"lake_uri": lake_uri, "cmc_base_url": cmc_base_url, "warehouse_url": warehouse_url})


# -- pipeline steps ------------------------------------------------------------------------------------------
@cli.command()
@click.argument("extractor", required=False)
@click.option("--group", type=click.Choice(GROUPS),
              help="Run this frequency group's extractors (with EXTRACTOR: only that one, with the group's parameters).")
@pass_context
def extract(ctx: Context, extractor: str | None, group: str | None) -> None:
    """Run one extractor or a frequency group: CoinMarketCap -> bronze Parquet.

    The pipeline spec (cryptolake/pipeline.yaml) says which extractors a group runs, their priority and their
    parameters; `extract EXTRACTOR --group G` is one task of a DAG. Exit status: 0 all extracted (or skipped on
    purpose), 4 partial (failed chunks are retried next run), 5 stopped by the plan's quota, 1 nothing extracted.
    """
    from cryptolake.ledger import new_run_id
    from cryptolake.services.extract import registry
    from cryptolake.services.extract.runner import run_many

    if not extractor and not group:
        raise click.UsageError("give an extractor name, --group, or both")
    if extractor and extractor not in registry.EXTRACTORS:
        raise click.UsageError(f"unknown extractor {extractor!r}; choose one of: {', '.join(registry.EXTRACTORS)}")
    try:
        chosen = [registry.job(extractor, group)] if extractor else registry.group(group)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    # The invocation gets a run id of its own; each extractor run logs under its ledger run id.
    logs.set_context(job=f"extract:{extractor or group}", run_id=new_run_id(datetime.now(timezone.utc)))
    sys.exit(run_many(chosen, ctx.settings))


def _group_and_tables(group_help: str):
    """--group and --table of the Spark steps (transform, load), which work table by table."""
    def decorate(command):
        command = click.option("--table", "tables", multiple=True,
                               help="Only this table of the group (repeatable).")(command)
        return click.option("--group", type=click.Choice(GROUPS), required=True, help=group_help)(command)
    return decorate


@cli.command()
@_group_and_tables("Build the silver tables of this frequency group (weekly and all also run maintenance).")
@pass_context
def transform(ctx: Context, group: str, tables: tuple[str, ...]) -> None:
    """Bronze Parquet -> silver Delta for a frequency group, incrementally (local Spark).

    Only bronze snapshots not yet in silver are read; running twice changes nothing. The SparkApplication runs
    the same entry (spark_apps/transform/main.py). Exit status: 0 every table built or already up to date,
    1 some table (or the maintenance) failed: see the log and the ledger under _meta/transform/.
    """
    from cryptolake.spark_apps.transform.main import run

    sys.exit(run(ctx.settings, group, tables=_tables_of_group("transform", group, tables)))


@cli.command()
@_group_and_tables("Load the warehouse tables of this frequency group (dimensions before facts).")
@click.option("--as-of-version", type=click.IntRange(min=0), metavar="N",
              help="Roll the one --table back to its silver Delta version N (docs/warehouse.md).")
@pass_context
def load(ctx: Context, group: str, tables: tuple[str, ...], as_of_version: int | None) -> None:
    """Silver Delta -> PostgreSQL warehouse (WAREHOUSE_URL) for a frequency group, from each table's change feed.

    Only silver versions not loaded yet are read; running twice changes nothing. Rows with unknown foreign keys
    wait in meta.rejected_rows until their dimension is loaded. The SparkApplication runs the same entry
    (spark_apps/load/main.py). Exit status: 0 every table loaded or up to date, 1 some table failed: see the
    log and the ledger under _meta/load/.
    """
    from cryptolake.spark_apps.load.main import run

    if as_of_version is not None and len(tables) != 1:
        raise click.UsageError("--as-of-version needs exactly one --table (versions are per table)")
    sys.exit(run(ctx.settings, group, tables=_tables_of_group("load", group, tables), as_of_version=as_of_version))


def _tables_of_group(step: str, group: str, tables: tuple[str, ...]) -> list[str] | None:
    """--table values checked against the group's silver (and, for transform, gold) tables (a usage error, before
    Spark starts); sets the log context of a Spark step."""
    from cryptolake.spark_apps.transform.tables import tables_of

    known = [t.name for t in tables_of(group)]
    if step == "transform":  # the transform also builds the group's gold feature tables
        from cryptolake.spark_apps.transform.features import features_of

        known += [f.name for f in features_of(group)]
    unknown = [t for t in tables if t not in known]
    if unknown:
        raise click.UsageError(f"{', '.join(unknown)} not in group {group}; choose from: {', '.join(known)}")
    logs.set_context(job=f"{step}:{group}")
    return list(tables) or None


@cli.command()
@click.option("--group", type=click.Choice(GROUPS), required=True, help="The frequency group to run.")
@pass_context
def run(ctx: Context, group: str) -> None:
    """Extract, transform and load one frequency group locally, in the pipeline spec's order, then its post-load
    SQL: what the group's DAG does, in one process tree.

    Transform runs even when an extractor did not fully succeed (the other tables still get their data); the
    exit status is the worst of the steps: see `cryptolake extract --help` for 4 and 5.
    """
    from cryptolake.cycle import run_group

    sys.exit(run_group(ctx.settings, group))


@cli.command()
@click.option("--month", metavar="YYYY-MM", help="Plan this calendar month (default: the busiest of the next 12).")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Another pipeline spec (default: the one shipped, cryptolake/pipeline.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@pass_context
def budget(ctx: Context, month: str | None, spec_path: Path | None, as_json: bool) -> None:
    """The month's credit plan of the pipeline spec: credits per job, a final total line, the margin left of the
    quota (CMC_MONTHLY_CREDITS) and the freshness it buys. Exit status 3 when the margin is below
    CMC_CREDIT_MARGIN.
    """
    import json
    from datetime import date

    from cryptolake import budget as planner, pipeline
    from cryptolake.services.extract.registry import checked

    spec = checked(pipeline.load(spec_path))
    settings = ctx.settings
    if month:
        try:
            year, month_number = (int(part) for part in month.split("-"))
            date(year, month_number, 1)
        except ValueError:
            raise click.BadParameter(f"{month!r} is not a month like 2026-12", param_hint="--month") from None
        plan = planner.plan(spec, year, month_number, settings.cmc_monthly_credits, settings.cmc_credit_margin)
    else:
        plan = planner.busiest_month(spec, datetime.now(timezone.utc).date(), settings.cmc_monthly_credits,
                                     settings.cmc_credit_margin)
    if as_json:
        click.echo(json.dumps(planner.as_dict(plan, spec), indent=2))
    else:
        for line in planner.render(plan, spec, busiest=month is None):
            click.echo(line)
    if not plan.ok:
        sys.exit(3)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Per warehouse table: freshness against its schedule, the latest extract/transform/load outcome, rejected
    and quarantined rows; and the credits used this month against the plan (docs/status.md).

    A probe: exit status 0 when every table is fresh and no latest run failed, 3 when a table is stale, failing
    (its latest extract failed or was partial, or its transform or load failed) or never loaded (an empty
    warehouse is not healthy), 1 when the warehouse or the lake cannot be read.
    """
    import json

    from cryptolake import pipeline, status as probe

    result = probe.gather(ctx.settings, pipeline.default())
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        for line in probe.render(result):
            click.echo(line)
    sys.exit(result.exit_code)


@cli.command()
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, metavar="FILE.html",
              help="Where to write the HTML file (replaced if it exists).")
@pass_context
def report(ctx: Context, out: Path) -> None:
    """One self-contained HTML file (plotly.js inlined, no network needed) with plots of the warehouse's market
    data and of the pipeline's health (what `cryptolake status` reports); prints its path. See docs/report.md."""
    from cryptolake import pipeline
    from cryptolake.report import write_report

    written = write_report(ctx.settings, pipeline.default(), out)
    log.info("report of %d sections, %d bytes, in %.1fs", len(written.sections), written.bytes, written.seconds)
    click.echo(str(written.path))


@cli.command()
@click.option("--downgrade", "downgrade_to", metavar="REV",
              help="Downgrade to this revision instead (base: remove every warehouse table and view).")
@pass_context
def migrate(ctx: Context, downgrade_to: str | None) -> None:
    """Bring the warehouse (WAREHOUSE_URL) to the latest schema: tables, views, roles. Running it again changes
    nothing.

    Then creates or updates the login users whose passwords are set: cryptolake_loader_user
    (WAREHOUSE_LOADER_PASSWORD), cryptolake_backup_user (WAREHOUSE_BACKUP_PASSWORD) and cryptolake_analyst_user
    (WAREHOUSE_ANALYST_PASSWORD). See docs/warehouse.md.
    """
    from cryptolake.warehouse.migrate import migrate as run_migrate

    for line in run_migrate(ctx.settings, downgrade_to):
        click.echo(line)


# -- local stack ---------------------------------------------------------------------------------------------
@cli.group()
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".local"),
              show_default=True, envvar="CRYPTOLAKE_STATE_DIR", help="Where the stack keeps data, logs and pids.")
@click.option("--pg-port", type=int, envvar="CRYPTOLAKE_PG_PORT", help="PostgreSQL port (default 15432).")
@click.option("--s3-port", type=int, envvar="CRYPTOLAKE_S3_PORT",
              help="S3 port (default 19000; the server's other ports follow it).")
@click.option("--sandbox-port", type=int, envvar="CRYPTOLAKE_SANDBOX_PORT",
              help="Sandbox CoinMarketCap API port (default 18080).")
@click.option("--history-port", type=int, envvar="CRYPTOLAKE_HISTORY_PORT",
              help="Spark History Server port (default 18081).")
@click.pass_context
def local(ctx: click.Context, state_dir: Path, pg_port: int | None, s3_port: int | None,
          sandbox_port: int | None, history_port: int | None) -> None:
    """The embedded default stack on loopback: PostgreSQL, an S3 server, the sandbox CoinMarketCap API and
    Spark's History Server over the lake's event logs."""
    from cryptolake.local.stack import LocalStack

    ctx.obj = LocalStack(state_dir, pg_port=pg_port, s3_port=s3_port, sandbox_port=sandbox_port,
                         history_port=history_port)


@local.command("up")
@click.pass_obj
def local_up(stack) -> None:
    """Start (or health-check) every part of the stack; harmless when already up."""
    _print_status(stack.up())


@local.command("down")
@click.pass_obj
def local_down(stack) -> None:
    """Stop the processes this state directory started (and nothing else)."""
    for part, stopped in stack.down().items():
        click.echo(f"{part:<9} {'stopped' if stopped else 'was not running'}")


@local.command("status")
@click.pass_obj
def local_status(stack) -> None:
    """Show which parts are running; exit status 3 when any part is stopped."""
    status = stack.status()
    _print_status(status)
    if any(value == "stopped" for value in status.values()):
        sys.exit(3)


@local.command("env")
@click.pass_obj
def local_env(stack) -> None:
    """Print shell exports pointing every command at the stack: eval "$(cryptolake local env)"."""
    for key, value in stack.env().items():
        click.echo(f"export {key}={shlex.quote(value)}")


@local.command("airflow")
@click.option("--port", type=int, default=18280, show_default=True, help="Port of Airflow's UI and API.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Run the DAGs on this cluster (kubernetes backend) instead of the local stack.")
@click.option("--context", default=None, help="The kubeconfig's context (default: its current one).")
@click.pass_obj
def local_airflow(stack, port: int, kubeconfig: Path | None, context: str | None) -> None:
    """Airflow 3 standalone in the foreground with the repo's DAGs, metadata in the stack's PostgreSQL. Local
    backend: every task a `cryptolake` subprocess against the stack. With --kubeconfig: every task a pod or
    SparkApplication on that cluster, where the cryptolake chart runs (docs/kubernetes.md, "A real node without
    Docker"). Loopback only: every visitor is an admin. Ctrl-C stops it."""
    import os

    from cryptolake.local.airflow import ClusterAirflow, LocalAirflow

    airflow = ClusterAirflow(stack, kubeconfig, context, port) if kubeconfig else LocalAirflow(stack, port)
    env = airflow.prepare()
    hint = ("the DAGs start active: init runs at once, the groups on their schedules" if kubeconfig
            else "unpause a DAG and trigger it there")
    click.echo(f"Airflow on {airflow.url} (DAGs from {env['AIRFLOW__CORE__DAGS_FOLDER']}, logs under "
               f"{env['AIRFLOW_HOME']}); {hint}")
    os.execve(airflow.executable(), [airflow.executable(), "standalone"], env)


@cli.command()
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".local"),
              show_default=True, envvar="CRYPTOLAKE_STATE_DIR", help="State directory of the local stack.")
def demo(state_dir: Path) -> None:
    """Run the embedded default end to end on the local stack and print a summary."""
    from cryptolake.demo import run_demo

    summary, status = run_demo(state_dir)
    _print_status(summary)
    sys.exit(status)


# -- backups -------------------------------------------------------------------------------------------------
@cli.command()
@pass_context
def backup(ctx: Context) -> None:
    """Dump the warehouse (WAREHOUSE_URL) to <LAKE_URI>/gold/backups/<id>/ and print the id (UTC
    YYYYMMDDTHHMMSSZ) as the last line. Keeps the newest BACKUP_KEEP complete backups. See docs/backup.md."""
    from cryptolake.backup import backup as run_backup

    click.echo(run_backup(ctx.settings).id)


@cli.command()
@click.argument("backup_id", metavar="ID")
@click.option("--target", metavar="URL", help="Restore into this database (postgresql+psycopg2:// URL) instead "
                                              "of WAREHOUSE_URL.")
@click.option("--force", is_flag=True, help="Restore into a non-empty database, replacing its warehouse objects.")
@pass_context
def restore(ctx: Context, backup_id: str, target: str | None, force: bool) -> None:
    """Restore backup ID into WAREHOUSE_URL or --target (an empty database unless --force), then check every
    table's row count and checksum against the backup's manifest. See docs/backup.md."""
    from cryptolake.backup import restore as run_restore

    for line in run_restore(ctx.settings, backup_id, target=target, force=force):
        click.echo(line)


cli.add_command(sandbox)


def _print_status(status: dict[str, str]) -> None:
    for part, state in status.items():
        click.echo(f"{part:<34} {state}")


def main(argv: list[str] | None = None) -> None:
    """The console script; spark_apps/transform/main.py enters here too, with its own argv."""
    try:
        cli.main(args=argv, prog_name="cryptolake", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # one line, like every other error (click's own form takes four)
        command = exc.ctx.command_path if exc.ctx else "cryptolake"
        message = " ".join(exc.format_message().split())
        click.echo(logs.redact(f"error: {message} (see `{command} --help`)"), err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CryptolakeError as exc:
        log.debug("failed", exc_info=True)
        click.echo(logs.redact(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # unexpected: keep the traceback in the log, redacted by the formatter
        log.error("unexpected failure: %s", exc, exc_info=True)
        sys.exit(2)
