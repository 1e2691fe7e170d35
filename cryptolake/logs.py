"""Logging for microjobs: JSON lines when piped (kubectl logs), readable lines on a terminal.

Every line carries run_id and job (set once per process with `configure`, refined with `context`).
Secrets never leave the process: every formatted line, exceptions included, passes through `redact`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import threading
from datetime import datetime, timezone
from typing import Any, Iterator, TextIO
from urllib.parse import unquote, urlsplit

from tqdm import tqdm

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("cryptolake_log_context", default={})
_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# user:password@ in any URL, and API keys passed as header or query parameter.
_URL_CREDENTIALS = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+:)[^\s@/]+(?=@)")
_KEY_PARAMS = re.compile(r"(?P<head>(?:X-CMC_PRO_API_KEY|CMC_PRO_API_KEY|AWS_SECRET_ACCESS_KEY|password)['\"]?\s*[:=]\s*['\"]?)"
                         r"[^\s'\"&,}]+", re.IGNORECASE)
MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it appears in log output or error text from now on.

    For a URL, its password alone is masked too (it often travels without the rest of the URL).
    """
    if not value or len(value) < _MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        _secrets.add(value)
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None
    if password and password != value:
        register_secret(unquote(password))


def redact(text: str) -> str:
    text = _URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK, text)
    text = _KEY_PARAMS.sub(lambda m: m.group("head") + MASK, text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


@contextlib.contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Add fields (run_id, job, extractor, table...) to every line logged inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def set_context(**fields: Any) -> None:
    _context.set({**_context.get(), **fields})


def current_context() -> dict[str, Any]:
    return dict(_context.get())


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.cl_context = {"run_id": None, "job": None, **_context.get(), **getattr(record, "fields", {})}
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **record.cl_context,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = dict(record.cl_context)
        job, run_id = ctx.pop("job", None), ctx.pop("run_id", None)
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        who = f"{job or '-'}[{run_id or '-'}]"
        extra = " ".join(f"{k}={v}" for k, v in ctx.items() if v is not None)
        text = f"{stamp} {record.levelname:<7} {who} {record.getMessage()}" + (f"  {extra}" if extra else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


class _ConsoleHandler(logging.StreamHandler):
    """Text lines on a terminal, written above any progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise; report as the stdlib handlers do
            self.handleError(record)


def console() -> bool:
    """True when log lines go to a terminal as text (where progress bars may be shown)."""
    return any(isinstance(h, _ConsoleHandler) for h in logging.getLogger().handlers)


def configure(job: str | None = None, run_id: str | None = None, *, stream: TextIO | None = None,
              json_lines: bool | None = None, level: int = logging.INFO) -> None:
    """Install the one handler of the root logger; JSON unless the stream is a terminal."""
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not stream.isatty()
    handler = logging.StreamHandler(stream) if json_lines else _ConsoleHandler(stream)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter() if json_lines else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "cryptolake", False):
            root.removeHandler(old)
    handler.cryptolake = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    set_context(**{k: v for k, v in (("job", job), ("run_id", run_id)) if v is not None})


def get(name: str) -> logging.Logger:
    return logging.getLogger(name)
