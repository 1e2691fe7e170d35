"""The embedded default stack: PostgreSQL and an S3 server on loopback, all state under one directory.

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

DEFAULT_PG_PORT = 15432
DEFAULT_S3_PORT = 19000
BUCKET = "cryptolake"

log = logs.get(__name__)


@dataclass(frozen=True)
class StackConfig:
    pg_port: int
    s3_port: int
    pg_password: str
    s3_access_key: str
    s3_secret_key: str


class LocalStack:
    def __init__(self, state_dir: Path, pg_port: int | None = None, s3_port: int | None = None):
        self.state_dir = state_dir.resolve()
        self.config = self._load_config(pg_port, s3_port)
        for secret in (self.config.pg_password, self.config.s3_secret_key):
            logs.register_secret(secret)
        self.postgres = Postgres(self.state_dir, self.config.pg_port, self.config.pg_password)
        self.s3 = ObjectStore(self.state_dir, self.config.s3_port, self.config.s3_access_key,
                              self.config.s3_secret_key, BUCKET)

    @property
    def _config_file(self) -> Path:
        return self.state_dir / "stack.json"

    def _load_config(self, pg_port: int | None, s3_port: int | None) -> StackConfig:
        saved = json.loads(self._config_file.read_text()) if self._config_file.exists() else None
        if saved is None:  # first use: generate credentials once and keep them
            config = StackConfig(pg_port or DEFAULT_PG_PORT, s3_port or DEFAULT_S3_PORT,
                                 secrets.token_urlsafe(18), "cryptolake-" + secrets.token_hex(4),
                                 secrets.token_urlsafe(24))
            self._save_config(config)
            return config
        config = StackConfig(**saved)
        changed = {k: v for k, v in (("pg_port", pg_port), ("s3_port", s3_port))
                   if v is not None and v != getattr(config, k)}
        if changed:
            return StackConfig(**{**saved, **changed})
        return config

    def _save_config(self, config: StackConfig) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._config_file.touch(mode=0o600)
        self._config_file.write_text(json.dumps(config.__dict__, indent=2))

    def up(self) -> dict[str, str]:
        saved = json.loads(self._config_file.read_text())
        if saved != self.config.__dict__:
            if self.postgres.running() or self.s3.running():
                raise LocalStackError("the local stack is running with other ports",
                                      "Run `cryptolake local down` first to change ports")
            self._save_config(self.config)
        log.info("starting PostgreSQL on 127.0.0.1:%d", self.config.pg_port)
        self.postgres.up()
        log.info("starting the S3 server on 127.0.0.1:%d", self.config.s3_port)
        self.s3.up()
        return self.status()

    def down(self) -> dict[str, bool]:
        return {"postgres": self.postgres.down(), "s3": self.s3.down()}

    def status(self) -> dict[str, str]:
        def state(running: bool, where: str) -> str:
            return f"running on {where}" if running else "stopped"

        return {
            "postgres": state(self.postgres.running(), f"127.0.0.1:{self.config.pg_port}"),
            "s3": state(self.s3.running(), self.s3.endpoint),
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
        }
