"""Entry point of the load Spark application, locally (`cryptolake load --group g`) and as the
SparkApplication's mainApplicationFile (`spark-submit .../spark_apps/load/main.py --group g`).

Exit status: 0 when every table of the group was loaded (or had nothing new), 1 when any table failed (the
ledger under _meta/load/<table>/ has the details), 2 on an unexpected error before any table ran.
"""

from __future__ import annotations

import sys

from cryptolake.settings import Settings


def run(settings: Settings, group: str, *, spark=None, tables: list[str] | None = None) -> int:
    """Build a SparkSession (unless one is injected), load the group, stop what was built here."""
    from cryptolake.spark_apps.load.loader import load_group
    from cryptolake.spark_apps.session import build_spark_session

    own = spark is None
    if own:
        spark = build_spark_session(f"cryptolake-load-{group}", settings)
    try:
        outcome = load_group(spark, settings, group, tables=tables)
    finally:
        if own:
            spark.stop()
    if outcome.failed:
        print(f"error: load {group}: {', '.join(outcome.failed)} failed. The log above and "
              f"{settings.lake_uri}/_meta/load/<table>/ hold the error; fix it and run the group again "
              "(loads are idempotent)", file=sys.stderr)
    return outcome.exit_code


def main(argv: list[str] | None = None) -> None:
    """spark-submit's entry: the `cryptolake load` command itself, so options and checks exist once."""
    from cryptolake.cli import main as cli_main

    cli_main(["load", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
