"""The sandbox CoinMarketCap API as part of the local stack, so the demo and `local env` need no key.

It runs on the wall clock with the free plan's monthly credits (what the budget governor plans for) but a
generous per-minute limit: at the free plan's 30 requests a minute a demo's first full scan would take an hour.
Credit usage is kept in the state directory, so restarting the stack does not hand out a fresh month.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cryptolake.local.process import Daemon, http_ok, refuse_taken_port, wait_until

RATE_LIMIT = 1000
MONTHLY_CREDITS = 10_000


class SandboxApi:
    def __init__(self, state_dir: Path, port: int):
        self.port = port
        self.log_file = state_dir / "logs" / "sandbox.log"
        self.usage_file = state_dir / "sandbox-usage.json"
        self.daemon = Daemon("sandbox", state_dir / "sandbox.pid", marker=f"--usage-file={self.usage_file}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.daemon.running()

    def up(self) -> None:
        if not self.running():
            refuse_taken_port(self.port, "the sandbox API", "--sandbox-port")
            argv = [sys.executable, "-m", "cryptolake.services.sandbox", "serve", "--port", str(self.port),
                    f"--usage-file={self.usage_file}", "--rate-limit", str(RATE_LIMIT),
                    "--monthly-credits", str(MONTHLY_CREDITS)]
            self.daemon.start(argv, self.log_file)
        wait_until(self._answers, 60, "the sandbox API", self.log_file)

    def down(self) -> bool:
        return self.daemon.stop()

    def _answers(self) -> bool:
        return http_ok(f"{self.endpoint}/sandbox/health")
