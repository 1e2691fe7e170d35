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
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptolake.errors import LocalStackError


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def refuse_taken_port(port: int, what: str, option: str) -> None:
    """Before starting a server: a port another program holds would make it fail later with a worse message."""
    if port_open(port):
        raise LocalStackError(f"port {port} needed by {what} is taken by another program",
                              f"Pick another with {option} or stop that program")


def http_ok(url: str) -> bool:
    """A health check: GET url answers 200 within 2 seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


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

    def stop(self, timeout: float = 20, whole_group: bool = False) -> bool:
        """SIGTERM, then SIGKILL after timeout; True if something of ours was stopped. `whole_group`: the
        process started a tree of its own (Airflow standalone), and every process of its session goes."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        alive = (lambda: self._alive(pid) or _group_alive(pid)) if whole_group else (lambda: self._alive(pid))
        send = (lambda sig: signal_group(pid, sig)) if whole_group else (lambda sig: os.kill(pid, sig))
        send(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            time.sleep(0.1)
        if alive():
            send(signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and alive():
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


def signal_group(pgid: int, sig: int) -> None:
    """Signal every process of a group, if any is left (also for the local DAG backend's commands)."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Any process left in the group (the session leader's children outlive it unless signalled)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
