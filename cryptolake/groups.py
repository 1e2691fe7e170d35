"""The frequency groups, defined once: extractors, silver tables, the CLI and the DAGs all name these."""

GROUPS = ("daily", "weekly", "5x", "10x", "init", "all")
