import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.orders import idempotency
from boxoffice.orders import service as orders
from boxoffice.orders.models import Booking, BookingStatus
from boxoffice.worker.registry import job

log = structlog.get_logger("boxoffice.orders")


@job("orders.expire_holds")
async def expire_holds(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    expired = await orders.expire_overdue(session, now=now)
    if expired:
        log.info("holds.expired", count=expired)


@job("orders.booking_confirmed")
async def booking_confirmed(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    # The outbox row of a confirmation. Delivery (e-mail, in-app notification) is the
    # notifications module's; until it exists the confirmation is logged, once per booking.
    booking = await session.scalar(
        select(Booking).where(Booking.id == uuid.UUID(payload["booking_id"]))
    )
    if booking is None or booking.status != BookingStatus.CONFIRMED:
        return
    log.info("booking.confirmation", booking_id=str(booking.id), reference=booking.reference)


@job("orders.event_cancelled")
async def event_cancelled(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    # The outbox row telling ticket holders; delivery is the notifications module's.
    holders = await session.scalar(
        select(func.count(func.distinct(Booking.user_id))).where(
            Booking.event_id == uuid.UUID(payload["event_id"])
        )
    )
    log.info("event.cancellation", event_id=payload["event_id"], holders=holders)


@job("orders.purge_idempotency_keys")
async def purge_idempotency_keys(
    session: AsyncSession, payload: dict[str, Any], now: datetime
) -> None:
    await idempotency.purge_expired(session, now=now)
