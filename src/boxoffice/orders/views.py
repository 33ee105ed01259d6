"""Holds, bookings and tickets as the API shows them, loaded in a few batched queries."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.catalog.models import Event, TicketType
from boxoffice.inventory.models import Hold, HoldItem, HoldStatus
from boxoffice.orders.models import Booking, BookingStatus
from boxoffice.orders.schemas import (
    BookingItemRead,
    BookingRead,
    EventSummary,
    HoldItemRead,
    HoldRead,
    PaymentSummary,
    TicketRead,
    TicketTypeRef,
    VenueSummary,
)
from boxoffice.payments.models import Payment, PaymentStatus
from boxoffice.tickets import service as tickets
from boxoffice.tickets.codes import TicketSigner
from boxoffice.tickets.models import Ticket
from boxoffice.validation import Money


async def _tier_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(TicketType.id, TicketType.name).where(TicketType.id.in_(ids))
    )
    return dict(rows.all())


def _grouped(items: Sequence[HoldItem], names: dict[uuid.UUID, str], currency: str) -> list:
    """Hold items per tier (a tier's seats may come from several shards)."""
    quantity: dict[uuid.UUID, int] = defaultdict(int)
    price: dict[uuid.UUID, int] = {}
    for item in items:
        quantity[item.ticket_type_id] += item.quantity
        price[item.ticket_type_id] = item.unit_price_cents
    return [
        {
            "ticket_type_id": tier_id,
            "name": names.get(tier_id, ""),
            "quantity": quantity[tier_id],
            "unit_price": Money(amount=price[tier_id], currency=currency),
        }
        for tier_id in quantity
    ]


async def hold_read(
    session: AsyncSession,
    hold: Hold,
    *,
    names: dict[uuid.UUID, str] | None = None,
    now: datetime | None = None,
) -> HoldRead:
    """The hold as API.md shows it. Given `now`, an active hold past its expiry reads as
    expired, as every request that touches it treats it, before the sweep catches up."""
    items = hold.__dict__.get("items")
    if items is None:
        items = list(
            await session.scalars(
                select(HoldItem)
                .where(HoldItem.hold_id == hold.id)
                .order_by(HoldItem.ticket_type_id, HoldItem.stock_id)
            )
        )
    names = names or hold.__dict__.get("tier_names")
    if names is None:
        names = await _tier_names(session, {item.ticket_type_id for item in items})
    return _hold_read(hold, items, names, now)


def placed_hold(hold: Hold) -> HoldRead:
    """A hold just placed, which carries its items and its tiers' names."""
    return _hold_read(hold, hold.__dict__["items"], hold.__dict__["tier_names"], None)


def _hold_read(
    hold: Hold, items: Sequence[HoldItem], names: dict[uuid.UUID, str], now: datetime | None
) -> HoldRead:
    return HoldRead(
        id=hold.id,
        event_id=hold.event_id,
        items=[HoldItemRead(**item) for item in _grouped(items, names, hold.currency)],
        total=Money(amount=hold.total_cents, currency=hold.currency),
        expires_at=hold.expires_at,
        status=HoldStatus.EXPIRED if now and hold.is_overdue(now) else hold.status,
        booking_id=hold.booking_id,
    )


def ticket_read(
    ticket: Ticket, tier_name: str, *, signer: TicketSigner, with_code: bool
) -> TicketRead:
    return TicketRead(
        id=ticket.id,
        booking_id=ticket.booking_id,
        event_id=ticket.event_id,
        ticket_type=TicketTypeRef(id=ticket.ticket_type_id, name=tier_name),
        holder_name=ticket.holder_name,
        number=ticket.number,
        price=Money(amount=ticket.price_cents, currency=ticket.currency),
        status=ticket.status,
        code=signer.sign(ticket.id) if with_code else None,
        checked_in_at=ticket.checked_in_at,
    )


async def ticket_reads(
    session: AsyncSession, owned: Sequence[Ticket], *, viewer_id: uuid.UUID, signer: TicketSigner
) -> list[TicketRead]:
    names = await _tier_names(session, {ticket.ticket_type_id for ticket in owned})
    return _ticket_reads(owned, names, viewer_id=viewer_id, signer=signer)


def _ticket_reads(
    owned: Sequence[Ticket],
    names: dict[uuid.UUID, str],
    *,
    viewer_id: uuid.UUID,
    signer: TicketSigner,
) -> list[TicketRead]:
    """Tickets with their tiers' names, and their codes for their holder only."""
    return [
        ticket_read(
            ticket,
            names.get(ticket.ticket_type_id, ""),
            signer=signer,
            with_code=ticket.user_id == viewer_id,
        )
        for ticket in owned
    ]


# The statements of booking_reads(), built once: composing one costs more than running it.
_IDS = bindparam("ids", expanding=True)
_EVENTS = select(Event).where(Event.id.in_(_IDS))
_NAMED_ITEMS = (
    select(HoldItem, TicketType.name)
    .join(TicketType, TicketType.id == HoldItem.ticket_type_id)
    .where(HoldItem.hold_id.in_(_IDS))
    .order_by(HoldItem.ticket_type_id, HoldItem.stock_id)
)
_EXPIRIES = select(Hold.id, Hold.expires_at).where(Hold.id.in_(_IDS))
_PAYMENTS = select(Payment).where(Payment.booking_id.in_(_IDS)).order_by(Payment.created_at)


async def booking_reads(
    session: AsyncSession,
    bookings: Sequence[Booking],
    *,
    viewer_id: uuid.UUID,
    signer: TicketSigner,
) -> list[BookingRead]:
    if not bookings:
        return []
    booking_ids = [booking.id for booking in bookings]
    hold_ids = [booking.hold_id for booking in bookings]
    events = {
        event.id: event
        for event in await session.scalars(
            _EVENTS, {"ids": list({booking.event_id for booking in bookings})}
        )
    }
    items: dict[uuid.UUID, list[HoldItem]] = defaultdict(list)
    names: dict[uuid.UUID, str] = {}  # a booking's tickets are of its hold's tiers
    for item, name in await session.execute(_NAMED_ITEMS, {"ids": hold_ids}):
        items[item.hold_id].append(item)
        names[item.ticket_type_id] = name
    waiting = [b.hold_id for b in bookings if b.status == BookingStatus.PENDING_PAYMENT]
    expiries = dict((await session.execute(_EXPIRIES, {"ids": waiting})).all()) if waiting else {}
    latest: dict[uuid.UUID, Payment] = {}
    for payment in await session.scalars(_PAYMENTS, {"ids": booking_ids}):
        latest[payment.booking_id] = payment
    issued: dict[uuid.UUID, list[Ticket]] = defaultdict(list)
    for ticket in await tickets.of_bookings(session, booking_ids):
        issued[ticket.booking_id].append(ticket)
    summaries = {event.id: event_summary(event) for event in events.values()}
    return [
        booking_read(
            booking,
            event=summaries[booking.event_id],
            items=items[booking.hold_id],
            names=names,
            expires_at=expiries.get(booking.hold_id),
            payment=latest.get(booking.id),
            tickets=issued[booking.id],
            viewer_id=viewer_id,
            signer=signer,
        )
        for booking in bookings
    ]


def event_summary(event: Event) -> EventSummary:
    return EventSummary(
        id=event.id,
        title=event.title,
        starts_at=event.starts_at,
        venue=VenueSummary(name=event.venue_name, city=event.city, country=event.country),
    )


def booking_read(
    booking: Booking,
    *,
    event: EventSummary,
    items: Sequence[HoldItem],
    names: dict[uuid.UUID, str],
    expires_at: datetime | None,
    payment: Payment | None,
    tickets: Sequence[Ticket],
    viewer_id: uuid.UUID,
    signer: TicketSigner,
) -> BookingRead:
    """A booking as API.md shows it, from its parts: its hold's items, the latest payment
    attempt, its tickets (with their codes for their holder only)."""
    return BookingRead(
        id=booking.id,
        reference=booking.reference,
        event=event,
        items=[BookingItemRead(**item) for item in _grouped(items, names, booking.currency)],
        total=Money(amount=booking.total_cents, currency=booking.currency),
        status=booking.status,
        failure_reason=booking.failure_reason,
        created_at=booking.created_at,
        confirmed_at=booking.confirmed_at,
        cancelled_at=booking.cancelled_at,
        expires_at=expires_at if booking.status == BookingStatus.PENDING_PAYMENT else None,
        payment=PaymentSummary(
            id=payment.id,
            status=payment.status.value,
            provider=payment.provider,
            amount=Money(amount=payment.amount_cents, currency=payment.currency),
            failure_reason=payment.failure_reason,
            instructions=payment.instructions if payment.status == PaymentStatus.PENDING else None,
        )
        if payment
        else None,
        tickets=_ticket_reads(tickets, names, viewer_id=viewer_id, signer=signer),
    )
