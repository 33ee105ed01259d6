"""What routes declare: the session, the clock, the caller and their role, the limiter."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts import service as accounts
from boxoffice.accounts import tokens
from boxoffice.accounts.models import Role, User
from boxoffice.accounts.tokens import AccessClaims
from boxoffice.analytics.recorder import InteractionRecorder
from boxoffice.cache import Cache
from boxoffice.config import Settings
from boxoffice.db import Database, utcnow
from boxoffice.errors import Forbidden, Unauthenticated
from boxoffice.payments.setup import Payments
from boxoffice.ratelimit import RateLimiter
from boxoffice.tickets.codes import TicketSigner
from boxoffice.validation import MAX_LIMIT, MAX_PAGE, PageParams
from boxoffice.web.errors import UnsupportedMediaType


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_now() -> datetime:
    return utcnow()


async def get_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    """One request, one transaction, committed before the response is sent."""
    async with db.transaction() as session:
        yield session


async def get_read_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    async with db.read_transaction() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
Clock = Annotated[datetime, Depends(get_now)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/v1/login")


@dataclass(frozen=True, slots=True)
class Caller:
    user: User
    claims: AccessClaims


async def get_claims(
    settings: SettingsDep,
    now: Clock,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    """What a valid access token says, read without the database: whether it was revoked
    is asked by get_caller (or, on the hold path, by the hold's own statement)."""
    if credentials is None:
        raise Unauthenticated("Sign in and send the access token as 'Authorization: Bearer …'.")
    claims = tokens.read_access_token(
        credentials.credentials, secret=settings.signing_secret, now=now
    )
    if claims is None:
        raise Unauthenticated(accounts.INVALID_ACCESS)
    return claims


ClaimsDep = Annotated[AccessClaims, Depends(get_claims)]


async def get_caller(db: Annotated[Database, Depends(get_db)], claims: ClaimsDep) -> Caller:
    # Its own short read transaction: a GET stays a reader on SQLite.
    async with db.read_transaction() as session:
        user = await accounts.live_user(session, claims)
    return Caller(user, claims)


async def get_viewer_id(
    settings: SettingsDep,
    now: Clock,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> uuid.UUID | None:
    """Who is looking at a public page, if they sent a valid token; no database round
    trip, because it only labels analytics."""
    if credentials is None:
        return None
    claims = tokens.read_access_token(
        credentials.credentials, secret=settings.signing_secret, now=now
    )
    return claims.user_id if claims else None


def require_role(*roles: Role) -> Callable[..., Awaitable[User]]:
    """The one place roles are checked: `Depends(require_role(Role.ADMIN))`."""

    async def check(caller: Annotated[Caller, Depends(get_caller)]) -> User:
        if roles and caller.user.role not in roles:
            raise Forbidden("Your account's role does not allow this.")
        return caller.user

    return check


CallerDep = Annotated[Caller, Depends(get_caller)]
ViewerId = Annotated[uuid.UUID | None, Depends(get_viewer_id)]
CurrentUser = Annotated[User, Depends(require_role())]
OrganizerUser = Annotated[User, Depends(require_role(Role.ORGANIZER, Role.ADMIN))]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]


async def get_page(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> PageParams:
    return PageParams(page=page, limit=limit)


PageDep = Annotated[PageParams, Depends(get_page)]


async def get_cache(request: Request) -> Cache:
    return request.app.state.cache


async def get_recorder(request: Request) -> InteractionRecorder:
    return request.app.state.interactions


CacheDep = Annotated[Cache, Depends(get_cache)]
RecorderDep = Annotated[InteractionRecorder, Depends(get_recorder)]
DbDep = Annotated[Database, Depends(get_db)]


async def get_limiter(request: Request) -> RateLimiter:
    return request.app.state.limiter


async def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]
ClientIP = Annotated[str, Depends(client_ip)]


async def require_json(request: Request) -> None:
    """Bodies must be JSON; anything else is a 415, not a confusing validation error."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    has_body = (
        request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and not (content_type == "application/json" or content_type.endswith("+json")):
        raise UnsupportedMediaType(
            f"Expected application/json, got {content_type or 'no Content-Type'}."
        )


async def get_signer(request: Request) -> TicketSigner:
    return request.app.state.signer


async def get_payments(request: Request) -> Payments:
    return request.app.state.payments


SignerDep = Annotated[TicketSigner, Depends(get_signer)]
PaymentsDep = Annotated[Payments, Depends(get_payments)]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retries with the same key and body get the first answer again (24 h).",
    ),
]
