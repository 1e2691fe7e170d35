"""Airflow DAGs and SparkApplication manifests rendered from the pipeline spec, and the commands they run."""
