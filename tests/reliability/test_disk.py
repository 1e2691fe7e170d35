"""A full disk under a file:// lake: a small tmpfs mounted for the lake and filled up, the extract fails with one
clear "No space left" line and leaves no visible snapshot; once space is freed a re-run of the cycle completes,
nothing lost.

Mounting needs root or CAP_SYS_ADMIN (CI runs as root); without it the test fails rather than fake a full disk.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time

import pytest

from tests.reliability.servers import OwnStack, finish, own_world, run_step, start_step

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]

SIZE = "64m"  # enough for the 5x cycle's bronze, silver and Spark event logs once the filler is gone


@pytest.fixture(scope="module")
def own():
    stack = OwnStack.start()
    yield stack
    stack.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of SIZE, mounted for the test and unmounted after it."""
    point = tmp_path / "disk"
    point.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(point)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.fail(f"cannot mount a {SIZE} tmpfs for the full disk ({mount.stderr.strip()}): run the slow half "
                    "as root or with CAP_SYS_ADMIN, as CI does")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(directory) -> int:
    """Write zeros until the filesystem refuses (ENOSPC); the bytes written."""
    written, block = 0, b"\0" * (1 << 20)
    with open(directory / "filler", "wb", buffering=0) as out:
        while True:
            try:
                written += out.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                for size in (4096, 1):  # the last blocks, so not even a small file fits
                    try:
                        while True:
                            written += out.write(b"\0" * size)
                    except OSError:
                        pass
                return written


def test_full_disk_fails_cleanly_and_recovers(own, small_disk, tmp_path):
    point = small_disk
    lake_dir = point / "lake"
    lake_dir.mkdir()
    world = own_world(own, tmp_path, lake_uri=lake_dir.as_uri())
    fill(point)
    step = start_step(world, ("extract", "--group", "5x"))
    code = step.wait()
    assert code != 0
    last = step.stderr().strip().splitlines()[-1]
    assert last.startswith("error:") and "No space left" in last, last
    # No half-visible snapshot: no ledger record lists a file, and no bronze file is visible.
    assert world.lake.list_files("bronze/crypto_categories", ".parquet") == []
    assert not [r for r in world.ledger().records() if r.files]
    os.unlink(point / "filler")
    since = time.time()
    again = run_step(world, ("run", "--group", "5x"))
    assert again.process.returncode == 0, again.stderr()[-3000:]
    finish(world, allow_orphans=True, served_since=since)
