"""The HTTP edge as one pure ASGI middleware: request id, security headers, body size
limit, access log, metrics, and the last-resort 500 (so that it, too, carries the request id)."""

import re
import time
import uuid

import structlog
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice.web.errors import internal_error, payload_too_large, too_large

log = structlog.get_logger("boxoffice.http")

REQUESTS = Counter(
    "boxoffice_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "boxoffice_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_METHODS = {
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
}  # else "OTHER": bounded labels
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_API_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_DOCS_CSP = (
    b"content-security-policy",
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; frame-ancestors 'none'",
)


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, hsts: bool = False) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.extra_headers = [(b"strict-transport-security", b"max-age=31536000")] if hsts else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        docs = scope["path"] == "/docs"
        headers = [
            (b"x-request-id", request_id.encode()),
            *_API_HEADERS,
            _DOCS_CSP if docs else _API_CSP,
            *self.extra_headers,
        ]
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        try:
            if _declared_length(scope) > self.max_body_bytes:
                await payload_too_large(self.max_body_bytes)(scope, receive, send_with_headers)
            else:
                await self.app(scope, self._limited(receive), send_with_headers)
        except Exception:
            log.exception("request.failed", method=scope["method"], route=_route(scope))
            if not response_started:
                await internal_error()(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = _route(scope)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")

    def _limited(self, receive: Receive) -> Receive:
        """Counts the body as it arrives, which catches a chunked one (no Content-Length);
        the route's body parser turns the HTTPException into the same 413 problem."""
        received = 0

        async def receive_with_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise HTTPException(413, too_large(self.max_body_bytes))
            return message

        return receive_with_limit


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


def _route(scope: Scope) -> str:
    """The route's template (/users/{user_id}), never the raw path: ids and secret tokens
    stay out of logs and metric labels."""
    route = scope.get("route")
    if route is not None:
        return route.path
    if "endpoint" in scope and not scope.get("path_params"):  # a plain route: /openapi.json
        return scope["path"]
    return "unmatched"
