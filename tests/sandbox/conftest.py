"""Real sandbox server processes on free loopback ports (no mocks), and a small client for them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.sandbox_process import launch

from cryptolake.services.sandbox import DEFAULT_API_KEY

REPO = Path(__file__).resolve().parents[2]
START = "2025-03-01T12:00:00Z"
FAST_PLAN = ("--rate-limit", "1000000", "--monthly-credits", "1000000000", "--max-convert", "3")


@dataclass
class Sandbox:
    url: str
    process: subprocess.Popen
    log: Path
    key: str = DEFAULT_API_KEY

    def get(self, path: str, key: str | None = "default", **params) -> requests.Response:
        headers = {"X-CMC_PRO_API_KEY": self.key if key == "default" else key} if key else {}
        return requests.get(self.url + path, params=params, headers=headers, timeout=30)

    def data(self, path: str, **params):
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def control(self, method: str, path: str, body=None) -> dict:
        response = requests.request(method, self.url + path, json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def advance(self, seconds: float) -> None:
        self.control("POST", "/sandbox/clock", {"advance_seconds": seconds})

    def set_clock(self, when: str) -> None:
        self.control("POST", "/sandbox/clock", {"set": when})

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def start_sandbox(tmp_dir: Path, *args: str) -> Sandbox:
    """`python -m cryptolake.services.sandbox serve ...` on a free port; returns once it answers."""
    process, url, log = launch(*args, log_dir=tmp_dir)
    return Sandbox(url, process, log)


@pytest.fixture(scope="session")
def sandbox_factory(tmp_path_factory):
    """Start extra servers (their own plan, seed, faults...); all are stopped at the end of the session."""
    started: list[Sandbox] = []
    tmp_dir = tmp_path_factory.mktemp("sandboxes")

    def start(*args: str) -> Sandbox:
        server = start_sandbox(tmp_dir, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sandbox(sandbox_factory) -> Sandbox:
    """The full default universe (10,000 coins), a frozen simulated clock and a plan that never throttles.

    Tests that move its clock or add faults must restore them; most tests use their own small server instead.
    """
    return sandbox_factory("--clock", "simulated", "--start", START, "--rate", "0", *FAST_PLAN)


@pytest.fixture
def small(sandbox_factory) -> Sandbox:
    """A fresh small universe (fast to start) with a frozen clock and no throttling, for one test."""
    return sandbox_factory("--clock", "simulated", "--start", START, "--rate", "0", "--coins", "1500",
                           "--exchanges", "120", "--categories", "60", *FAST_PLAN)
