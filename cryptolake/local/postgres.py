"""A private PostgreSQL cluster under the state directory, listening on loopback only.

initdb and postgres refuse to run as root, so when we are root every server command runs as the `postgres`
system user (Debian creates it) and the cluster directory belongs to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from cryptolake.errors import LocalStackError
from cryptolake.local.process import port_open, wait_until

SUPERUSER = "cryptolake"
DATABASE = "cryptolake"


def find_bindir() -> Path:
    """PG_BIN, then Debian's newest /usr/lib/postgresql/<v>/bin, then whatever pg_ctl is on PATH."""
    candidates = [os.environ.get("PG_BIN")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    on_path = shutil.which("pg_ctl")
    candidates.append(os.path.dirname(os.path.realpath(on_path)) if on_path else None)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise LocalStackError("PostgreSQL server binaries (initdb, postgres) were not found",
                          "Install them (Debian: apt-get install postgresql) or set PG_BIN to their directory")


def _server_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise LocalStackError("running as root but there is no 'postgres' or 'nobody' user to run PostgreSQL as",
                          "Create a non-root user named postgres (useradd -r postgres)")


class Postgres:
    def __init__(self, state_dir: Path, port: int, password: str):
        self.root = state_dir / "postgres"
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log_file = self.root / "postgres.log"
        self.port = port
        self.password = password
        self.user = _server_user()

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, bindir: Path, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "PGPASSWORD": self.password, "LC_ALL": "C.UTF-8"}
        result = subprocess.run([str(bindir / tool), *args], capture_output=True, text=True, env=env,
                                user=self.user.pw_uid if self.user else None,
                                group=self.user.pw_gid if self.user else None, cwd=self.root)
        if check and result.returncode != 0:
            raise LocalStackError(f"PostgreSQL {tool} failed: {(result.stderr or result.stdout).strip()}",
                                  f"See {self.log_file}")
        return result

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return self._run(find_bindir(), "pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def up(self) -> None:
        bindir = find_bindir()
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            self._initdb(bindir)
        if not self.running():
            if port_open(self.port):
                raise LocalStackError(f"port {self.port} is already taken by another program",
                                      "Pick another with --pg-port or stop that program")
            self._run(bindir, "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log_file),
                      "-o", f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1")
        wait_until(lambda: self._run(bindir, "pg_isready", "-h", "127.0.0.1", "-p", str(self.port),
                                     check=False).returncode == 0, 30, "PostgreSQL", self.log_file)
        exists = self._run(bindir, "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres",
                           "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if exists.stdout.strip() != "1":
            self._run(bindir, "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, DATABASE)

    def down(self) -> bool:
        if not self.running():
            return False
        self._run(find_bindir(), "pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))
        return True

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self.user:
            for path in (self.root, self.sockets, *([self.data] if self.data.exists() else [])):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
            probe = subprocess.run(["test", "-w", str(self.root)], user=self.user.pw_uid, check=False)
            if probe.returncode != 0:
                raise LocalStackError(
                    f"the '{self.user.pw_name}' user cannot reach {self.root} (a parent directory is private)",
                    "Use a state directory under a world-traversable path, e.g. --state-dir /tmp/cryptolake-local")

    def _initdb(self, bindir: Path) -> None:
        pwfile = self.root / ".pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.user:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        try:
            self._run(bindir, "initdb", "-D", str(self.data), "-U", SUPERUSER, "--pwfile", str(pwfile),
                      "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
        finally:
            pwfile.unlink(missing_ok=True)
