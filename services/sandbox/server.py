"""The sandbox HTTP server: stdlib ThreadingHTTPServer on loopback, one pipeline for every endpoint.

Request pipeline (the order the real API appears to follow): API key -> injected fault -> minute rate limit and
credit quota -> parameter validation -> data -> credits charged -> envelope -> injected drift / corruption ->
gzip when asked. Control endpoints under /sandbox/ need no key and never touch usage.
"""

from __future__ import annotations

import collections
import gzip
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptolake import logs
from cryptolake.services.sandbox import DEFAULT_API_KEY, category, crypto, exchange, global_market, key_fiat, sentiment
from cryptolake.services.sandbox import faults as fault_kinds
from cryptolake.services.sandbox.api import API_KEY_HEADER, API_KEY_PARAM, ApiError, Call, Endpoint, status
from cryptolake.services.sandbox.clock import Clock, iso, parse_time
from cryptolake.services.sandbox.faults import Fault, FaultBook
from cryptolake.services.sandbox.limits import Plan, Usage
from cryptolake.services.sandbox.market import Market
from cryptolake.services.sandbox.universe import build

log = logs.get("cryptolake.sandbox")

ENDPOINTS: dict[str, Endpoint] = {e.path: e for module in (crypto, exchange, category, global_market, sentiment,
                                                            key_fiat) for e in module.ENDPOINTS}
JSON_TYPE = "application/json; charset=utf-8"
SERVED_LIMIT = 100_000  # answers the served journal keeps; older ones are dropped (and counted) first
# Faults after which a client cannot use the answer: it does not parse, or it comes after the delay (a client
# with a shorter timeout has given up on it by then).
UNUSABLE_FAULTS = ("timeout", "truncated", "malformed", "shape")


@dataclass(frozen=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 18080
    seed: int = 42
    coins: int = 10_000
    exchanges: int = 800
    categories: int = 300
    clock: str = "wall"
    start: float | None = None
    rate: float = 1.0
    plan: Plan = Plan()
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    faults: tuple[Fault, ...] = ()
    retry_after: bool = False
    usage_file: Path | None = None


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


def served_ids(data: Any) -> list:
    """The ids of the rows an answer holds: array elements, id-keyed entries, a category's coins, else one object."""
    if isinstance(data, dict) and isinstance(data.get("coins"), list):
        data = data["coins"]
    if isinstance(data, list):
        return [item.get("id") if isinstance(item, dict) else None for item in data]
    if isinstance(data, dict) and data and all(str(key).isdigit() for key in data):
        return [int(key) for key in data]
    return [data.get("id") if isinstance(data, dict) else None]


class ServedJournal:
    """Every data answer sent with HTTP 200, so a test can check what a client stored against what it was served
    without trusting the client's own counters (GET /sandbox/served). Bounded: the oldest entries go first."""

    def __init__(self, limit: int = SERVED_LIMIT):
        self._entries: collections.deque = collections.deque(maxlen=limit)
        self._lock = threading.Lock()
        self._dropped = 0

    def add(self, path: str, query: dict[str, str], now: float, data: Any, fault: Fault | None) -> None:
        ids = served_ids(data)
        entry = {"path": path, "params": {k: v for k, v in sorted(query.items()) if k != API_KEY_PARAM},
                 "timestamp": iso(now), "wall_time": time.time(), "items": len(ids), "ids": ids,
                 "fault": fault.kind if fault else None,
                 "usable": not (fault and fault.kind in UNUSABLE_FAULTS)}
        with self._lock:
            if len(self._entries) == self._entries.maxlen:
                self._dropped += 1
            self._entries.append(entry)

    def describe(self) -> dict:
        with self._lock:
            return {"served": list(self._entries), "dropped": self._dropped}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._dropped = 0


def _json(status_code: int, payload: Any) -> Reply:
    return Reply(status_code, json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


class Sandbox:
    """Everything the request threads share: clock, market, usage and faults."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.clock = Clock(config.clock, config.start, config.rate)
        self.market = Market(build(config.seed, config.coins, config.exchanges, config.categories))
        self.usage = Usage(config.plan, config.usage_file)
        self.faults = FaultBook(list(config.faults))
        self.keys = frozenset(config.api_keys)
        self.served = ServedJournal()

    def warm_up(self) -> None:
        """Compute the current market and the static renderings before the port opens."""
        self.market.snapshot(self.clock.now())
        crypto.statics(self.market)

    # -- the API -------------------------------------------------------------------------------------------
    def api(self, path: str, query: dict[str, str], header_key: str | None) -> Reply:
        started = time.monotonic()
        now = self.clock.now()
        endpoint = ENDPOINTS.get(path)
        try:
            if endpoint is None:
                raise ApiError(404, "Not Found", 404)
            key = header_key or query.get(API_KEY_PARAM)
            if not key:
                raise ApiError(1002)
            if key not in self.keys:
                raise ApiError(1001)
            fault = self.faults.take(path)
            if fault and fault.kind == "error":
                return self._fault_error(fault, now, started)
            if fault and fault.kind == "rate_limit":
                raise ApiError(fault.code)
            self.usage.admit(key, now, endpoint.quota_exempt)
            args = endpoint.validate(query)
            result = endpoint.build(Call(args, now, self.market, key, self.usage, self.config.plan))
        except ApiError as error:
            return self._error(error, now, started)
        except Exception:  # a bug here must still look like the API's own 500, not a dropped connection
            log.exception("unexpected error answering %s", path)
            return self._error(ApiError(500), now, started)
        converts = len(args.get("convert") or args.get("convert_id") or ("USD",))
        credits = endpoint.credits.cost(result.items, converts)
        self.usage.charge(key, now, credits)
        elapsed = self.clock.elapsed_ms(time.monotonic() - started)
        payload = {"status": status(now, elapsed, credits, v3=endpoint.v3_status, extra=result.status_extra),
                   "data": result.data}
        reply = Reply(200, b"")
        if fault and fault.kind == "drift":
            payload = fault_kinds.drift(payload, fault)
        elif fault and fault.kind == "shape":
            payload = fault_kinds.reshape(payload)
        reply.body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        if fault and fault.kind == "truncated":
            reply.body = fault_kinds.truncate(reply.body, fault)
        elif fault and fault.kind == "malformed":
            reply.body = fault_kinds.malform(reply.body)
        elif fault and fault.kind == "timeout":
            reply.delay, reply.drop = fault.delay, fault.drop
        if not reply.drop:
            self.served.add(path, query, now, result.data, fault)
        return reply

    def _error(self, error: ApiError, now: float, started: float) -> Reply:
        elapsed = self.clock.elapsed_ms(time.monotonic() - started)
        reply = _json(error.http_status, {"status": status(now, elapsed, 0, error=error)})
        if error.code == 1008 and self.config.retry_after:
            reply.headers["Retry-After"] = str(self.usage.retry_after(now))
        return reply

    def _fault_error(self, fault: Fault, now: float, started: float) -> Reply:
        if fault.status == 500:
            return self._error(ApiError(500), now, started)
        return Reply(fault.status, fault_kinds.gateway_page(fault.status), "text/html")

    # -- control endpoints ---------------------------------------------------------------------------------
    def control(self, method: str, path: str, body: bytes) -> Reply:
        try:
            request = json.loads(body) if body else {}
            handler = {("GET", "/sandbox/health"): self._health, ("GET", "/sandbox/clock"): self._clock,
                       ("POST", "/sandbox/clock"): self._set_clock, ("GET", "/sandbox/faults"): self._faults,
                       ("POST", "/sandbox/faults"): self._add_faults, ("DELETE", "/sandbox/faults"): self._clear_faults,
                       ("GET", "/sandbox/usage"): self._usage, ("POST", "/sandbox/usage/reset"): self._reset_usage,
                       ("GET", "/sandbox/served"): self._served, ("DELETE", "/sandbox/served"): self._clear_served,
                       }.get((method, path))
            if handler is None:
                return _json(404, {"error": f"no control endpoint {method} {path}; see docs/sandbox.md"})
            return _json(200, handler(request))
        except (ValueError, TypeError, KeyError) as exc:
            return _json(400, {"error": str(exc)})

    def _health(self, _request) -> dict:
        u = self.market.universe
        return {"status": "ok", "seed": self.config.seed, "clock": self.clock.describe(),
                "universe": {"coins": len(u.coins), "exchanges": len(u.exchanges), "categories": len(u.categories)},
                "plan": self.config.plan.__dict__}

    def _clock(self, _request) -> dict:
        return self.clock.describe()

    def _set_clock(self, request: dict) -> dict:
        if "set" in request:
            self.clock.set(parse_time(str(request["set"])))
        if "advance_seconds" in request:
            self.clock.advance(float(request["advance_seconds"]))
        if "rate" in request:
            self.clock.set_rate(float(request["rate"]))
        if not {"set", "advance_seconds", "rate"} & set(request):
            raise ValueError('give "set" (ISO time), "advance_seconds" and/or "rate"')
        return self.clock.describe()

    def _faults(self, _request) -> dict:
        return {"faults": self.faults.describe()}

    def _add_faults(self, request) -> dict:
        self.faults.add(fault_kinds.load(json.dumps(request)))
        return self._faults(None)

    def _clear_faults(self, _request) -> dict:
        self.faults.clear()
        return self._faults(None)

    def _usage(self, _request) -> dict:
        now = self.clock.now()
        return {"keys": {key: self.usage.key_info(key, now) for key in sorted(self.keys)}}

    def _reset_usage(self, _request) -> dict:
        self.usage.reset()
        return self._usage(None)

    def _served(self, _request) -> dict:
        return self.served.describe()

    def _clear_served(self, _request) -> dict:
        self.served.clear()
        return self.served.describe()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cryptolake-sandbox"
    sys_version = ""
    sandbox: Sandbox

    def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        logs.set_context(job="sandbox")  # each request runs in a fresh thread, with an empty log context
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if parts.path.startswith("/sandbox/"):
            reply = self.sandbox.control(method, parts.path, body)
        elif method != "GET":
            reply = _json(405, {"error": "the API answers GET only"})
        else:
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            reply = self.sandbox.api(parts.path, query, self.headers.get(API_KEY_HEADER))
        self._send(reply)
        log.info("%s %s %d %.0fms", method, parts.path, reply.status, (time.monotonic() - started) * 1000)

    def _send(self, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            return
        body, headers = reply.body, dict(reply.headers)
        if "gzip" in self.headers.get("Accept-Encoding", "") and body:
            body = gzip.compress(body, compresslevel=4, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Vary", "Accept-Encoding")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        """Silence the stdlib's access log: it would print query strings, which may carry the API key."""


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def make_server(config: SandboxConfig) -> Server:
    """A ready (warmed up, bound) server; call serve_forever() on it, in a thread if you like."""
    sandbox = Sandbox(config)
    sandbox.warm_up()
    handler = type("SandboxHandler", (Handler,), {"sandbox": sandbox})
    return Server((config.host, config.port), handler)


def serve(config: SandboxConfig) -> None:
    server = make_server(config)
    host, port = server.server_address[:2]
    log.info("sandbox CoinMarketCap API on http://%s:%d (seed %d, %d coins, %s clock)", host, port, config.seed,
             config.coins, config.clock)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("sandbox stopping")
    finally:
        server.server_close()
