"""Run a command as a person would see it: all its output on a pseudo-terminal with a real window size."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios


def run_on_terminal(command: list[str], *, env: dict[str, str], cwd, timeout: float = 300) -> tuple[int, str]:
    """(exit status, everything the terminal showed)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # tqdm draws to the width
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], timeout)
        try:
            chunk = os.read(leader, 65536) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return process.wait(30), output.decode(errors="replace")
