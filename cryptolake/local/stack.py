"""The embedded default stack: PostgreSQL, an S3 server and the sandbox API on loopback, all state under one directory.

`up` is idempotent (running parts are health-checked, not restarted); `down` stops only what this state
directory started. Ports and generated credentials are remembered in the state directory, so `local env`
prints the same values on every call.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptolake import logs
from cryptolake.errors import LocalStackError
from cryptolake.local.objectstore import REGION, ObjectStore
from cryptolake.local.postgres import Postgres
from cryptolake.local.sandbox import SandboxApi
from cryptolake.services.sandbox import DEFAULT_API_KEY

DEFAULT_PG_PORT = 15432
DEFAULT_S3_PORT = 19000
DEFAULT_SANDBOX_PORT = 18080
BUCKET = "cryptolake"

log = logs.get(__name__)


@dataclass(frozen=True)
class StackConfig:
    pg_port: int
    s3_port: int
    pg_password: str
    s3_access_key: str
    s3_secret_key: str
    sandbox_port: int = DEFAULT_SANDBOX_PORT  # a default: stack.json files written before the sandbox lack it


class LocalStack:
    def __init__(self, state_dir: Path, pg_port: int | None = None, s3_port: int | None = None,
                 sandbox_port: int | None = None):
        self.state_dir = state_dir.resolve()
        self.config = self._load_config(pg_port, s3_port, sandbox_port)
        for secret in (self.config.pg_password, self.config.s3_secret_key):
            logs.register_secret(secret)
        self.postgres = Postgres(self.state_dir, self.config.pg_port, self.config.pg_password)
        self.s3 = ObjectStore(self.state_dir, self.config.s3_port, self.config.s3_access_key,
                              self.config.s3_secret_key, BUCKET)
        self.sandbox = SandboxApi(self.state_dir, self.config.sandbox_port)

    @property
    def _config_file(self) -> Path:
        return self.state_dir / "stack.json"

    def _load_config(self, pg_port: int | None, s3_port: int | None, sandbox_port: int | None) -> StackConfig:
        saved = json.loads(self._config_file.read_text()) if self._config_file.exists() else None
        if saved is None:  # first use: generate credentials once and keep them
            config = StackConfig(pg_port or DEFAULT_PG_PORT, s3_port or DEFAULT_S3_PORT,
                                 secrets.token_urlsafe(18), "cryptolake-" + secrets.token_hex(4),
                                 secrets.token_urlsafe(24), sandbox_port or DEFAULT_SANDBOX_PORT)
            self._save_config(config)
            return config
        config = StackConfig(**saved)
        changed = {k: v for k, v in (("pg_port", pg_port), ("s3_port", s3_port), ("sandbox_port", sandbox_port))
                   if v is not None and v != getattr(config, k)}
        if changed:
            return StackConfig(**{**saved, **changed})
        return config

    def _save_config(self, config: StackConfig) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._config_file.touch(mode=0o600)
        self._config_file.write_text(json.dumps(config.__dict__, indent=2))

    def up(self) -> dict[str, str]:
        saved = StackConfig(**json.loads(self._config_file.read_text()))
        if saved != self.config:
            if self.postgres.running() or self.s3.running() or self.sandbox.running():
                raise LocalStackError("the local stack is running with other ports",
                                      "Run `cryptolake local down` first to change ports")
            self._save_config(self.config)
        log.info("starting PostgreSQL on 127.0.0.1:%d", self.config.pg_port)
        self.postgres.up()
        log.info("starting the S3 server on 127.0.0.1:%d", self.config.s3_port)
        self.s3.up()
        log.info("starting the sandbox CoinMarketCap API on 127.0.0.1:%d", self.config.sandbox_port)
        self.sandbox.up()
        return self.status()

    def down(self) -> dict[str, bool]:
        return {"postgres": self.postgres.down(), "s3": self.s3.down(), "sandbox": self.sandbox.down()}

    def status(self) -> dict[str, str]:
        def state(running: bool, where: str) -> str:
            return f"running on {where}" if running else "stopped"

        return {
            "postgres": state(self.postgres.running(), f"127.0.0.1:{self.config.pg_port}"),
            "s3": state(self.s3.running(), self.s3.endpoint),
            "sandbox": state(self.sandbox.running(), self.sandbox.endpoint),
        }

    def env(self) -> dict[str, str]:
        """Settings that point every command at this stack (see `cryptolake local env`)."""
        return {
            "LAKE_URI": f"s3://{BUCKET}",
            "AWS_ENDPOINT_URL": self.s3.endpoint,
            "AWS_ACCESS_KEY_ID": self.config.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.config.s3_secret_key,
            "AWS_REGION": REGION,
            "WAREHOUSE_URL": self.postgres.url(),
            "CMC_BASE_URL": self.sandbox.endpoint,
            "CMC_API_KEY": DEFAULT_API_KEY,
        }
