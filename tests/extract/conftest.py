"""A real sandbox API process per test module, on a frozen simulated clock so every answer is reproducible."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass

import pytest
import requests

from cryptolake.lake import Lake
from cryptolake.services.sandbox import DEFAULT_API_KEY
from tests.conftest import settings_for
from tests.sandbox_process import launch

START = "2026-11-02T08:00:00Z"  # a Monday


@dataclass
class Sandbox:
    url: str
    process: subprocess.Popen

    def control(self, method: str, path: str, body: dict | None = None) -> dict:
        answer = requests.request(method, f"{self.url}/sandbox/{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def api(self, path: str, **params) -> dict:
        answer = requests.get(self.url + path, params=params, headers={"X-CMC_PRO_API_KEY": DEFAULT_API_KEY},
                              timeout=30)
        return answer.json()

    def set_clock(self, iso: str) -> None:
        self.control("POST", "clock", {"set": iso})

    def advance_days(self, days: float) -> None:
        self.control("POST", "clock", {"advance_seconds": days * 86400})

    def fault(self, **spec) -> None:
        self.control("POST", "faults", spec)  # one fault object

    def reset(self) -> None:
        self.control("DELETE", "faults")
        self.control("POST", "usage/reset")
        self.set_clock(START)


def start_sandbox(*flags: str, rate: float = 0) -> Sandbox:
    """rate 0 freezes the simulated clock (reproducible answers); 1 lets it run, so minute windows roll."""
    process, url, _ = launch("--seed", "7", "--coins", "600", "--exchanges", "40", "--categories", "20",
                             "--clock", "simulated", "--start", START, "--rate", str(rate), "--retry-after", *flags)
    return Sandbox(url, process)


@pytest.fixture(scope="module")
def sandbox():
    server = start_sandbox("--rate-limit", "100000")
    yield server
    server.process.terminate()
    server.process.wait(10)


@pytest.fixture
def fresh_sandbox(sandbox):
    sandbox.reset()
    yield sandbox
    sandbox.control("DELETE", "faults")


def extract_env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return {"CMC_BASE_URL": sandbox.url, "CMC_API_KEY": DEFAULT_API_KEY, "CMC_RATE_LIMIT": "100000",
            "CMC_LISTINGS_LIMIT": "450", **extra}


@pytest.fixture
def s3_settings(fresh_sandbox, stack_env):
    return settings_for(f"s3://cryptolake/tests/extract-{uuid.uuid4().hex[:10]}",
                        {**stack_env, **extract_env(fresh_sandbox)})


@pytest.fixture
def s3_extract_lake(s3_settings) -> Lake:
    return Lake.from_settings(s3_settings)
