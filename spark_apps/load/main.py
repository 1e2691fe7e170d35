"""Entry point of the load Spark application, locally (`cryptolake load --group g`) and as the
SparkApplication's mainApplicationFile (`spark-submit .../spark_apps/load/main.py --group g`).

Exit status: 0 when every table of the group was loaded (or had nothing new), 1 when any table failed (the
ledger under _meta/load/<table>/ has the details), 2 on an unexpected error before any table ran.
"""

from __future__ import annotations

from cryptolake.settings import Settings


def run(settings: Settings, group: str, *, spark=None, tables: list[str] | None = None,
        as_of_version: int | None = None) -> int:
    """Build a SparkSession (unless one is injected), load the group, stop what was built here."""
    from cryptolake.spark_apps.session import run_step
    from cryptolake.spark_apps.load.loader import load_group

    return run_step("load", group, settings, spark, lambda session: load_group(
        session, settings, group, tables=tables, as_of_version=as_of_version))


def main(argv: list[str] | None = None) -> None:
    """spark-submit's entry: the `cryptolake load` command itself."""
    from cryptolake.spark_apps.session import submit_entry

    submit_entry("load", argv)


if __name__ == "__main__":
    main()
