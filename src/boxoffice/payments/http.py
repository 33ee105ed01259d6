"""What every provider client shares: one httpx client with timeouts, retries with backoff
for idempotent calls, a circuit breaker, a cached access token, and a log line and
counters per call that never carry a secret or a full phone number."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from prometheus_client import Counter, Histogram

from boxoffice.payments.errors import ProviderUnavailable

log = structlog.get_logger("boxoffice.payments.provider")

PROVIDER_CALLS = Counter(
    "boxoffice_provider_calls_total",
    "Calls to payment providers, by provider, operation and outcome",
    ["provider", "operation", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "boxoffice_provider_call_seconds",
    "Latency of calls to payment providers",
    ["provider", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def mask_phone(phone: str | None) -> str | None:
    """A phone number fit for logs and other people's eyes: all but the last 3 digits hidden."""
    if not phone:
        return phone
    return "*" * (len(phone) - 3) + phone[-3:]


class CircuitBreaker:
    """After `threshold` failures in a row, refuse calls for `cooldown` seconds, then let
    one through to see whether the provider is back."""

    def __init__(self, *, threshold: int = 5, cooldown: float = 30.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._failures >= self.threshold and time.monotonic() < self._open_until

    def succeeded(self) -> None:
        self._failures = 0

    def failed(self) -> None:
        self._failures += 1
        if self._failures >= self.threshold:
            self._open_until = time.monotonic() + self.cooldown


@dataclass
class CachedToken:
    value: str
    expires_at: float  # time.monotonic()


class TokenCache:
    """An OAuth access token, fetched once and reused until shortly before it expires."""

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float]]], *, margin: float = 60):
        self._fetch = fetch  # returns (token, lifetime in seconds)
        self._margin = margin
        self._token: CachedToken | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._token.expires_at:
                value, lifetime = await self._fetch()
                margin = min(self._margin, lifetime / 2)
                self._token = CachedToken(value, time.monotonic() + lifetime - margin)
            return self._token.value

    def forget(self, value: str) -> None:
        """The provider refused this token (401): the next get() fetches a new one."""
        if self._token is not None and self._token.value == value:
            self._token = None


class ProviderHTTP:
    """An httpx client for one provider. `call` retries only what is safe to repeat."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        breaker: CircuitBreaker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.retries = retries
        self.backoff = backoff
        self.breaker = breaker or CircuitBreaker()
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        idempotent: bool,
        reference: str | None = None,
        retry_if: Callable[[httpx.Response], bool] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One logical call. Network errors and 5xx are retried with backoff when
        `idempotent`; the last response is returned whatever its status (5xx included),
        and only a network failure raises ProviderUnavailable.

        `retry_if` tells a transient 5xx from a definitive one, for providers that answer
        business refusals with a 500 (MoMo's NOT_ALLOWED, PAYER_NOT_FOUND…): a 5xx it
        returns False for is an answer, returned at once and not held against the breaker."""
        if self.breaker.is_open:
            PROVIDER_CALLS.labels(self.provider, operation, "circuit_open").inc()
            raise ProviderUnavailable(self.provider, "circuit open after repeated failures")
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(1, attempts + 1):
            started = time.perf_counter()
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                self._record(operation, reference, started, attempt, error=type(exc).__name__)
                self.breaker.failed()
                if attempt == attempts:
                    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                    raise ProviderUnavailable(
                        self.provider, f"{operation}: {type(exc).__name__}", definitive=not sent
                    ) from exc
            else:
                self._record(operation, reference, started, attempt, status=response.status_code)
                if response.status_code < 500 or (retry_if and not retry_if(response)):
                    self.breaker.succeeded()
                    return response
                self.breaker.failed()
                if attempt == attempts:
                    return response
            await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(1, 1.5))  # noqa: S311
        raise AssertionError("unreachable")

    def _record(
        self,
        operation: str,
        reference: str | None,
        started: float,
        attempt: int,
        *,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        elapsed = time.perf_counter() - started
        outcome = error or (f"{status // 100}xx" if status else "unknown")
        PROVIDER_CALLS.labels(self.provider, operation, outcome).inc()
        PROVIDER_LATENCY.labels(self.provider, operation).observe(elapsed)
        (log.warning if error or (status and status >= 500) else log.info)(
            "provider.call",
            provider=self.provider,
            operation=operation,
            reference=reference,
            status=status,
            error=error,
            attempt=attempt,
            latency_ms=round(elapsed * 1000, 1),
        )
