"""Background processes owned by the local stack: started detached, tracked by pid file, stopped only if ours.

A pid file alone is not proof of ownership (pids are reused), so a process counts as ours only while its
command line still names the program and the state directory we started it with.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptolake.errors import LocalStackError


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_until(check, timeout: float, what: str, log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = ""
    if log_file and log_file.exists():
        tail = " Last log lines: " + " | ".join(log_file.read_text(errors="replace").splitlines()[-5:])
    raise LocalStackError(f"{what} did not become ready within {timeout:.0f}s.{tail}",
                          f"See {log_file} for details" if log_file else None)


@dataclass
class Daemon:
    name: str
    pid_file: Path
    marker: str  # a string the process's command line must contain for it to count as ours

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except FileNotFoundError:
            return None
        return pid if self.marker in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: list[str], log_file: Path, env: dict[str, str] | None = None) -> int:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True, close_fds=True)
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 20) -> bool:
        """SIGTERM, then SIGKILL after timeout; True if something of ours was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.1)
        if self._alive(pid):
            os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            # Reap it if it is our child; otherwise just probe.
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return False
        except ChildProcessError:
            pass
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return False
        return state != "Z"
