"""A hold in one round trip on PostgreSQL: boxoffice_place_hold() (migration 0006).

The function does what orders.service.place_hold does step by step on SQLite, in one
statement: the stock shards stay locked for the function's microseconds instead of for
several round trips, and the web process spends its CPU on one statement instead of seven.
Its refusals come back as errors with SQLSTATE BX401/BX404/BX409, the problem code as the
message and its fields as JSON in the detail; they are turned into the same DomainErrors as
the Python steps raise, so the API cannot tell the two apart.
"""

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts.service import REVOKED_ACCESS
from boxoffice.accounts.tokens import AccessClaims
from boxoffice.catalog.errors import EventNotFound, TicketTypeNotFound
from boxoffice.db import Database
from boxoffice.errors import DomainError, Unauthenticated
from boxoffice.inventory.errors import NotOnSale, SoldOut, TicketLimitExceeded
from boxoffice.inventory.models import Hold, HoldItem, HoldStatus
from boxoffice.orders.schemas import HoldCreate

_CALL = "boxoffice_place_hold({})".format
_ARGUMENTS = ("hold", "user", "session", "token", "event", "tiers", "quantities", "now", "until")
_IN_SESSION = text("SELECT " + _CALL(", ".join(f":{name}" for name in _ARGUMENTS)))
_ALONE = "SELECT " + _CALL(", ".join(f"${n}" for n in range(1, len(_ARGUMENTS) + 1)))
REFUSED = frozenset({"BX401", "BX404", "BX409"})


async def place(
    session: AsyncSession, *, user_id: uuid.UUID, data: HoldCreate, ttl: timedelta, now: datetime
) -> Hold:
    """The hold, placed inside the session's transaction (the caller is authenticated)."""
    arguments = _arguments(user_id, None, data, ttl, now)
    try:
        answer = await session.scalar(_IN_SESSION, dict(zip(_ARGUMENTS, arguments, strict=True)))
    except DBAPIError as exc:
        cause = exc.orig.__cause__ if exc.orig is not None else None
        if isinstance(cause, asyncpg.PostgresError) and cause.sqlstate in REFUSED:
            raise _refusal(*_refused(cause)) from None
        raise
    return _hold(answer, arguments)


async def place_alone(
    db: Database, *, claims: AccessClaims, data: HoldCreate, ttl: timedelta, now: datetime
) -> Hold:
    """The hold as a statement of its own, which also checks that the caller's session and
    token are live: one round trip for the whole request."""
    arguments = _arguments(claims.user_id, claims, data, ttl, now)
    return _hold(await call_alone(db, _ALONE, arguments, _refusal), arguments)


async def call_alone(
    db: Database,
    query: str,
    arguments: Sequence[Any],
    refusal: Callable[[str, dict[str, Any]], DomainError],
) -> Any:
    """The value of one of our functions, called on a connection of its own; a refusal of
    the function raised as the DomainError that `refusal` makes of its code and fields."""
    async with db.driver_connection() as connection:
        try:
            return await connection.fetchval(query, *arguments)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate in REFUSED:
                raise refusal(*_refused(exc)) from None
            raise


def _refused(error: asyncpg.PostgresError) -> tuple[str, dict[str, Any]]:
    """A function's refusal: the problem code is its message, the fields its detail."""
    return (error.args[0] if error.args else "", json.loads(error.detail or "{}"))


def _arguments(
    user_id: uuid.UUID,
    claims: AccessClaims | None,
    data: HoldCreate,
    ttl: timedelta,
    now: datetime,
) -> tuple[Any, ...]:
    return (
        uuid.uuid4(),
        user_id,
        claims.session_id if claims else None,
        claims.token_id if claims else None,
        data.event_id,
        [item.ticket_type_id for item in data.items],
        [item.quantity for item in data.items],
        now,
        now + ttl,
    )


def _hold(answer: str, arguments: tuple[Any, ...]) -> Hold:
    """The Hold (with its items and its tiers' names, as the views want them) from what the
    function returned."""
    hold_id, user_id, _, _, event_id, _, _, now, expires_at = arguments
    found = json.loads(answer)
    hold = Hold(
        id=hold_id,
        user_id=user_id,
        event_id=event_id,
        status=HoldStatus.ACTIVE,
        quantity=found["quantity"],
        total_cents=found["total_cents"],
        currency=found["currency"],
        expires_at=expires_at,
        created_at=now,
    )
    hold.__dict__["items"] = [
        hold_item(hold_id, *item) for item in zip(*found["items"], strict=True)
    ]
    hold.__dict__["tier_names"] = {uuid.UUID(key): name for key, name in found["names"].items()}
    return hold


def hold_item(
    hold_id: uuid.UUID, item_id: str, tier: str, stock: str, quantity: int, price: int
) -> HoldItem:
    """A hold item as our functions return it, ids as text."""
    return HoldItem(
        id=uuid.UUID(item_id),
        hold_id=hold_id,
        ticket_type_id=uuid.UUID(tier),
        stock_id=uuid.UUID(stock),
        quantity=quantity,
        unit_price_cents=price,
    )


def _refusal(code: str, fields: dict[str, Any]) -> DomainError:
    tier = fields.get("ticket_type_id")
    match code:
        case "unauthenticated":
            return Unauthenticated(REVOKED_ACCESS)
        case "event_not_found":
            return EventNotFound()
        case "ticket_type_not_found":
            return TicketTypeNotFound.of_event(tier)
        case "not_on_sale":
            return NotOnSale(uuid.UUID(tier), fields["name"])
        case "ticket_limit_exceeded" if tier is not None:
            return TicketLimitExceeded.per_order(uuid.UUID(tier), fields["name"], fields["limit"])
        case "ticket_limit_exceeded":
            return TicketLimitExceeded.per_person(fields["limit"], fields["held_or_bought"])
        case "sold_out":
            return SoldOut(uuid.UUID(tier), fields["available"])
    raise RuntimeError(f"boxoffice_place_hold refused with an unknown code: {code!r}")
