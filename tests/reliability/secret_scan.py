"""Scans everything a run leaves behind for known secrets: the proof that redaction holds end to end.

    from tests.reliability.secret_scan import assert_no_secrets, collect_outputs
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr, **collect_outputs(lake=lake, files=[log_path])}
    assert_no_secrets(outputs, [api_key, s3_secret, warehouse_password])

A secret counts as leaked in any form a reader could recover it from: verbatim, URL-quoted (it travels inside
WAREHOUSE_URL) or base64-encoded at any alignment (Kubernetes Secret data, HTTP basic auth, JSON blobs).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import quote, quote_plus

# Lake prefixes whose objects are text a person or a tool reads: the run ledger, quarantined payloads (with
# their error), backup manifests and Spark's event logs (they record every Spark and Hadoop property).
LAKE_TEXT_PREFIXES = ("_meta", "bronze/_quarantine", "gold/backups", "spark-events")
_BINARY_SUFFIXES = (".parquet", ".dump", ".gz", ".zst", ".crc")
_MAX_OBJECT_BYTES = 32 << 20  # a bound on one object read into memory; event logs roll well below it
MIN_SECRET_LENGTH = 8  # shorter test secrets would match ordinary text and make the scan meaningless


def _base64_forms(secret: bytes) -> set[str]:
    """The part of base64(secret) that stays the same wherever the secret sits in a longer encoded blob."""
    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret).decode()
        # base64 char i holds bits [6i, 6i+6): keep the chars made of the secret's bits alone
        start, stop = -(-8 * shift // 6), 8 * (shift + len(secret)) // 6
        core = encoded[start:stop]
        if len(core) >= MIN_SECRET_LENGTH:
            forms.add(core)
    return forms


def secret_forms(secret: str) -> dict[str, str]:
    """Each recognisable encoding of the secret, keyed by the text to look for, valued by its name."""
    forms = {secret: "verbatim", quote(secret, safe=""): "url-quoted", quote_plus(secret): "url-quoted"}
    forms.update({form: "base64" for form in _base64_forms(secret.encode())})
    return forms


def find_secrets(outputs: Mapping[str, str], secrets: Iterable[str]) -> list[str]:
    """One line per (output, secret form) found: where it leaked, which secret (masked) and how encoded."""
    found = []
    for secret in secrets:
        if not secret:
            continue
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"test secret {secret!r} is too short to scan for: use {MIN_SECRET_LENGTH}+ chars")
        label = f"{secret[:2]}…{secret[-2:]}"
        for form, how in secret_forms(secret).items():
            for name, text in outputs.items():
                at = text.find(form)
                if at >= 0:
                    line = text.count("\n", 0, at) + 1
                    found.append(f"{name}:{line}: secret {label} ({how})")
    return sorted(set(found))


def assert_no_secrets(outputs: Mapping[str, str], secrets: Iterable[str]) -> None:
    """Fail naming every output (and line) where one of the secrets appears in any form."""
    secrets = list(secrets)
    assert any(secrets), "no secrets given: the scan would prove nothing"
    leaks = find_secrets(outputs, secrets)
    assert not leaks, f"{len(leaks)} secret leak(s) in {len(outputs)} outputs:\n" + "\n".join(leaks)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def collect_lake(lake, prefixes: Iterable[str] = LAKE_TEXT_PREFIXES) -> dict[str, str]:
    """The lake's text objects under `prefixes` (a cryptolake.lake.Lake, file:// or s3://), keyed `lake:<path>`."""
    out: dict[str, str] = {}
    for prefix in prefixes:
        for rel in lake.list_files(prefix):
            if rel.endswith(_BINARY_SUFFIXES):
                continue
            data = lake.read_bytes(rel)
            out[f"lake:{rel}"] = _decode(data[:_MAX_OBJECT_BYTES])
    return out


def collect_files(paths: Iterable[str | Path]) -> dict[str, str]:
    """Log files and directories of them (read recursively), keyed `file:<path>`; missing paths are skipped."""
    out: dict[str, str] = {}
    for path in map(Path, paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                with file.open("rb") as handle:
                    out[f"file:{file}"] = _decode(handle.read(_MAX_OBJECT_BYTES))
    return out


def collect_objects(objects: Iterable[dict], skip_kinds: tuple[str, ...] = ("Secret",)) -> dict[str, str]:
    """Rendered Kubernetes objects as YAML, keyed `<kind>/<name>`; Secrets are where secrets belong, so skipped."""
    import yaml

    out: dict[str, str] = {}
    for obj in objects:
        if obj.get("kind") in skip_kinds:
            continue
        name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        out[name] = out.get(name, "") + yaml.safe_dump(obj, sort_keys=False)
    return out


def collect_outputs(*, lake=None, files: Iterable[str | Path] = (), objects: Iterable[dict] = (),
                    captured: Mapping[str, str] | None = None) -> dict[str, str]:
    """Everything one scenario produced, in one mapping for `assert_no_secrets`.

    captured: stdout/stderr/log text already in memory; files: log files or directories; lake: the scenario's
    Lake (ledger, quarantine, backup manifests, Spark event logs); objects: rendered manifests.
    """
    out = dict(captured or {})
    out.update(collect_files(files))
    if lake is not None:
        out.update(collect_lake(lake))
    out.update(collect_objects(objects))
    return out
