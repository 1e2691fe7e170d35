"""The load Spark application: silver Delta -> PostgreSQL warehouse (loader: the per-table load; main: entry)."""
