"""Entry point of the transform Spark application, locally (`cryptolake transform --group g`) and as the
SparkApplication's mainApplicationFile (`spark-submit .../spark_apps/transform/main.py --group g`).

Exit status: 0 when every table of the group was built (or was already up to date), 1 when any table or the
maintenance failed (the ledger has the details), 2 on an unexpected error before any table ran.
"""

from __future__ import annotations

import argparse
import sys

from cryptolake import logs
from cryptolake.errors import CryptolakeError
from cryptolake.settings import Settings

log = logs.get("cryptolake.transform")


def run(settings: Settings, group: str, *, spark=None, tables: list[str] | None = None) -> int:
    """Build a SparkSession (unless one is injected), run the group, stop what was built here."""
    from cryptolake.spark_apps.session import build_spark_session
    from cryptolake.spark_apps.transform.runner import RUNTIME_CONF, run_group

    own = spark is None
    if own:
        spark = build_spark_session(f"cryptolake-transform-{group}", settings, conf=RUNTIME_CONF)
    try:
        outcome = run_group(spark, settings, group, tables=tables, maintenance=False if tables else None)
    finally:
        if own:
            spark.stop()
    if outcome.failed:
        print(f"error: transform {group}: {', '.join(outcome.failed)} failed. The log above and "
              f"{settings.lake_uri}/_meta/transform/<table>/ hold the error; fix it and run the group again "
              "(runs are idempotent)", file=sys.stderr)
    return outcome.exit_code


def main(argv: list[str] | None = None) -> None:
    from cryptolake.spark_apps.transform.tables import GROUPS

    parser = argparse.ArgumentParser(prog="transform", description="bronze Parquet -> silver Delta, one group")
    parser.add_argument("--group", required=True, choices=GROUPS)
    parser.add_argument("--table", action="append", help="only this table of the group (repeatable)")
    args = parser.parse_args(argv)
    logs.configure(job=f"transform:{args.group}")
    try:
        sys.exit(run(Settings.load(), args.group, tables=args.table))
    except CryptolakeError as exc:
        print(logs.redact(f"error: {exc}"), file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
