from tests.transform.conftest import sandbox_bronze  # noqa: F401  (a fixture, shared)
