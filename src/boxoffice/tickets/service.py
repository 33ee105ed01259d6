"""Issuing tickets for a confirmed booking, and cancelling them."""

import re
import secrets
import uuid
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.catalog.models import Event, TicketType
from boxoffice.inventory.models import HoldItem
from boxoffice.tickets.codes import TicketSigner
from boxoffice.tickets.errors import (
    AlreadyCheckedIn,
    InvalidTicket,
    TicketCancelled,
    TicketNotFound,
)
from boxoffice.tickets.models import Ticket, TicketStatus
from boxoffice.tickets.pdf import TicketSheet

# Crockford's base32: no I, L, O or U, so a number read out over the phone is unambiguous.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def booking_reference() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(8))


def ticket_number(event_title: str, reference: str, place: int) -> str:
    """ "AFR-7K2Q-9XZA-01": the first three ASCII letters of the event's title, the booking
    reference, the seat's place in the booking. boxoffice_book_free (migration 0007) builds
    the same on PostgreSQL."""
    prefix = re.sub(r"[^A-Za-z]", "", event_title)[:3].upper().ljust(3, "X")  # "Oz" -> "OZX"
    return f"{prefix}-{reference[:4]}-{reference[4:]}-{place:02d}"


async def issue(
    session: AsyncSession,
    *,
    booking_id: uuid.UUID,
    reference: str,
    event_id: uuid.UUID,
    event_title: str,
    user_id: uuid.UUID,
    holder_name: str,
    currency: str,
    items: list[HoldItem],
    now: datetime,
) -> None:
    """One ticket per seat, numbered by ticket_number."""
    rows = []
    for item in sorted(items, key=lambda item: (item.ticket_type_id, item.stock_id)):
        for _ in range(item.quantity):
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "booking_id": booking_id,
                    "event_id": event_id,
                    "ticket_type_id": item.ticket_type_id,
                    "user_id": user_id,
                    "number": ticket_number(event_title, reference, len(rows) + 1),
                    "holder_name": holder_name,
                    "price_cents": item.unit_price_cents,
                    "currency": currency,
                    "status": TicketStatus.VALID,
                    "created_at": now,
                    "checked_in_at": None,
                    "cancelled_at": None,
                }
            )
    # Core, not the unit of work: nothing reads them back as objects in this transaction.
    await session.execute(insert(Ticket.__table__), rows)


async def cancel(
    session: AsyncSession, ticket_ids: list[uuid.UUID], *, now: datetime
) -> list[Ticket]:
    """Cancel the still-valid tickets among `ticket_ids`; returns those it cancelled."""
    if not ticket_ids:
        return []
    cancelled = await session.scalars(
        update(Ticket)
        .where(Ticket.id.in_(ticket_ids), Ticket.status == TicketStatus.VALID)
        .values(status=TicketStatus.CANCELLED, cancelled_at=now)
        .returning(Ticket)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return list(cancelled)


async def of_bookings(session: AsyncSession, booking_ids: list[uuid.UUID]) -> list[Ticket]:
    if not booking_ids:
        return []
    return list(await session.scalars(_OF_BOOKINGS, {"ids": booking_ids}))


_OF_BOOKINGS = (
    select(Ticket)
    .where(Ticket.booking_id.in_(bindparam("ids", expanding=True)))
    .order_by(Ticket.number)
)


async def list_owned(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    event_id: uuid.UUID | None,
    status: TicketStatus | None,
    offset: int,
    limit: int,
) -> tuple[list[Ticket], int]:
    query = select(Ticket).where(Ticket.user_id == user_id)
    if event_id is not None:
        query = query.where(Ticket.event_id == event_id)
    if status is not None:
        query = query.where(Ticket.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    page = await session.scalars(
        query.order_by(Ticket.created_at.desc(), Ticket.number).offset(offset).limit(limit)
    )
    return list(page), total or 0


async def get_visible(
    session: AsyncSession, *, ticket_id: uuid.UUID, viewer_id: uuid.UUID, is_admin: bool
) -> Ticket | None:
    query = select(Ticket).where(Ticket.id == ticket_id)
    if not is_admin:
        query = query.where(Ticket.user_id == viewer_id)
    return await session.scalar(query)


async def sheet(
    session: AsyncSession, *, ticket_id: uuid.UUID, owner_id: uuid.UUID, signer: TicketSigner
) -> TicketSheet:
    """What the owner's ticket PDF shows. Only the owner's (404 otherwise, as for the
    code itself); a cancelled ticket has no sheet (409 ticket_cancelled)."""
    row = (
        await session.execute(
            select(Ticket, TicketType.name, Event)
            .join(TicketType, TicketType.id == Ticket.ticket_type_id)
            .join(Event, Event.id == Ticket.event_id)
            .where(Ticket.id == ticket_id, Ticket.user_id == owner_id)
        )
    ).first()
    if row is None:
        raise TicketNotFound()
    ticket, tier, event = row
    if ticket.status == TicketStatus.CANCELLED:
        raise TicketCancelled("This ticket was cancelled; it no longer admits anyone.")
    return TicketSheet(
        number=ticket.number,
        code=signer.sign(ticket.id),
        holder=ticket.holder_name,
        tier=tier,
        price_minor=ticket.price_cents,
        currency=ticket.currency,
        event_title=event.title,
        starts_at=event.starts_at,
        timezone=event.timezone,
        venue=event.venue_name,
        city=event.city,
        country=event.country,
    )


async def check_in(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID | None,
    event_id: uuid.UUID,
    now: datetime,
) -> Ticket:
    """Mark a scanned ticket used, once. `ticket_id` comes from a verified code (None for
    a forged one); the caller has checked that the scanner manages `event_id`."""
    if ticket_id is None:
        raise InvalidTicket("This code was not issued by us, or was altered.")
    used = await session.scalar(
        update(Ticket)
        .where(
            Ticket.id == ticket_id,
            Ticket.event_id == event_id,
            Ticket.status == TicketStatus.VALID,
        )
        .values(status=TicketStatus.USED, checked_in_at=now)
        .returning(Ticket)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    if used is not None:
        return used
    ticket = await session.scalar(
        select(Ticket).where(Ticket.id == ticket_id, Ticket.event_id == event_id)
    )
    if ticket is None:
        raise InvalidTicket("This ticket is not for this event.")
    if ticket.status == TicketStatus.CANCELLED:
        raise TicketCancelled(number=ticket.number)
    assert ticket.checked_in_at is not None
    raise AlreadyCheckedIn(
        f"Ticket {ticket.number} was checked in at {ticket.checked_in_at.isoformat()}.",
        checked_in_at=ticket.checked_in_at.isoformat(),
        number=ticket.number,
    )
