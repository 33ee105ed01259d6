"""What both provider simulators share: outcomes that arrive after a delay, callbacks
delivered in the modes that test the hard cases, faults on demand, a record of every
request and callback, and the control endpoints (under `/_control`) that switch them.

A simulator keeps everything in memory. Its clock is injectable: tests may advance time
instead of sleeping (`Simulator.clock`, `advance`); timers are asyncio tasks that wake on
`delay` of real time, and `settle()` moves every transaction whose outcome is due.
"""

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

log = structlog.get_logger("boxoffice.simulators")


class CallbackMode(StrEnum):
    ONCE = "once"  # the default: one delivery when the transaction is final
    DUPLICATE = "duplicate"  # `duplicates` deliveries, the last after a pause
    NONE = "none"  # never: polling must settle it
    DELAYED = "delayed"  # after `callback_delay` more seconds (after a poller's first pass)
    RETRY = "retry"  # again, with backoff, until the receiver answers 2xx
    RANDOM = "random"  # per transaction: lost, duplicated, delayed or once (seeded)


class Fault(StrEnum):
    UNAVAILABLE = "503"  # the next call answers 503 SERVICE_UNAVAILABLE
    ERROR = "500"  # the next call answers 500 INTERNAL_PROCESSING_ERROR (or its kin)
    HANG = "hang"  # the next call answers only after `hang_seconds` (past a client timeout)


class ControlChange(BaseModel):
    """POST /_control: any of the switches; unset ones stay as they are."""

    model_config = ConfigDict(extra="forbid")

    delay: float | None = Field(None, ge=0)
    callback_mode: CallbackMode | None = None
    callback_method: str | None = Field(None, pattern="^(POST|PUT)$")
    callback_delay: float | None = Field(None, ge=0)
    duplicates: int | None = Field(None, ge=2, le=10)
    seed: int | None = None
    faults: list[Fault] | None = None  # queued: each applies to one coming call


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class SentCallback:
    url: str
    method: str
    body: Any
    status: int | None  # None: the receiver could not be reached
    at: float


@dataclass
class Simulator:
    """The switches and records of one simulator; the provider modules add their state."""

    delay: float = 2.0
    callback_mode: CallbackMode = CallbackMode.ONCE
    callback_method: str = "POST"
    callback_delay: float = 5.0
    duplicates: int = 2
    hang_seconds: float = 30.0
    seed: int | None = None
    http: httpx.AsyncClient | None = None  # for callbacks; tests may give an ASGI transport
    clock: Callable[[], float] = time.monotonic
    requests: list[RecordedRequest] = field(default_factory=list)
    callbacks: list[SentCallback] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    _offset: float = 0.0
    _tasks: dict[asyncio.Task[None], float] = field(default_factory=dict)  # → when due
    _random: random.Random = field(default_factory=random.Random)

    def now(self) -> float:
        return self.clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock on (tests): outcomes due by then settle on settle()."""
        self._offset += seconds

    def configure(self, change: ControlChange) -> None:
        for name in ("delay", "callback_mode", "callback_method", "callback_delay", "duplicates"):
            value = getattr(change, name)
            if value is not None:
                setattr(self, name, value)
        if change.seed is not None:
            self.seed = change.seed
            self._random.seed(change.seed)
        if change.faults is not None:
            self.faults = deque(change.faults)

    def take_fault(self) -> Fault | None:
        return self.faults.popleft() if self.faults else None

    def later(self, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` after `seconds` of real time, in the background."""

        async def run() -> None:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception:
                log.exception("simulator.task_failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks[task] = time.monotonic() + seconds
        task.add_done_callback(lambda done: self._tasks.pop(done, None))

    async def drain(self, *, within: float = 10.0) -> None:
        """Wait for the timers and callbacks under way that are due in the next `within`
        seconds, and for what they start in turn (tests); later ones keep running."""
        while due := [t for t, at in self._tasks.items() if at <= time.monotonic() + within]:
            await asyncio.gather(*due, return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.http is not None:
            await self.http.aclose()

    def send_callback(self, url: str | None, body: Any, *, method: str | None = None) -> None:
        """Deliver `body` to `url` as the current callback mode says (in the background)."""
        if not url:
            return
        mode = self.callback_mode
        if mode == CallbackMode.RANDOM:
            mode = self._random.choice(
                [CallbackMode.ONCE, CallbackMode.NONE, CallbackMode.DUPLICATE, CallbackMode.DELAYED]
            )
        method = method or self.callback_method
        if mode == CallbackMode.NONE:
            return
        if mode == CallbackMode.ONCE:
            self.later(0, lambda: self._post(url, body, method))
        elif mode == CallbackMode.DELAYED:
            self.later(self.callback_delay, lambda: self._post(url, body, method))
        elif mode == CallbackMode.DUPLICATE:
            for n in range(self.duplicates):
                pause = 0 if n < self.duplicates - 1 else self.callback_delay
                self.later(pause, lambda: self._post(url, body, method))
        elif mode == CallbackMode.RETRY:
            self.later(0, lambda: self._post_until_accepted(url, body, method))

    async def _post(self, url: str, body: Any, method: str) -> int | None:
        client = self.http or httpx.AsyncClient(timeout=5)
        self.http = client
        status = None
        with contextlib.suppress(httpx.HTTPError):
            status = (await client.request(method, url, json=body)).status_code
        self.callbacks.append(SentCallback(url, method, body, status, self.now()))
        return status

    async def _post_until_accepted(self, url: str, body: Any, method: str) -> None:
        for attempt in range(20):
            status = await self._post(url, body, method)
            if status is not None and 200 <= status < 300:
                return
            await asyncio.sleep(min(0.1 * 2**attempt, 30))


class RecordRequests(BaseHTTPMiddleware):
    """Keeps every request a simulator receives, for tests to inspect."""

    def __init__(self, app: Any, simulator: Simulator) -> None:
        super().__init__(app)
        self.simulator = simulator

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if "/_control" not in request.url.path:
            self.simulator.requests.append(
                RecordedRequest(
                    request.method,
                    request.url.path,
                    dict(request.headers),
                    await request.body(),
                    self.simulator.now(),
                )
            )
        return await call_next(request)


def control_router(simulator: Simulator, settle: Callable[[], Awaitable[int]]) -> APIRouter:
    """The simulator's own endpoints: switches, records, and settling due outcomes."""
    router = APIRouter(prefix="/_control", include_in_schema=False)

    @router.post("")
    async def configure(change: ControlChange) -> dict[str, Any]:
        simulator.configure(change)
        return {"ok": True}

    @router.post("/settle")
    async def settle_due(seconds: float = 0) -> dict[str, Any]:
        simulator.advance(seconds)
        return {"settled": await settle()}

    @router.get("/requests")
    async def requests() -> list[dict[str, Any]]:
        return [{"method": r.method, "path": r.path, "at": r.at} for r in simulator.requests]

    @router.get("/callbacks")
    async def callbacks() -> list[dict[str, Any]]:
        return [
            {"url": c.url, "method": c.method, "body": c.body, "status": c.status}
            for c in simulator.callbacks
        ]

    return router


def simulator_app(
    title: str, simulator: Simulator, settle: Callable[[], Awaitable[int]]
) -> FastAPI:
    """A FastAPI app for one simulator, with the shared control endpoints and recording."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.simulator = simulator
    app.include_router(control_router(simulator, settle))
    app.add_middleware(RecordRequests, simulator=simulator)
    return app
