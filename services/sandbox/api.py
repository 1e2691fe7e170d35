"""What every endpoint shares: parameter specs and their validation, credit rules, errors and the envelope.

An endpoint is data (path, parameters, credit rule, data builder); the server runs the same pipeline for all.
Validation messages follow the real API, whose validator (Joi) reports the first problem in a fixed wording.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from cryptolake.services.sandbox.clock import iso

API_KEY_PARAM = "CMC_PRO_API_KEY"
API_KEY_HEADER = "X-CMC_PRO_API_KEY"

# error_code, HTTP status, message: the documented table.
ERRORS = {
    1001: (401, "This API Key is invalid."),
    1002: (401, "API key missing."),
    1008: (429, "You've exceeded your API Key's HTTP request rate limit. Rate limits reset every minute."),
    1009: (429, "You've exceeded your API Key's daily rate limit."),
    1010: (429, "You've exceeded your API Key's monthly rate limit."),
    500: (500, "An internal server error occurred"),
}


class ApiError(Exception):
    """An error answered as the real API does: HTTP status and a `status` object with no `data`."""

    def __init__(self, code: int, message: str | None = None, http_status: int | None = None):
        known_status, known_message = ERRORS.get(code, (400, ""))
        self.code = code
        self.http_status = http_status or known_status
        self.message = message or known_message
        super().__init__(self.message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, 400)


def invalid_value(name: str, value: str) -> ApiError:
    return bad_request(f'Invalid value for "{name}": "{value}"')


# -- parameters ----------------------------------------------------------------------------------------------
_PATTERNS = {
    "ids": re.compile(r"^\d+(?:,\d+)*$"),
    "slugs": re.compile(r"^[0-9a-z-]+(?:,[0-9a-z-]+)*$"),
    "symbols": re.compile(r"^[0-9A-Za-z$@\-,]+(?:,[0-9A-Za-z$@\-]+)*$"),
}
_BOOLS = {"true": True, "false": False}


@dataclass(frozen=True)
class Param:
    """One query parameter. kind: int, number, enum, csv_enum, ids, slugs, symbols, bool or string."""

    name: str
    kind: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False

    def parse(self, raw: str) -> Any:
        name = self.name
        if self.kind in ("int", "number"):
            try:
                value = int(raw) if self.kind == "int" else float(raw)
            except ValueError:
                raise bad_request(f'"{name}" must be a number') from None
            if self.minimum is not None and value < self.minimum:
                raise bad_request(f'"{name}" must be larger than or equal to {_num(self.minimum)}')
            if self.maximum is not None and value > self.maximum:
                raise bad_request(f'"{name}" must be less than or equal to {_num(self.maximum)}')
            return value
        if self.kind == "enum":
            if raw not in self.choices:
                raise bad_request(f'"{name}" must be one of [{", ".join(self.choices)}]')
            return raw
        if self.kind == "csv_enum":
            values = raw.split(",")
            if not raw or any(v not in self.choices for v in values):
                raise invalid_value(name, raw)
            return tuple(dict.fromkeys(values))
        if self.kind in _PATTERNS:
            text = raw.lower() if self.kind == "slugs" else raw
            if not _PATTERNS[self.kind].match(text):
                raise invalid_value(name, raw)
            items = [v for v in text.split(",") if v]
            return tuple(dict.fromkeys(int(v) for v in items)) if self.kind == "ids" else tuple(dict.fromkeys(items))
        if self.kind == "bool":
            if raw.lower() not in _BOOLS:
                raise bad_request(f'"{name}" must be a boolean')
            return _BOOLS[raw.lower()]
        if not raw:
            raise bad_request(f'"{name}" is not allowed to be empty')
        return raw


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def start_limit(limit_default: int | None, limit_max: int) -> tuple[Param, Param]:
    """The 1-based pagination pair most list endpoints share."""
    return (Param("start", "int", 1, minimum=1),
            Param("limit", "int", limit_default, minimum=1, maximum=limit_max))


CONVERT = (Param("convert", "symbols"), Param("convert_id", "ids"))


def page(items, args: dict[str, Any]):
    """The `start` (1-based) / `limit` window of a list or array; no limit means to the end."""
    first = args["start"] - 1
    return items[first:first + args["limit"]] if args["limit"] else items[first:]


# -- credits -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreditRule:
    """cost = max(minimum, base + ceil(items / per_items)) + one per `convert` beyond the first."""

    base: int = 1
    per_items: int | None = None
    minimum: int = 1
    converts: bool = False

    def cost(self, items: int, convert_count: int) -> int:
        cost = self.base + (math.ceil(items / self.per_items) if self.per_items else 0)
        cost = max(self.minimum, cost)
        if self.converts:
            cost += max(0, convert_count - 1)
        return cost


# -- endpoints -----------------------------------------------------------------------------------------------
@dataclass
class Call:
    """What a data builder gets: validated arguments and the shared state, at one instant."""

    args: dict[str, Any]
    now: float
    market: Any
    key: str
    usage: Any
    plan: Any


@dataclass
class Result:
    data: Any
    items: int = 1  # what the credit rule counts (coins, exchanges... returned)
    status_extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    path: str
    params: tuple[Param, ...]
    build: Callable[[Call], Result]
    credits: CreditRule = CreditRule()
    one_of: tuple[str, ...] = ()      # at least one is required
    exclusive: tuple[str, ...] = ()   # at most one may be given
    v3_status: bool = False           # v3 endpoints report error_code "0"/"SUCCESS" and elapsed as strings
    quota_exempt: bool = False        # usage endpoints answer even past the credit quota

    def validate(self, query: dict[str, str]) -> dict[str, Any]:
        known = {p.name: p for p in self.params}
        args: dict[str, Any] = {}
        for param in self.params:
            raw = query.get(param.name)
            if raw is None:
                if param.required:
                    raise bad_request(f'"{param.name}" is required')
                args[param.name] = param.default
            else:
                args[param.name] = param.parse(raw)
        for name in query:
            if name not in known and name != API_KEY_PARAM:
                raise bad_request(f'"{name}" is not allowed')
        given = [name for name in self.one_of if query.get(name) is not None]
        if self.one_of and not given:
            raise bad_request(f'"value" must contain at least one of [{", ".join(self.one_of)}]')
        peers = [name for name in self.exclusive if query.get(name) is not None]
        if len(peers) > 1:
            raise bad_request(f'"value" contains a conflict between exclusive peers [{", ".join(self.exclusive)}]')
        if query.get("convert") is not None and query.get("convert_id") is not None:
            raise bad_request('"value" contains a conflict between optional exclusive peers [convert, convert_id]')
        return args


def status(now: float, elapsed_ms: int, credits: int, *, v3: bool = False, error: ApiError | None = None,
           notice: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `status` object; on success v1/v2 report error_code 0 and error_message null, v3 "0" and "SUCCESS"."""
    if error is not None:
        body = {"timestamp": iso(now), "error_code": error.code, "error_message": error.message,
                "elapsed": elapsed_ms, "credit_count": 0}
        return {**body, "notice": None}
    if v3:
        return {"timestamp": iso(now), "error_code": "0", "error_message": "SUCCESS", "elapsed": str(elapsed_ms),
                "credit_count": credits, "notice": ""}
    return {"timestamp": iso(now), "error_code": 0, "error_message": None, "elapsed": elapsed_ms,
            "credit_count": credits, "notice": notice, **(extra or {})}
