"""The CoinMarketCap HTTP client shared by every extractor.

What each failure means for a run:
- 5xx, timeouts, dropped connections: transient, retried with exponential backoff and jitter;
- 429 per-minute (1008) or IP (1011) limit: wait out the minute window (Retry-After when given), then retry;
- 429 daily/monthly quota (1009/1010): nothing more can be fetched this period, the run stops cleanly;
- other 4xx: configuration (bad key, bad parameter, plan): fail fast with the API's own message;
- a 200 whose status.error_code is not 0 is an error too; a body that is not JSON is returned to the caller
  as a PayloadError carrying the raw bytes, for quarantine.
Calls are paced client-side to the plan's per-minute limit, so a group rarely meets a 429 at all.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_random_exponential

from cryptolake import logs
from cryptolake.errors import CryptolakeError

log = logs.get(__name__)
MINUTE = 60.0
QUOTA_CODES = {1009, 1010}
RATE_CODES = {1008, 1011}


class CmcError(CryptolakeError):
    """An API answer that is not usable data."""

    def __init__(self, what: str, hint: str | None = None, *, http_status: int | None = None,
                 error_code: int | None = None):
        self.http_status, self.error_code = http_status, error_code
        super().__init__(what, hint)


class ConfigurationError(CmcError):
    """The request can never succeed as configured (key, plan, parameters): do not retry."""


class QuotaExhausted(CmcError):
    """The plan's daily or monthly credits are spent: stop the run cleanly, try next period."""


class TransientError(CmcError):
    """Worth retrying: 5xx, timeouts, connection errors."""


class RateLimited(CmcError):
    def __init__(self, what: str, retry_after: float, **kwargs: Any):
        self.retry_after = retry_after
        super().__init__(what, **kwargs)


class PayloadError(CmcError):
    """The body could not be read as the API's JSON envelope; `raw` is kept for quarantine."""

    def __init__(self, what: str, raw: bytes, **kwargs: Any):
        self.raw = raw
        super().__init__(what, **kwargs)


@dataclass(frozen=True)
class Response:
    path: str
    params: dict[str, Any]
    status: dict[str, Any]
    data: Any
    raw: bytes

    @property
    def credits(self) -> int:
        return int(self.status.get("credit_count") or 0)


class MinutePacer:
    """At most `per_minute` calls in any sliding 60-second window (the API's limit is per minute)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.per_minute = per_minute
        self.clock, self.sleep = clock, sleep
        self._calls: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def wait(self) -> float:
        with self._lock:
            waited = 0.0
            now = self.clock()
            while self._calls and now - self._calls[0] >= MINUTE:
                self._calls.popleft()
            if len(self._calls) >= self.per_minute:
                waited = MINUTE - (now - self._calls[0])
                self.sleep(waited)
                self._calls.popleft()
            self._calls.append(self.clock())
            return waited


class CmcClient:
    def __init__(self, base_url: str, api_key: str, *, rate_limit_per_minute: int = 30, timeout: float = 30,
                 max_attempts: int = 6, max_rate_waits: int = 10, max_backoff: float = 30,
                 sleep: Callable[[float], None] = time.sleep):
        logs.register_secret(api_key)
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"X-CMC_PRO_API_KEY": api_key, "Accept": "application/json",
                                     "Accept-Encoding": "deflate, gzip"})
        self.timeout = timeout
        self.pacer = MinutePacer(rate_limit_per_minute, sleep=sleep)
        self.max_attempts, self.max_rate_waits = max_attempts, max_rate_waits
        self.max_backoff, self.sleep = max_backoff, sleep
        self.credits_used = 0
        self.calls = 0

    def get(self, path: str, params: dict[str, Any] | None = None) -> Response:
        """One logical call, retried as the module docstring says; credits are counted on success."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        failures = collections.Counter()

        def stop(state: RetryCallState) -> bool:
            # Rate-limit waits and transient failures have separate budgets: a 429 storm is waited out.
            kind = type(state.outcome.exception())
            failures[kind] += 1
            budget = self.max_rate_waits if kind is RateLimited else self.max_attempts - 1
            return failures[kind] > budget

        retrying = Retrying(
            retry=retry_if_exception_type((TransientError, RateLimited)),
            stop=stop,
            wait=self._wait,
            sleep=self.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        response = retrying(self._get_once, path, params)
        self.credits_used += response.credits
        return response

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            return exc.retry_after
        return wait_random_exponential(multiplier=0.5, max=self.max_backoff)(state)

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception()
        log.warning("attempt %d failed (%s); retrying in %.1fs", state.attempt_number, exc,
                    state.next_action.sleep if state.next_action else 0)

    def _get_once(self, path: str, params: dict[str, Any]) -> Response:
        self.pacer.wait()
        self.calls += 1
        url = self.base_url + path
        try:
            http = self.session.get(url, params=params, timeout=self.timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(f"GET {path} failed: {type(exc).__name__}") from None
        raw = http.content
        try:
            body = json.loads(raw)
            status = body["status"]
            error_code = int(status.get("error_code") or 0)
        except (ValueError, KeyError, TypeError, AttributeError):
            if http.status_code >= 500:
                raise TransientError(f"GET {path} answered HTTP {http.status_code}", http_status=http.status_code)
            raise PayloadError(f"GET {path} answered HTTP {http.status_code} with a body that is not the API's "
                               f"JSON envelope ({len(raw)} bytes)", raw, http_status=http.status_code) from None
        message = status.get("error_message") or ""
        if http.status_code == 429 or error_code in RATE_CODES | QUOTA_CODES:
            if error_code in QUOTA_CODES:
                raise QuotaExhausted(f"CoinMarketCap quota exhausted: {message}",
                                     "Wait for the plan period to reset or raise the plan",
                                     http_status=http.status_code, error_code=error_code)
            retry_after = _retry_after(http.headers.get("Retry-After"))
            raise RateLimited(f"rate limited ({error_code}): {message}", retry_after,
                              http_status=http.status_code, error_code=error_code)
        if http.status_code >= 500:
            raise TransientError(f"GET {path} answered HTTP {http.status_code}: {message}",
                                 http_status=http.status_code, error_code=error_code)
        if http.status_code >= 400:
            raise ConfigurationError(f"CoinMarketCap refused GET {path} (HTTP {http.status_code}, "
                                     f"error {error_code}): {message}",
                                     _hint_for(http.status_code), http_status=http.status_code, error_code=error_code)
        if error_code != 0:
            raise CmcError(f"GET {path} answered error {error_code}: {message}", error_code=error_code)
        if "data" not in body:
            raise PayloadError(f"GET {path} answered without data", raw, http_status=http.status_code)
        return Response(path, params, status, body["data"], raw)


def _retry_after(header: str | None) -> float:
    """Seconds to wait for the minute window: the header when given, else the rest of the current minute."""
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    return MINUTE - (time.time() % MINUTE) + 0.5


def _hint_for(http_status: int) -> str:
    if http_status in (401, 402, 403):
        return "Check CMC_API_KEY and that the plan covers this endpoint"
    return "Check the extractor's parameters in its configuration"
