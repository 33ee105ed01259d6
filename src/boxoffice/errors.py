"""Domain errors: each is one of a few kinds, and carries a stable code (API.md)."""

from typing import Any, ClassVar


class DomainError(Exception):
    """Raised by services; the web edge maps each kind to an HTTP status once."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    # Most errors undo the transaction; a few record something that must stand (a reused
    # refresh token revokes its session) and are answered only after the commit.
    keeps_changes: ClassVar[bool] = False

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Unauthenticated(DomainError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Invalid(DomainError):
    status, code, title = 422, "invalid", "Invalid request"


class ValidationFailed(Invalid):
    """Input that passed parsing but not a rule that needs more than one field or the
    current state; answered like any validation error, with the fields named."""

    code, title = "validation_error", "Invalid input"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        super().__init__(detail, errors=errors)

    @classmethod
    def field(cls, field: str, message: str) -> "ValidationFailed":
        return cls([{"field": field, "message": message}])


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail or f"Too many attempts; try again in {retry_after} s.")
        self.retry_after = retry_after


class Busy(DomainError):
    """A lock or serialization timeout: the caller may retry shortly."""

    status, code, title = 503, "busy", "Busy, try again"
    retry_after = 1
