"""Runs the CLI as a user would and checks what a bad input gets back: one line naming the problem and what
to do, no traceback, and every file already in the lake left as it was."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "cryptolake")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`cryptolake --log-json ARGS` through the console script's own entry (main), in this process: the same
    error handling as the installed command without a new interpreter per case. Log lines are JSON, so the
    error line is the one line that is not."""
    from cryptolake import logs
    from cryptolake.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        # the secrets this run registers are forgotten after it, as its process would forget them
        patch.setattr(logs, "_secrets", set(logs._secrets))
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        try:
            main(["--log-json", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def run_process(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed `cryptolake` in a child process (for what only a real process shows: exit status, stderr)."""
    return subprocess.run([CLI, "--log-json", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


def error_line(done: subprocess.CompletedProcess, *words: str) -> str:
    """The single non-log line on stderr; it must start with `error:` and contain each of `words`."""
    assert done.returncode not in (0, None), f"exit {done.returncode}: {done.stdout[-500:]} {done.stderr[-500:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n" + "\n".join(lines)
    line = lines[0]
    assert line.startswith("error: "), line
    for word in words:
        assert word in line, f"{word!r} not in: {line}"
    return line


def tree_digest(root: Path) -> dict[str, str]:
    """path -> sha256 of every file under root (the lake before and after must be equal)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
