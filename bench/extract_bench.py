"""Extraction benchmarks against the sandbox (run with `make bench-extract`; results go in docs/extraction.md).

1. Peak memory (max RSS of the extract process) of crypto_listings_latest at 2,000 and 10,000 coins and of
   exchange_assets at 100 and 800 exchanges: streaming means the peak does not grow with the count.
2. Wall time of a rate-limited run against its floor, calls / (calls allowed per minute).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptolake.ledger import Ledger  # noqa: E402
from cryptolake.lake import Lake  # noqa: E402
from cryptolake.settings import Settings  # noqa: E402
from tests.extract.conftest import extract_env, start_sandbox  # noqa: E402


def extract(env: dict[str, str], *args: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `cryptolake extract` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "cryptolake", "--log-json", "extract", *args], env={**os.environ, **env},
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("RUSAGE_CHILDREN did not grow: run each measurement in a fresh bench process")
    return seconds, peak / 1024


def measure_memory(name: str, universe: list[str], limit_env: dict[str, str], setup: list[str]) -> None:
    server = start_sandbox("--rate-limit", "1000000", *universe)
    try:
        with tempfile.TemporaryDirectory() as lake_dir:
            env = {**extract_env(server), **limit_env, "LAKE_URI": Path(lake_dir).as_uri(),
                   "CMC_RATE_LIMIT": "1000000", "CMC_CREDIT_MARGIN": "0"}
            for prerequisite in setup:
                subprocess.run([sys.executable, "-m", "cryptolake", "extract", prerequisite], env={**os.environ, **env},
                               check=True, capture_output=True, cwd=REPO)
            seconds, peak = extract(env, name)
            record = Ledger(Lake.from_settings(Settings.load(env=env))).latest("extract", name)
            print(f"{name:<24} {' '.join(universe):<36} rows={record.rows:>7} calls={record.details['calls']:>4} "
                  f"time={seconds:6.1f}s peak_rss={peak:6.1f} MB", flush=True)
    finally:
        server.process.terminate()


def measure_rate_limited(per_minute: int, exchanges: int) -> None:
    server = start_sandbox("--rate-limit", str(per_minute), "--exchanges", str(exchanges), rate=1)
    try:
        with tempfile.TemporaryDirectory() as lake_dir:
            env = {**extract_env(server), "LAKE_URI": Path(lake_dir).as_uri(), "CMC_RATE_LIMIT": str(per_minute),
                   "CMC_CREDIT_MARGIN": "0"}
            extract(env, "exchange_map")
            server.control("POST", "usage/reset")
            time.sleep(60)  # start with an empty minute window on both sides
            seconds, _ = extract(env, "exchange_assets")
            ledger = Ledger(Lake.from_settings(Settings.load(env=env)))
            calls = ledger.latest("extract", "exchange_assets").details["calls"] + 1  # + key_info
            floor = calls / per_minute * 60
            print(f"rate-limited exchange_assets: {calls} calls at {per_minute}/min: {seconds:.1f}s, "
                  f"floor {floor:.1f}s, ratio {seconds / floor:.2f}", flush=True)
    finally:
        server.process.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=["listings-2000", "listings-10000", "assets-100", "assets-800", "rate"])
    case = parser.parse_args().case
    if case.startswith("listings"):
        coins = int(case.split("-")[1])
        measure_memory("crypto_listings_latest", ["--coins", str(coins + coins // 5)],
                       {"CMC_LISTINGS_LIMIT": str(coins)}, [])
    elif case.startswith("assets"):
        measure_memory("exchange_assets", ["--exchanges", case.split("-")[1]], {}, ["exchange_map"])
    else:
        measure_rate_limited(per_minute=60, exchanges=150)


if __name__ == "__main__":
    print(f"# {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}", file=sys.stderr)
    main()
