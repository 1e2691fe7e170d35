"""Entry point of the transform Spark application, locally (`cryptolake transform --group g`) and as the
SparkApplication's mainApplicationFile (`spark-submit .../spark_apps/transform/main.py --group g`).

Exit status: 0 when every table of the group was built (or was already up to date), 1 when any table or the
maintenance failed (the ledger has the details), 2 on an unexpected error before any table ran.
"""

from __future__ import annotations

from cryptolake.settings import Settings


def run(settings: Settings, group: str, *, spark=None, tables: list[str] | None = None) -> int:
    """Build a SparkSession (unless one is injected), run the group, stop what was built here."""
    from cryptolake.spark_apps.session import run_step
    from cryptolake.spark_apps.transform.runner import run_group

    return run_step("transform", group, settings, spark, lambda session: run_group(
        session, settings, group, tables=tables, maintenance=False if tables else None))


def main(argv: list[str] | None = None) -> None:
    """spark-submit's entry: the `cryptolake transform` command itself."""
    from cryptolake.spark_apps.session import submit_entry

    submit_entry("transform", argv)


if __name__ == "__main__":
    main()
