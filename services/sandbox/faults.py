"""Fault injection: make chosen requests fail the ways real APIs fail, deterministically.

A fault applies to one endpoint path (or "*"), lets `after` matching requests through, then fires on the next
`count` of them (null: until cleared). Kinds:
  error       HTTP `status`: 500 answers the API's JSON error; 502/503/504 an HTML gateway page, as a CDN would
  timeout     wait `delay` seconds before answering (or, with `drop`, close the connection without an answer)
  rate_limit  a 429 answer although the key is within its limit: `code` 1008 the minute's limit (a "429 storm"),
              1009 the day's or 1010 the month's credits (a quota exhausted mid-run)
  truncated   the body cut at `fraction` of its length (HTTP itself is complete, the JSON is not)
  malformed   a body that is not valid JSON
  drift       schema drift inside `data`: `op` missing (drop the field), string (number as text) or null, at
              `field`, a dotted path from `data` where * means every element and a number one element
              (e.g. "*.quote.USD" with op null gives a null quote, "3.id" with op missing one item without id)
  shape       `data` itself in the other container: an array becomes an object keyed by position, an object
              an array of its values (a valid envelope a client must not page on)
Faults come from --faults FILE (a JSON list, or {"faults": [...]}) and the /sandbox/faults control endpoint.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

KINDS = ("error", "timeout", "rate_limit", "truncated", "malformed", "drift", "shape")
DRIFT_OPS = ("missing", "string", "null")
LIMIT_CODES = (1008, 1009, 1010)


@dataclass
class Fault:
    kind: str
    path: str = "*"
    count: int | None = 1
    after: int = 0
    status: int = 500
    code: int = 1008
    delay: float = 30.0
    drop: bool = False
    fraction: float = 0.5
    op: str = "missing"
    field: str = "*.quote.USD.price"
    seen: int = 0
    fired: int = 0

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> "Fault":
        allowed = {f.name for f in fields(cls)} - {"seen", "fired"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        fault = cls(**spec)
        if fault.kind not in KINDS:
            raise ValueError(f"fault kind {fault.kind!r} is not one of {list(KINDS)}")
        if fault.kind == "drift" and fault.op not in DRIFT_OPS:
            raise ValueError(f"drift op {fault.op!r} is not one of {list(DRIFT_OPS)}")
        if fault.code not in LIMIT_CODES:
            raise ValueError(f"a rate_limit fault's code must be one of {list(LIMIT_CODES)}")
        if fault.kind == "error" and not 500 <= fault.status <= 599:
            raise ValueError("an error fault's status must be a 5xx code")
        if not 0 <= fault.fraction < 1 or fault.delay < 0 or fault.after < 0 or (fault.count or 1) < 1:
            raise ValueError("fault settings out of range: 0 <= fraction < 1, delay >= 0, after >= 0, count >= 1")
        if fault.field.endswith("*"):
            raise ValueError("a drift field must end with a field name, not *")
        return fault

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def describe(self) -> dict[str, Any]:
        remaining = None if self.count is None else self.count - self.fired
        return {**asdict(self), "remaining": remaining}


def load(text: str) -> list[Fault]:
    """A list of faults, {"faults": [...]}, or one fault object."""
    specs = json.loads(text)
    if isinstance(specs, dict):
        specs = specs["faults"] if "faults" in specs else [specs]
    if not isinstance(specs, list):
        raise ValueError('faults must be a JSON list, {"faults": [...]} or one fault object')
    return [Fault.from_dict(spec) for spec in specs]


class FaultBook:
    """The active faults, consumed in request order (thread-safe, so counts are exact under concurrency)."""

    def __init__(self, faults: list[Fault] | None = None):
        self._faults = list(faults or [])
        self._lock = threading.Lock()

    def add(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._faults]

    def take(self, path: str) -> Fault | None:
        """The fault this request triggers, if any; every matching fault counts the request as seen."""
        chosen = None
        with self._lock:
            for fault in self._faults:
                if fault.path not in ("*", path) or fault.exhausted:
                    continue
                fault.seen += 1
                if chosen is None and fault.seen > fault.after:
                    fault.fired += 1
                    chosen = fault
        return chosen


def drift(payload: dict[str, Any], fault: Fault) -> dict[str, Any]:
    """A copy of the payload with the field changed in every item the path reaches."""
    payload = json.loads(json.dumps(payload))
    *parents, last = fault.field.split(".")
    targets: list[Any] = [payload.get("data")]
    for part in parents:
        found = []
        for node in targets:
            if part == "*":
                found += list(node.values()) if isinstance(node, dict) else list(node or [])
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                found.append(node[int(part)])  # one element: a single bad item in a page
            elif isinstance(node, dict) and part in node:
                found.append(node[part])
        targets = found
    for node in targets:
        if not isinstance(node, dict) or last not in node:
            continue
        if fault.op == "missing":
            del node[last]
        elif fault.op == "null":
            node[last] = None
        elif node[last] is not None:
            node[last] = str(node[last])
    return payload


def reshape(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data")
    if isinstance(data, list):
        return {**payload, "data": {str(i): item for i, item in enumerate(data)}}
    return {**payload, "data": list(data.values()) if isinstance(data, dict) else [data]}


def truncate(body: bytes, fault: Fault) -> bytes:
    return body[:int(len(body) * fault.fraction)]


def malform(body: bytes) -> bytes:
    """Valid-looking JSON with a trailing comma before the final brace, which every JSON parser rejects."""
    return body[:-1] + b",}"


def gateway_page(status: int) -> bytes:
    titles = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}
    title = f"{status} {titles.get(status, 'Error')}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "</body>\r\n</html>\r\n").encode()
