"""Runtime settings: environment variables first, CLI flags override; validated once at start.

The table in SETTINGS is the single list of variables: `.env.example` and the docs are checked against it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from cryptolake import logs
from cryptolake.errors import CryptolakeError, SettingsError

DEFAULT_CMC_BASE_URL = "https://pro-api.coinmarketcap.com"


def _default_lake_uri() -> str:
    return (Path.cwd() / ".lake").as_uri()


def _default_spark_classpath() -> str:
    """A per-user cache, so a wheel install finds the jar list as well as a checkout does."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return str(Path(cache) / "cryptolake" / "spark-classpath.txt")


def _check_lake_uri(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme == "s3":
        if not parts.netloc:
            return f"LAKE_URI {value!r} has no bucket: use s3://bucket[/prefix]"
        return None
    if parts.scheme == "file":
        if not parts.path.startswith("/") or parts.netloc not in ("", "localhost"):
            return f"LAKE_URI {value!r} must be an absolute path: use file:///abs/path"
        return None
    return f"LAKE_URI {value!r} must start with s3:// or file:///"


def _check_http_url(name: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"{name} {logs.redact(value)!r} must be an http(s):// URL"
        return None

    return check


def _check_warehouse_url(value: str) -> str | None:
    if not value.startswith("postgresql+psycopg2://"):
        return (
            f"WAREHOUSE_URL {logs.redact(value)!r} must be a SQLAlchemy URL starting with "
            "postgresql+psycopg2:// (SQLAlchemy 2 needs the driver named)"
        )
    return None


def _check_positive_int(name: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if not value.isdigit() or int(value) <= 0:
            return f"{name} {value!r} must be a positive whole number"
        return None

    return check


def _check_number(name: str, accept: Callable[[float], bool], expected: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        try:
            if accept(float(value)):
                return None
        except ValueError:
            pass
        return f"{name} {value!r} must be {expected}"

    return check


def _check_positive_number(name: str) -> Callable[[str], str | None]:
    return _check_number(name, lambda v: v > 0, "a positive number, e.g. 2")


def _check_fraction(name: str) -> Callable[[str], str | None]:
    return _check_number(name, lambda v: 0 <= v < 1, "a fraction between 0 and 1, e.g. 0.35")


def _check_bool(name: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value.lower() not in ("true", "false"):
            return f"{name} {value!r} must be true or false"
        return None

    return check


@dataclass(frozen=True)
class Variable:
    env: str
    field: str
    help: str
    default: Callable[[], str | None] = lambda: None
    check: Callable[[str], str | None] | None = None
    parse: Callable[[str], Any] = str  # the checked text as the field's type
    secret: bool = False


SETTINGS: tuple[Variable, ...] = (
    Variable("CMC_API_KEY", "cmc_api_key", "CoinMarketCap API key (not needed against the sandbox)", secret=True),
    Variable("CMC_BASE_URL", "cmc_base_url", "CoinMarketCap API base URL",
             lambda: DEFAULT_CMC_BASE_URL, _check_http_url("CMC_BASE_URL")),
    Variable("LAKE_URI", "lake_uri", "lake root: s3://bucket[/prefix] or file:///abs/path",
             _default_lake_uri, _check_lake_uri),
    Variable("AWS_ENDPOINT_URL", "aws_endpoint_url", "S3-compatible endpoint (MinIO, SeaweedFS); empty for AWS",
             check=_check_http_url("AWS_ENDPOINT_URL")),
    Variable("AWS_ACCESS_KEY_ID", "aws_access_key_id", "S3 access key id"),
    Variable("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key", "S3 secret key", secret=True),
    Variable("AWS_REGION", "aws_region", "S3 region", lambda: "us-east-1"),
    Variable("LAKE_CONDITIONAL_WRITES", "lake_conditional_writes",
             "S3 writes ask the store to refuse an existing key (If-None-Match: *); false only for a store "
             "without conditional writes (docs/lake.md)", lambda: "true",
             _check_bool("LAKE_CONDITIONAL_WRITES"), lambda value: value.lower() == "true"),
    Variable("WAREHOUSE_URL", "warehouse_url", "postgresql+psycopg2://user:pw@host:port/db",
             check=_check_warehouse_url, secret=True),
    Variable("WAREHOUSE_LOADER_PASSWORD", "warehouse_loader_password",
             "password of login user cryptolake_loader_user, set by `cryptolake migrate` (unset: user untouched)",
             secret=True),
    Variable("WAREHOUSE_BACKUP_PASSWORD", "warehouse_backup_password",
             "password of login user cryptolake_backup_user, set by `cryptolake migrate` (unset: user untouched)",
             secret=True),
    Variable("WAREHOUSE_ANALYST_PASSWORD", "warehouse_analyst_password",
             "password of login user cryptolake_analyst_user, set by `cryptolake migrate` (unset: user untouched)",
             secret=True),
    Variable("CMC_MONTHLY_CREDITS", "cmc_monthly_credits", "plan's monthly credit quota",
             lambda: "10000", _check_positive_int("CMC_MONTHLY_CREDITS"), int),
    Variable("CMC_RATE_LIMIT", "cmc_rate_limit", "requests per minute allowed by the plan (key_info overrides)",
             lambda: "30", _check_positive_int("CMC_RATE_LIMIT"), int),
    Variable("CMC_CREDIT_MARGIN", "cmc_credit_margin",
             "share of the monthly quota kept in reserve: below it, low-priority extractors skip",
             lambda: "0.35", _check_fraction("CMC_CREDIT_MARGIN"), float),
    Variable("CMC_LISTINGS_LIMIT", "cmc_listings_limit", "coins fetched per listings snapshot",
             lambda: "5000", _check_positive_int("CMC_LISTINGS_LIMIT"), int),
    Variable("CMC_RESCAN_DAYS", "cmc_rescan_days", "days between full rescans of info and exchange assets",
             lambda: "30", _check_positive_int("CMC_RESCAN_DAYS"), int),
    Variable("CMC_CATEGORY_SLICE", "cmc_category_slice", "categories whose coins are fetched per run",
             lambda: "25", _check_positive_int("CMC_CATEGORY_SLICE"), int),
    Variable("CMC_RUN_CEILING_FACTOR", "cmc_run_ceiling_factor",
             "hard ceiling of one extraction run, as a multiple of its own call and credit estimate",
             lambda: "2", _check_positive_number("CMC_RUN_CEILING_FACTOR"), float),
    Variable("CMC_RUN_CEILING_EXTRA", "cmc_run_ceiling_extra",
             "calls and credits a run may spend beyond CMC_RUN_CEILING_FACTOR x its estimate",
             lambda: "5", _check_positive_int("CMC_RUN_CEILING_EXTRA"), int),
    Variable("DELTA_VACUUM_RETENTION_HOURS", "delta_vacuum_retention_hours",
             "hours of silver Delta history kept by the weekly VACUUM (time travel, --as-of-version)",
             lambda: "168", _check_positive_int("DELTA_VACUUM_RETENTION_HOURS"), int),
    Variable("LOAD_LOCK_WAIT_SECONDS", "load_lock_wait_seconds",
             "seconds a load waits for another load of the same table to end before it refuses that table",
             lambda: "600", _check_positive_int("LOAD_LOCK_WAIT_SECONDS"), int),
    Variable("LOAD_OUTAGE_WAIT_SECONDS", "load_outage_wait_seconds",
             "seconds a load waits out a PostgreSQL outage (restart, failover), trying the table again, before "
             "it fails", lambda: "120", _check_positive_int("LOAD_OUTAGE_WAIT_SECONDS"), int),
    Variable("BACKUP_KEEP", "backup_keep",
             "complete warehouse backups kept under gold/backups by `cryptolake backup` (older ones are deleted)",
             lambda: "8", _check_positive_int("BACKUP_KEEP"), int),
    Variable("CRYPTOLAKE_SPARK_CLASSPATH", "spark_classpath",
             "file listing the jars local Spark loads (`make jars` writes it); unused under spark-submit",
             _default_spark_classpath),
)


@dataclass(frozen=True)
class Settings:
    cmc_api_key: str | None
    cmc_base_url: str
    lake_uri: str
    aws_endpoint_url: str | None
    aws_access_key_id: str | None
    aws_secret_access_key: str | None
    aws_region: str
    lake_conditional_writes: bool
    warehouse_url: str | None
    warehouse_loader_password: str | None
    warehouse_backup_password: str | None
    warehouse_analyst_password: str | None
    cmc_monthly_credits: int
    cmc_rate_limit: int
    cmc_credit_margin: float
    cmc_listings_limit: int
    cmc_rescan_days: int
    cmc_category_slice: int
    cmc_run_ceiling_factor: float
    cmc_run_ceiling_extra: int
    delta_vacuum_retention_hours: int
    load_lock_wait_seconds: int
    load_outage_wait_seconds: int
    backup_keep: int
    spark_classpath: str

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read the environment, apply non-None overrides (CLI flags), validate everything at once."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for var in SETTINGS:
            raw = overrides.get(var.field)
            if raw is None:
                raw = env.get(var.env) or var.default()
            raw = None if raw is None else str(raw).strip()
            if var.secret and raw:
                logs.register_secret(raw)
            if raw and var.check:
                problem = var.check(raw)
                if problem:
                    problems.append(problem)
            values[var.field] = raw or None
        if problems:
            raise SettingsError(problems)
        values = {var.field: var.parse(values[var.field]) if values[var.field] is not None else None
                  for var in SETTINGS}
        values["lake_uri"] = values["lake_uri"].rstrip("/")
        return cls(**values)

    def require(self, field: str, hint: str) -> str:
        """The value of a setting a command cannot run without, or a clear error naming its variable."""
        value = getattr(self, field)
        if value:
            return value
        var = next(v for v in SETTINGS if v.field == field)
        raise CryptolakeError(f"{var.env} is not set", hint)

    def as_env(self) -> dict[str, str]:
        """The settings as environment variables, for child processes (Spark's JVM, subprocess jobs)."""
        by_field = {v.field: v.env for v in SETTINGS}
        return {by_field[f.name]: str(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}
