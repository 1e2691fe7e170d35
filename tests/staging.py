"""A real lake writer stopped mid-write, for the staging-file sweep tests: a child process streaming a Parquet
file whose second batch never comes, so its staging file exists (and is held) until the test kills it."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptolake.lake import Lake

WRITER = """
import sys, time
import pyarrow as pa
from cryptolake.lake import Lake
from cryptolake.settings import Settings

def batches():
    yield pa.table({"id": [1, 2, 3]})
    print("staged", flush=True)
    time.sleep(600)

Lake.from_settings(Settings.load()).write_parquet(sys.argv[1], pa.schema([("id", pa.int64())]), batches())
"""


def start_writer(lake: Lake, env: dict[str, str], rel: str) -> subprocess.Popen:
    """A writer of `rel` on `lake` (env: its AWS_* settings), returned once its staging file exists."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, rel], env={**os.environ, **env, "LAKE_URI": lake.uri},
                              stdout=subprocess.PIPE, text=True)
    line = writer.stdout.readline().strip()
    assert line == "staged", f"the writer did not get to its second batch (exit {writer.poll()})"
    return writer


def staging_files(lake: Lake, job: str) -> list[str]:
    """The staging files on this machine that `job`'s writes make, as docs/lake.md names them."""
    if lake.is_local:
        root = Path(lake.uri.removeprefix("file://"))
        return sorted(str(p) for p in root.rglob(".*.tmp"))
    return sorted(glob.glob(f"{tempfile.gettempdir()}/cryptolake-{job}.*.part"))


def age(path: str, seconds: float) -> None:
    """Make the file look last written `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))
