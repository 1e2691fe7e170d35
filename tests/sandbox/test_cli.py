"""`cryptolake sandbox` on the command line: help everywhere, clear one-line errors for bad flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.sandbox.conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptolake", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


@pytest.mark.parametrize("args", [("sandbox", "--help"), ("sandbox", "serve", "--help"), ("sandbox", "-h")])
def test_help(args):
    result = _run(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_serve_help_lists_every_knob():
    text = _run("sandbox", "serve", "--help").stdout
    for flag in ("--host", "--port", "--seed", "--coins", "--exchanges", "--categories", "--clock", "--start",
                 "--rate", "--rate-limit", "--monthly-credits", "--daily-credits", "--faults", "--api-key",
                 "--retry-after", "--usage-file", "--max-convert"):
        assert flag in text


def test_start_needs_a_simulated_clock():
    result = _run("sandbox", "serve", "--start", "2025-01-01")
    assert result.returncode == 2 and "--start needs --clock simulated" in result.stderr


def test_a_taken_port_is_one_clear_line():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        result = _run("sandbox", "serve", "--port", str(sock.getsockname()[1]), "--coins", "300",
                      "--exchanges", "30", "--categories", "30")
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1" in result.stderr and "Traceback" not in result.stderr
