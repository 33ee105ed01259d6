"""A free booking in one round trip on PostgreSQL: boxoffice_book_free() (migration 0007).

POST /bookings without an Idempotency-Key tries it first. It answers None for a hold that
costs money, which then takes the Python steps of orders.service.book, as every booking
does on SQLite; its refusals become the same DomainErrors those steps raise.
"""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from boxoffice.accounts.service import REVOKED_ACCESS
from boxoffice.accounts.tokens import AccessClaims
from boxoffice.db import Database
from boxoffice.errors import DomainError, Unauthenticated
from boxoffice.inventory.errors import HoldExpired, HoldNotActive, HoldNotFound
from boxoffice.orders import views
from boxoffice.orders.metrics import BOOKINGS, PAYMENTS
from boxoffice.orders.models import Booking, BookingStatus
from boxoffice.orders.placing import call_alone, hold_item
from boxoffice.orders.schemas import BookingRead, EventSummary, VenueSummary
from boxoffice.payments.models import Payment, PaymentStatus
from boxoffice.tickets import service as tickets
from boxoffice.tickets.codes import TicketSigner
from boxoffice.tickets.models import Ticket, TicketStatus
from boxoffice.worker.service import DEFAULT_MAX_ATTEMPTS

_BOOK = "SELECT boxoffice_book_free($1, $2, $3, $4, $5, $6, $7, $8)"


async def book_alone(
    db: Database,
    *,
    claims: AccessClaims,
    hold_id: uuid.UUID,
    now: datetime,
    signer: TicketSigner,
) -> BookingRead | None:
    """The confirmed booking of the caller's free hold, as a statement of its own that also
    checks the caller's session and token; None if the hold costs money."""
    booking = Booking(
        id=uuid.uuid4(),
        reference=tickets.booking_reference(),
        user_id=claims.user_id,
        hold_id=hold_id,
        status=BookingStatus.CONFIRMED,
        total_cents=0,
        failure_reason=None,
        created_at=now,
        updated_at=now,
        confirmed_at=now,
        cancelled_at=None,
    )
    arguments = (
        booking.id,
        claims.user_id,
        claims.session_id,
        claims.token_id,
        hold_id,
        booking.reference,
        DEFAULT_MAX_ATTEMPTS,
        now,
    )
    answer = await call_alone(db, _BOOK, arguments, _refusal)
    if answer is None:
        return None
    for status in (BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED):
        BOOKINGS.labels(status.value).inc()  # as the Python steps count them
    for outcome in ("started", "successful"):
        PAYMENTS.labels("free", outcome).inc()

    found = json.loads(answer)
    booking.event_id = uuid.UUID(found["event_id"])
    booking.currency = found["currency"]
    event = found["event"]
    items, names = [], {}
    for *columns, name in found["items"]:  # the item's, then its tier's name
        item = hold_item(hold_id, *columns)
        items.append(item)
        names[item.ticket_type_id] = name
    payment = Payment(
        id=uuid.UUID(found["payment_id"]),
        provider="free",
        amount_cents=0,
        currency=booking.currency,
        status=PaymentStatus.SUCCESSFUL,
        failure_reason=None,
        instructions=None,
    )
    issued = [
        Ticket(
            id=uuid.UUID(ticket_id),
            booking_id=booking.id,
            event_id=booking.event_id,
            ticket_type_id=uuid.UUID(tier),
            user_id=claims.user_id,
            number=number,
            holder_name=holder_name,
            price_cents=price,
            currency=booking.currency,
            status=TicketStatus.VALID,
            checked_in_at=None,
        )
        for ticket_id, tier, number, holder_name, price in found["tickets"]
    ]
    return views.booking_read(
        booking,
        event=EventSummary(
            id=booking.event_id,
            title=event["title"],
            starts_at=datetime.fromisoformat(event["starts_at"]).replace(tzinfo=UTC),
            venue=VenueSummary(
                name=event["venue_name"], city=event["city"], country=event["country"]
            ),
        ),
        items=items,
        names=names,
        expires_at=None,
        payment=payment,
        tickets=issued,
        viewer_id=claims.user_id,
        signer=signer,
    )


def _refusal(code: str, fields: dict[str, Any]) -> DomainError:
    match code:
        case "unauthenticated":
            return Unauthenticated(REVOKED_ACCESS)
        case "hold_not_found":
            return HoldNotFound()
        case "hold_expired":
            return HoldExpired.for_booking()
        case "hold_not_active":
            return HoldNotActive.being(fields["state"])
    raise RuntimeError(f"boxoffice_book_free refused with an unknown code: {code!r}")
