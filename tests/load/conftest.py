"""The load tests reuse the transform tests' sandbox bronze (built once per session)."""

from tests.transform.conftest import sandbox_bronze  # noqa: F401  (a fixture, shared)
