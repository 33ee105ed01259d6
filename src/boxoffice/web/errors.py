"""Every error leaves as application/problem+json (RFC 9457) with a stable `code`."""

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from boxoffice.errors import Busy, DomainError, ValidationFailed
from boxoffice.validation import field_errors

log = structlog.get_logger("boxoffice.web")

PROBLEM = "application/problem+json"
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
_HTTP_TITLES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


class UnsupportedMediaType(DomainError):
    status, code, title = (
        415,
        "unsupported_media_type",
        "Send JSON (Content-Type: application/json)",
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is answered (documented in OpenAPI)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None


_DESCRIPTIONS = {
    400: "Malformed JSON (`malformed_json`)",
    401: "Missing, invalid, expired or revoked token",
    403: "Signed in, but the role does not allow this (`forbidden`)",
    404: "Not found, or not yours to see (`not_found`)",
    409: "Conflict with the current state",
    413: "Body over the size limit (`payload_too_large`)",
    415: "Body is not JSON (`unsupported_media_type`)",
    422: "Invalid input (`validation_error` with per-field `errors`)",
    429: "Rate limited (`rate_limited`, with Retry-After)",
    503: "A dependency is unavailable (`payment_provider_unavailable`, `busy`; Retry-After)",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the problems a route can answer."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def document_problems_as_problem_json(openapi: dict[str, Any]) -> dict[str, Any]:
    """FastAPI files every response model under application/json; errors are problem+json."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.isdigit() and int(status) >= 400 and "application/json" in content:
                    content[PROBLEM] = content.pop("application/json")
    return openapi


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    headers: dict | None = None,
    extra: dict[str, Any] | None = None,
) -> ProblemResponse:
    body = problem_body(status, code, title, detail, extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        **(extra or {}),  # first: an error's own data can never overwrite the fields below
        "type": f"urn:boxoffice:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
    }


def internal_error() -> ProblemResponse:
    return problem(
        500,
        "internal_error",
        "Internal server error",
        "Something went wrong on our side; it has been logged.",
    )


def payload_too_large(max_bytes: int) -> ProblemResponse:
    return problem(413, "payload_too_large", "Request body too large", too_large(max_bytes))


def too_large(max_bytes: int) -> str:
    return f"Request bodies are limited to {max_bytes:,} bytes."


async def _domain_error(_request: Request, exc: DomainError) -> ProblemResponse:
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return problem(exc.status, exc.code, exc.title, exc.detail, headers=headers, extra=exc.extra)


async def _validation_error(request: Request, exc: RequestValidationError) -> ProblemResponse:
    errors = exc.errors()
    if any(error["type"] == "json_invalid" for error in errors):
        return problem(
            400, "malformed_json", "Malformed JSON", "The request body is not valid JSON."
        )
    return await _domain_error(request, ValidationFailed(field_errors(errors)))


async def _http_error(_request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    title = _HTTP_TITLES.get(exc.status_code, str(exc.detail))
    return problem(exc.status_code, code, title, str(exc.detail), headers=exc.headers)


async def _database_error(request: Request, exc: DBAPIError) -> ProblemResponse:
    if is_lock_timeout(exc):
        return await _domain_error(request, Busy("The system is busy; please retry in a moment."))
    raise exc


def is_lock_timeout(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in (
            "database is locked",
            "lock timeout",
            "could not obtain lock",
            "deadlock detected",
            "could not serialize",
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, _database_error)  # type: ignore[arg-type]
