"""Launch a real sandbox API process on a free loopback port and wait until it answers (shared by the suites).

Its log goes to a file: an unread pipe fills up after a few thousand request lines and stalls the server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(*flags: str, log_dir: Path | None = None) -> tuple[subprocess.Popen, str, Path]:
    """(process, base URL, log file) of `python -m cryptolake.services.sandbox serve --port <free> <flags>`."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="sandbox-") if log_dir is None else log_dir) / f"sandbox-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "cryptolake.services.sandbox", "serve", "--port", str(port),
                                    *flags], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sandbox exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(url + "/sandbox/health", timeout=1).status_code == 200:
                return process, url, log
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the sandbox did not answer within 60 s: {log.read_text()[-2000:]}")
