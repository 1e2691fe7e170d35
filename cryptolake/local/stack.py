"""The embedded default stack: PostgreSQL, an S3 server, the sandbox API and Spark's History Server (over the lake's
event logs) on loopback, all state under one directory.

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
from cryptolake.local.history import HistoryServer
from cryptolake.local.objectstore import REGION, ObjectStore
from cryptolake.local.postgres import Postgres
from cryptolake.local.sandbox import SandboxApi
from cryptolake.services.sandbox import DEFAULT_API_KEY

DEFAULT_PG_PORT = 15432
DEFAULT_S3_PORT = 19000
DEFAULT_SANDBOX_PORT = 18080
DEFAULT_HISTORY_PORT = 18081
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
    history_port: int = DEFAULT_HISTORY_PORT  # likewise for those written before the History Server


# Each part's port field, so that `up` can tell which running part a port change would move.
PORT_FIELDS = {"postgres": "pg_port", "s3": "s3_port", "sandbox": "sandbox_port", "history": "history_port"}


class LocalStack:
    def __init__(self, state_dir: Path, pg_port: int | None = None, s3_port: int | None = None,
                 sandbox_port: int | None = None, history_port: int | None = None):
        self.state_dir = state_dir.resolve()
        self.config = self._load_config(pg_port=pg_port, s3_port=s3_port, sandbox_port=sandbox_port,
                                        history_port=history_port)
        for secret in (self.config.pg_password, self.config.s3_secret_key):
            logs.register_secret(secret)
        self.postgres = Postgres(self.state_dir, self.config.pg_port, self.config.pg_password)
        self.s3 = ObjectStore(self.state_dir, self.config.s3_port, self.config.s3_access_key,
                              self.config.s3_secret_key, BUCKET)
        self.sandbox = SandboxApi(self.state_dir, self.config.sandbox_port)
        self.history = HistoryServer(self.state_dir, self.config.history_port, self._lake_env())

    @property
    def _config_file(self) -> Path:
        return self.state_dir / "stack.json"

    def _load_config(self, **ports: int | None) -> StackConfig:
        saved = json.loads(self._config_file.read_text()) if self._config_file.exists() else None
        if saved is None:  # first use: generate credentials once and keep them
            defaults = {"pg_port": DEFAULT_PG_PORT, "s3_port": DEFAULT_S3_PORT}
            config = StackConfig(**{**defaults, **{k: v for k, v in ports.items() if v is not None}},
                                 pg_password=secrets.token_urlsafe(18),
                                 s3_access_key="cryptolake-" + secrets.token_hex(4),
                                 s3_secret_key=secrets.token_urlsafe(24))
            self._save_config(config)
            return config
        config = StackConfig(**saved)
        changed = {k: v for k, v in ports.items() if v is not None and v != getattr(config, k)}
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
            moved = [part for part, field in PORT_FIELDS.items()
                     if getattr(saved, field) != getattr(self.config, field) and getattr(self, part).running()]
            if moved:
                raise LocalStackError(f"the local stack's {', '.join(moved)} is running on another port",
                                      "Run `cryptolake local down` first to change ports")
            self._save_config(self.config)
        log.info("starting PostgreSQL on 127.0.0.1:%d", self.config.pg_port)
        self.postgres.up()
        log.info("starting the S3 server on 127.0.0.1:%d", self.config.s3_port)
        self.s3.up()
        log.info("starting the sandbox CoinMarketCap API on 127.0.0.1:%d", self.config.sandbox_port)
        self.sandbox.up()
        log.info("starting the Spark History Server on 127.0.0.1:%d", self.config.history_port)
        self.history.up()
        return self.status()

    def down(self) -> dict[str, bool]:
        history = self.history.down()  # first: it reads the S3 server
        return {"postgres": self.postgres.down(), "s3": self.s3.down(), "sandbox": self.sandbox.down(),
                "history": history}

    def status(self) -> dict[str, str]:
        def state(running: bool, where: str) -> str:
            return f"running on {where}" if running else "stopped"

        return {
            "postgres": state(self.postgres.running(), f"127.0.0.1:{self.config.pg_port}"),
            "s3": state(self.s3.running(), self.s3.endpoint),
            "sandbox": state(self.sandbox.running(), self.sandbox.endpoint),
            "history": state(self.history.running(), self.history.url),
        }

    def _lake_env(self) -> dict[str, str]:
        return {
            "LAKE_URI": f"s3://{BUCKET}",
            "AWS_ENDPOINT_URL": self.s3.endpoint,
            "AWS_ACCESS_KEY_ID": self.config.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.config.s3_secret_key,
            "AWS_REGION": REGION,
        }

    def env(self) -> dict[str, str]:
        """Settings that point every command at this stack (see `cryptolake local env`), and where to look."""
        return {
            **self._lake_env(),
            "WAREHOUSE_URL": self.postgres.url(),
            "CMC_BASE_URL": self.sandbox.endpoint,
            "CMC_API_KEY": DEFAULT_API_KEY,
            # not a setting (no command reads it): the Spark applications' runs, from the lake's event logs
            "SPARK_HISTORY_URL": self.history.url,
        }
