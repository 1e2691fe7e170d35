"""Spark applications (transform, load) and the shared Spark/Delta session."""
