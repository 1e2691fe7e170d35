"""Entry point of the transform Spark application, locally (`cryptolake transform --group g`) and as the
SparkApplication's mainApplicationFile (`spark-submit .../spark_apps/transform/main.py --group g`).

Exit status: 0 when every table of the group was built (or was already up to date), 1 when any table or the
maintenance failed (the ledger has the details), 2 on an unexpected error before any table ran.
"""

from __future__ import annotations

import sys

from cryptolake.settings import Settings


def run(settings: Settings, group: str, *, spark=None, tables: list[str] | None = None) -> int:
    """Build a SparkSession (unless one is injected), run the group, stop what was built here."""
    from cryptolake.spark_apps.session import build_spark_session
    from cryptolake.spark_apps.transform.runner import run_group

    own = spark is None
    if own:
        spark = build_spark_session(f"cryptolake-transform-{group}", settings)
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
    """spark-submit's entry: the `cryptolake transform` command itself, so options and checks exist once."""
    from cryptolake.cli import main as cli_main

    cli_main(["transform", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
