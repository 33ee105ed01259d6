"""Selling: holds, bookings and their lifecycle (ARCHITECTURE §5, API.md "Buying").

Every state change here is a conditional UPDATE on the row's current state, so that
duplicates, retries and races change nothing twice: whoever moves a hold or a booking
first wins, and the loser sees no row. Rows are locked in one order everywhere: the hold,
then the booking, then the stock shards (tier, then shard), then tickets.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts.models import Role, User
from boxoffice.analytics.models import Interaction, InteractionKind
from boxoffice.analytics.recorder import interaction_row
from boxoffice.catalog import service as catalog
from boxoffice.catalog.errors import EventNotFound, TicketTypeNotFound
from boxoffice.catalog.models import Event, EventStatus, TicketType
from boxoffice.catalog.queries import sales_window
from boxoffice.db import Base, Database
from boxoffice.inventory import holds
from boxoffice.inventory import service as inventory
from boxoffice.inventory.errors import (
    HoldExpired,
    HoldNotActive,
    HoldNotFound,
    NotOnSale,
    SoldOut,
    TicketLimitExceeded,
)
from boxoffice.inventory.models import Hold, HoldItem, HoldStatus
from boxoffice.orders import placing
from boxoffice.orders.errors import BookingNotFound, CancellationClosed, NotCancellable
from boxoffice.orders.metrics import BOOKINGS, HOLDS_ENDED, PAYMENTS, REFUNDS
from boxoffice.orders.models import Booking, BookingStatus
from boxoffice.orders.schemas import BookingCreate, HoldCreate
from boxoffice.payments.errors import PaymentRequired
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from boxoffice.payments.providers import Outcome, PaymentProvider, Providers
from boxoffice.tickets import service as tickets
from boxoffice.tickets.errors import TicketNotFound
from boxoffice.tickets.models import Ticket, TicketStatus
from boxoffice.worker.service import enqueue

log = structlog.get_logger("boxoffice.orders")

T = TypeVar("T")
RETRY_GRACE = timedelta(seconds=60)  # after a failed payment attempt on an overdue hold
REFUND_ATTEMPTS = 48


# Holds

_TIERS_ON_SALE = (
    select(TicketType, Event)
    .join(Event, Event.id == TicketType.event_id)
    .where(
        Event.id == bindparam("event_id"),
        TicketType.id.in_(bindparam("ids", expanding=True)),
    )
)


async def place_hold(
    session: AsyncSession, *, user: User, data: HoldCreate, ttl: timedelta, now: datetime
) -> Hold:
    """Take the seats, tier by tier in id order, or take none (the transaction rolls back).

    On PostgreSQL the whole of it is one statement (orders.placing); these are the same
    steps for SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return await placing.place(session, user_id=user.id, data=data, ttl=ttl, now=now)
    wanted = {item.ticket_type_id: item.quantity for item in data.items}
    rows = (
        await session.execute(_TIERS_ON_SALE, {"event_id": data.event_id, "ids": list(wanted)})
    ).all()
    event = rows[0][1] if rows else await session.get(Event, data.event_id)
    if event is None or event.status != EventStatus.PUBLISHED:
        raise EventNotFound()
    tiers = {tier.id: tier for tier, _ in rows}
    for tier_id in wanted:
        if tier_id not in tiers:
            raise TicketTypeNotFound.of_event(tier_id)

    # When several errors apply, API.md answers the first of: not on sale, over a limit,
    # sold out.
    ordered = sorted(tiers.values(), key=lambda tier: tier.id)
    for tier in ordered:
        start, end = sales_window(event, tier)
        if not event.on_sale or (start is not None and now < start) or now >= end:
            raise NotOnSale(tier.id, tier.name)
    for tier in ordered:
        if wanted[tier.id] > tier.max_per_order:
            raise TicketLimitExceeded.per_order(tier.id, tier.name, tier.max_per_order)
    quantity = sum(wanted.values())
    already = await tickets_of_user(session, user_id=user.id, event=event, now=now, lock=True)
    if already + quantity > event.max_tickets_per_user:
        raise TicketLimitExceeded.per_person(event.max_tickets_per_user, already)

    hold = Hold(
        id=uuid.uuid4(),
        user_id=user.id,
        event_id=event.id,
        status=HoldStatus.ACTIVE,
        quantity=quantity,
        total_cents=sum(tiers[t].price_cents * q for t, q in wanted.items()),
        currency=event.currency,
        expires_at=now + ttl,
        created_at=now,
    )
    items = []
    for tier_id in sorted(wanted):
        taken = await holds.take(session, tier_id, wanted[tier_id])
        if isinstance(taken, int):
            raise SoldOut(tier_id, taken)
        items += [
            HoldItem(
                id=uuid.uuid4(),
                hold_id=hold.id,
                ticket_type_id=tier_id,
                stock_id=part.stock_id,
                quantity=part.quantity,
                unit_price_cents=tiers[tier_id].price_cents,
            )
            for part in taken
        ]
    # Plain Core inserts: the ORM's unit of work would cost a third of the request.
    connection = await session.connection()
    await connection.execute(insert(Hold.__table__), [_row(hold)])
    await connection.execute(insert(HoldItem.__table__), [_row(item) for item in items])
    # What the caller presents, without reloading: the items, and the tiers' names.
    hold.__dict__["items"] = items
    hold.__dict__["tier_names"] = {tier.id: tier.name for tier in tiers.values()}
    return hold


# Built once: composing a statement costs more CPU than running it on a hot path.
# NO KEY UPDATE: it queues the same user's holds, yet lets foreign keys to the user (a ticket
# issued to them by a confirmation in flight) through: FOR UPDATE would block those.
_LOCK_USER = select(User.id).where(User.id == bindparam("user_id")).with_for_update(key_share=True)
_SEATS_OF_USER = select(
    select(func.coalesce(func.sum(Hold.quantity), 0))
    .where(
        Hold.user_id == bindparam("user_id"),
        Hold.event_id == bindparam("event_id"),
        Hold.status == HoldStatus.ACTIVE,
        Hold.expires_at > bindparam("now"),
    )
    .scalar_subquery()
    + select(func.count(Ticket.id))
    .where(
        Ticket.user_id == bindparam("user_id"),
        Ticket.event_id == bindparam("event_id"),
        Ticket.status.in_([TicketStatus.VALID, TicketStatus.USED]),
    )
    .scalar_subquery()
)


def _row(instance: Base) -> dict[str, Any]:
    """The column values of a transient ORM instance, for a Core insert."""
    return {column.key: getattr(instance, column.key) for column in instance.__table__.columns}


async def tickets_of_user(
    session: AsyncSession, *, user_id: uuid.UUID, event: Event, now: datetime, lock: bool = False
) -> int:
    """Seats the user holds (live holds, unpaid bookings included) or owns for the event.

    With `lock`, the user's row is locked for the rest of the transaction, so that two holds
    of one user cannot both pass the limit at once.
    """
    if lock:
        # A statement of its own: on PostgreSQL a statement that waits for a row lock still
        # counts from the snapshot it took before waiting, and would miss the holds that
        # the lock's previous owner just committed.
        await session.execute(_LOCK_USER, {"user_id": user_id})
    params = {"user_id": user_id, "event_id": event.id, "now": now}
    return int(await session.scalar(_SEATS_OF_USER, params) or 0)


async def retry_after_expiring(
    db: Database, attempt: Callable[[], Awaitable[T]], *, now: datetime
) -> T:
    """Run `attempt` (which opens its own transaction). If it finds a tier sold out while
    overdue holds still sit on that tier, release those and try once more; likewise if
    someone else released seats of the tier in the meantime. An expired hold never turns a
    buyer away."""
    retried: set[uuid.UUID] = set()  # once per tier: a hold may find several tiers so
    while True:
        try:
            return await attempt()
        except SoldOut as exc:
            if exc.ticket_type_id in retried:
                raise
            retried.add(exc.ticket_type_id)
            # Looked for in a read transaction first: after a sale every late buyer gets
            # here, and on SQLite a write transaction would queue them behind the writers.
            async with db.read_transaction() as session:
                due = await holds.overdue(session, now=now, ticket_type_ids=[exc.ticket_type_id])
                if not due:
                    stock = await inventory.stock_by_tier(session, [exc.ticket_type_id])
                    left = stock[exc.ticket_type_id].available if stock else 0
            if due:  # expired here, or by a racing buyer a moment before: either way, retry
                async with db.transaction() as session:
                    await expire_holds(session, due, now=now)
            elif left <= exc.available:
                raise


async def get_hold(session: AsyncSession, *, hold_id: uuid.UUID, user: User) -> Hold:
    hold = await session.scalar(_OWN_HOLD, {"hold": hold_id, "user": user.id})
    if hold is None:
        raise HoldNotFound()
    return hold


# The statements of the booking path, built once: composing one costs more than running it.
_OWN_HOLD = select(Hold).where(Hold.id == bindparam("hold"), Hold.user_id == bindparam("user"))
_CLAIM_HOLD = (
    update(Hold)
    .where(
        Hold.id == bindparam("hold"),
        Hold.status == HoldStatus.ACTIVE,
        Hold.booking_id.is_(None),
        Hold.expires_at > bindparam("now"),
    )
    .values(booking_id=bindparam("booking"), expires_at=bindparam("until"))
    .returning(Hold.id)
    .execution_options(synchronize_session=False)
)
_PAID = (
    update(Payment)
    .where(
        Payment.id == bindparam("payment"),
        Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.FAILED]),
    )
    .values(
        status=PaymentStatus.SUCCESSFUL,
        provider_transaction_id=bindparam("transaction"),
        failure_reason=None,
        updated_at=bindparam("now"),
    )
    .returning(Payment)
    .execution_options(synchronize_session=False, populate_existing=True)
)
# RETURNING the row refreshes the booking in the session in place: no second read.
_CONFIRMED = (
    update(Booking)
    .where(Booking.id == bindparam("booking"), Booking.status == bindparam("from_status"))
    .values(
        status=BookingStatus.CONFIRMED, confirmed_at=bindparam("now"), updated_at=bindparam("now")
    )
    .returning(Booking)
    .execution_options(synchronize_session=False, populate_existing=True)
)
_TITLE_AND_HOLDER = select(
    select(Event.title).where(Event.id == bindparam("event")).scalar_subquery(),
    select(User.name).where(User.id == bindparam("user")).scalar_subquery(),
)
_HOLD_ITEMS = (
    select(HoldItem)
    .where(HoldItem.hold_id == bindparam("hold"))
    .order_by(HoldItem.ticket_type_id, HoldItem.stock_id)
)


async def release_hold(
    session: AsyncSession, *, hold_id: uuid.UUID, user: User, now: datetime
) -> None:
    """Give the seats back early. A hold that belongs to a booking goes with the booking."""
    hold = await get_hold(session, hold_id=hold_id, user=user)
    if hold.booking_id is not None:
        raise HoldNotActive("This hold belongs to a booking; cancel the booking instead.")
    if hold.status == HoldStatus.RELEASED:
        return  # DELETE is idempotent
    if hold.status == HoldStatus.EXPIRED or hold.is_overdue(now):
        await expire_holds(session, [hold.id], now=now)
        return  # the seats are back already
    if not await holds.end(session, [hold.id], HoldStatus.RELEASED, now=now, unbooked=True):
        raise HoldNotActive("The hold was booked, released or expired a moment ago.")
    HOLDS_ENDED.labels("released").inc()


async def expire_holds(
    session: AsyncSession, hold_ids: Sequence[uuid.UUID], *, now: datetime
) -> int:
    """Expire the overdue ones among `hold_ids`; their unpaid bookings expire with them."""
    expired = await holds.end(session, hold_ids, HoldStatus.EXPIRED, now=now, overdue_only=True)
    if expired:
        await session.execute(
            update(Booking)
            .where(Booking.hold_id.in_(expired), Booking.status == BookingStatus.PENDING_PAYMENT)
            .values(status=BookingStatus.EXPIRED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        HOLDS_ENDED.labels("expired").inc(len(expired))
    return len(expired)


async def expire_overdue(
    session: AsyncSession,
    *,
    now: datetime,
    ticket_type_ids: Sequence[uuid.UUID] | None = None,
    limit: int = 500,
) -> int:
    due = await holds.overdue(session, now=now, ticket_type_ids=ticket_type_ids, limit=limit)
    return await expire_holds(session, due, now=now)


# Bookings


async def book(
    session: AsyncSession,
    *,
    user: User,
    data: BookingCreate,
    providers: Providers,
    payment_window: timedelta,
    now: datetime,
) -> tuple[Booking, Payment]:
    """A booking from the caller's active hold, with its first payment attempt.

    Free bookings are confirmed in this transaction. Paid ones stay pending_payment and
    the hold lives on while the attempt is pending (at most `payment_window`); the caller
    starts the attempt with the provider after the commit (start_payment).
    """
    hold = await get_hold(session, hold_id=data.hold_id, user=user)
    if hold.status == HoldStatus.EXPIRED or hold.is_overdue(now):
        raise HoldExpired.for_booking()
    if hold.status != HoldStatus.ACTIVE or hold.booking_id is not None:
        raise HoldNotActive.being("booked" if hold.booking_id else hold.status.value)
    if hold.total_cents == 0:
        method, phone = "free", None
    elif data.payment is None:
        raise PaymentRequired("These tickets cost money: say how you will pay ('payment').")
    else:
        method, phone = data.payment.method.value, data.payment.phone
    provider = providers.get(method)
    provider.check(phone=phone, currency=hold.currency, amount_cents=hold.total_cents)

    booking_id = uuid.uuid4()
    expires_at = hold.expires_at if provider.instant else max(hold.expires_at, now + payment_window)
    claimed = await session.scalar(
        _CLAIM_HOLD, {"hold": hold.id, "now": now, "booking": booking_id, "until": expires_at}
    )
    if claimed is None:  # booked or expired by a concurrent request a moment ago
        raise HoldNotActive("The hold was booked or expired a moment ago.")
    booking = Booking(
        id=booking_id,
        reference=tickets.booking_reference(),
        user_id=user.id,
        event_id=hold.event_id,
        hold_id=hold.id,
        status=BookingStatus.PENDING_PAYMENT,
        total_cents=hold.total_cents,
        currency=hold.currency,
        created_at=now,
        updated_at=now,
    )
    session.add(booking)
    await session.flush()
    payment = await add_attempt(
        session, booking, provider=provider, providers=providers, phone=phone, now=now
    )
    BOOKINGS.labels("pending_payment").inc()
    if provider.instant:
        outcome = await provider.start(payment)
        ttl = hold.expires_at - hold.created_at  # the hold's own, before any extension
        await record_outcome(session, payment.id, outcome, hold_ttl=ttl, now=now)
    return booking, payment


async def add_attempt(
    session: AsyncSession,
    booking: Booking,
    *,
    provider: PaymentProvider,
    providers: Providers,
    phone: str | None,
    now: datetime,
) -> Payment:
    """A pending payment attempt for `booking`, with the provider's reference when it wants
    one stored before it is called, and the hash of its callback token."""
    payment_id = uuid.uuid4()
    payment = Payment(
        id=payment_id,
        booking_id=booking.id,
        user_id=booking.user_id,
        provider=provider.name,
        amount_cents=booking.total_cents,
        currency=booking.currency,
        payer_phone=phone,
        status=PaymentStatus.PENDING,
        provider_reference=provider.new_reference(),
        callback_token_hash=(
            None if provider.instant else providers.callback_digest("payment", payment_id)
        ),
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    await session.flush()
    PAYMENTS.labels(provider.name, "started").inc()
    return payment


async def record_outcome(
    session: AsyncSession,
    payment_id: uuid.UUID,
    outcome: Outcome,
    *,
    hold_ttl: timedelta,
    now: datetime,
) -> None:
    """What a provider said about an attempt: the one entry point for the payment flow."""
    if outcome.status == PaymentStatus.SUCCESSFUL:
        confirmed = await confirm_payment(
            session, payment_id, transaction_id=outcome.transaction_id, now=now
        )
        if confirmed is None and outcome.transaction_id is not None:
            # Recorded before without its receipt (Daraja's query has none): keep it now.
            await session.execute(
                update(Payment)
                .where(Payment.id == payment_id, Payment.provider_transaction_id.is_(None))
                .values(provider_transaction_id=outcome.transaction_id)
                .execution_options(synchronize_session=False)
            )
    elif outcome.status == PaymentStatus.FAILED:
        await fail_payment(
            session,
            payment_id,
            reason=outcome.failure_reason or "failed",
            hold_ttl=hold_ttl,
            now=now,
        )
    else:  # still pending: keep what the provider told us about it
        await session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.status == PaymentStatus.PENDING)
            .values(
                provider_reference=func.coalesce(Payment.provider_reference, outcome.reference),
                instructions=func.coalesce(outcome.instructions, Payment.instructions),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )


async def confirm_payment(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    transaction_id: str | None = None,
    now: datetime,
) -> Booking | None:
    """The money arrived: confirm the booking and issue its tickets. Idempotent.

    If the booking is no longer waiting for it (its hold expired, it was cancelled, or
    another attempt paid first), the money is dealt with: seats taken again when they are
    still there, else refunded.
    """
    paid = await session.scalar(
        _PAID, {"payment": payment_id, "transaction": transaction_id, "now": now}
    )
    if paid is None:
        return None  # already recorded (a duplicate callback), or unknown
    PAYMENTS.labels(paid.provider, "successful").inc()
    booking = await session.get_one(Booking, paid.booking_id)
    if await holds.end(session, [booking.hold_id], HoldStatus.CONVERTED, now=now):
        return await _confirm(session, booking, from_status=BookingStatus.PENDING_PAYMENT, now=now)

    # The hold is gone. Read the booking again: its state is what the hold's winner left.
    await session.refresh(booking)
    event = await session.get_one(Event, booking.event_id)
    still_selling = event.status == EventStatus.PUBLISHED and now < event.starts_at
    if (
        booking.status == BookingStatus.EXPIRED
        and still_selling
        and await _retake_seats(session, booking)
    ):
        log.info("booking.late_payment_seats_retaken", booking_id=str(booking.id))
        return await _confirm(session, booking, from_status=BookingStatus.EXPIRED, now=now)
    if booking.status == BookingStatus.EXPIRED:
        await session.execute(
            update(Booking)
            .where(Booking.id == booking.id, Booking.status == BookingStatus.EXPIRED)
            .values(status=BookingStatus.FAILED, failure_reason="seats_gone", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.refresh(booking)
        BOOKINGS.labels("failed").inc()
        reason = "seats_gone"
    elif booking.status == BookingStatus.CANCELLED:
        reason = "cancelled"
    else:  # confirmed or failed already: this attempt paid twice
        reason = "duplicate"
    log.warning("payment.refund_late_money", booking_id=str(booking.id), reason=reason)
    await start_refund(session, paid, amount_cents=paid.amount_cents, reason=reason, now=now)
    return booking


async def _retake_seats(session: AsyncSession, booking: Booking) -> bool:
    """Late money for an expired booking: sell it the same seats again if they are there."""
    items = await _hold_items(session, booking.hold_id)
    wanted: dict[uuid.UUID, int] = {}
    for item in items:
        wanted[item.ticket_type_id] = wanted.get(item.ticket_type_id, 0) + item.quantity
    savepoint = await session.begin_nested()  # all tiers or none
    for tier_id in sorted(wanted):
        if isinstance(await holds.take(session, tier_id, wanted[tier_id], sell=True), int):
            await savepoint.rollback()
            return False
    await savepoint.commit()
    return True


async def _confirm(
    session: AsyncSession, booking: Booking, *, from_status: BookingStatus, now: datetime
) -> Booking:
    confirmed = await session.scalar(
        _CONFIRMED, {"booking": booking.id, "from_status": from_status, "now": now}
    )
    if confirmed is None:  # the hold and its booking move together; anything else is a bug
        raise RuntimeError(f"booking {booking.id} was not {from_status.value}")
    BOOKINGS.labels("confirmed").inc()
    title, holder_name = (
        await session.execute(
            _TITLE_AND_HOLDER, {"event": booking.event_id, "user": booking.user_id}
        )
    ).one()
    items = await _hold_items(session, booking.hold_id)
    await tickets.issue(
        session,
        booking_id=booking.id,
        reference=booking.reference,
        event_id=booking.event_id,
        event_title=title,
        user_id=booking.user_id,
        holder_name=holder_name,
        currency=booking.currency,
        items=items,
        now=now,
    )
    await session.execute(
        insert(Interaction.__table__),
        [
            interaction_row(
                InteractionKind.PURCHASE,
                user_id=booking.user_id,
                event_id=booking.event_id,
                quantity=sum(item.quantity for item in items),
                data={"booking_id": str(booking.id)},
                created_at=now,
            )
        ],
    )
    enqueue(session, "orders.booking_confirmed", {"booking_id": str(booking.id)}, now=now)
    return booking


async def fail_payment(
    session: AsyncSession,
    payment_id: uuid.UUID,
    *,
    reason: str,
    hold_ttl: timedelta,
    now: datetime,
) -> bool:
    """An attempt failed: the booking stays pending_payment and keeps its seats until the
    hold runs out, so the fan can try again; if it already ran out while the attempt was
    pending, they get min(60 s, hold TTL) more. Idempotent."""
    failed = (
        await session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.status == PaymentStatus.PENDING)
            .values(status=PaymentStatus.FAILED, failure_reason=reason[:40], updated_at=now)
            .returning(Payment.booking_id, Payment.provider)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if failed is None:
        return False
    booking_id, provider = failed
    PAYMENTS.labels(provider, "failed").inc()
    booking = await session.get_one(Booking, booking_id)
    hold = await session.get_one(Hold, booking.hold_id)
    own_expiry = hold.created_at + hold_ttl
    expires_at = max(own_expiry, now + min(RETRY_GRACE, hold_ttl))
    await session.execute(
        update(Hold)
        .where(Hold.id == hold.id, Hold.status == HoldStatus.ACTIVE)
        .values(expires_at=expires_at)
        .execution_options(synchronize_session=False)
    )
    return True


async def get_booking(session: AsyncSession, *, booking_id: uuid.UUID, viewer: User) -> Booking:
    """The owner, the event's organizer and admins may read a booking; others get 404."""
    query = select(Booking).where(Booking.id == booking_id)
    if viewer.role != Role.ADMIN:
        organizes = select(Event.id).where(
            Event.id == Booking.event_id, Event.organizer_id == viewer.id
        )
        query = query.where(or_(Booking.user_id == viewer.id, organizes.exists()))
    booking = await session.scalar(query)
    if booking is None:
        raise BookingNotFound()
    return booking


async def list_bookings(
    session: AsyncSession, *, user: User, offset: int, limit: int
) -> tuple[list[Booking], int]:
    mine = select(Booking).where(Booking.user_id == user.id)
    total = await session.scalar(select(func.count()).select_from(mine.subquery()))
    page = await session.scalars(
        mine.order_by(Booking.created_at.desc(), Booking.id).offset(offset).limit(limit)
    )
    return list(page), total or 0


async def event_bookings(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    manager: User,
    status: BookingStatus | None,
    offset: int,
    limit: int,
) -> tuple[list[Booking], int]:
    """The bookings of an event the caller manages, newest first."""
    await catalog.get_managed_event(session, event_id=event_id, manager=manager)
    query = select(Booking).where(Booking.event_id == event_id)
    if status is not None:
        query = query.where(Booking.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    page = await session.scalars(
        query.order_by(Booking.created_at.desc(), Booking.id).offset(offset).limit(limit)
    )
    return list(page), total or 0


async def attendees(
    session: AsyncSession, *, event_id: uuid.UUID, manager: User
) -> list[tuple[Ticket, str, str, str]]:
    """Every ticket of an event the caller manages, with its tier, booking reference and
    buyer's e-mail: the door list."""
    await catalog.get_managed_event(session, event_id=event_id, manager=manager)
    rows = await session.execute(
        select(Ticket, TicketType.name, Booking.reference, User.email)
        .join(TicketType, TicketType.id == Ticket.ticket_type_id)
        .join(Booking, Booking.id == Ticket.booking_id)
        .join(User, User.id == Ticket.user_id)
        .where(Ticket.event_id == event_id)
        .order_by(Ticket.number)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def cancel_booking(
    session: AsyncSession, *, booking_id: uuid.UUID, user: User, now: datetime
) -> Booking:
    """The owner cancels before the event's deadline: seats return, money is refunded."""
    booking = await session.scalar(
        select(Booking).where(Booking.id == booking_id, Booking.user_id == user.id)
    )
    if booking is None:
        raise BookingNotFound()
    await _check_deadline(session, booking.event_id, now)
    if booking.status == BookingStatus.PENDING_PAYMENT:
        await holds.end(session, [booking.hold_id], HoldStatus.RELEASED, now=now)
    elif booking.status == BookingStatus.CONFIRMED:
        owned = await tickets.of_bookings(session, [booking.id])
        if any(ticket.status == TicketStatus.USED for ticket in owned):
            raise NotCancellable("A ticket of this booking has been used at the door.")
        valid = [t.id for t in owned if t.status == TicketStatus.VALID]
        await _cancel_tickets(session, valid, now=now, refuse_used=True)
    elif booking.status == BookingStatus.CANCELLED:
        return booking  # cancelling twice is harmless
    else:
        raise NotCancellable(f"The booking is {booking.status.value}.")
    cancelled = await session.scalar(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == booking.status)
        .values(status=BookingStatus.CANCELLED, cancelled_at=now, updated_at=now)
        .returning(Booking.id)
        .execution_options(synchronize_session=False)
    )
    if cancelled is None:
        await session.refresh(booking)
        if booking.status == BookingStatus.CANCELLED:  # a concurrent cancel won: same answer
            return booking
        raise NotCancellable(f"The booking became {booking.status.value} a moment ago.")
    BOOKINGS.labels("cancelled").inc()
    await session.refresh(booking)
    return booking


async def cancel_ticket(
    session: AsyncSession, *, ticket_id: uuid.UUID, user: User, now: datetime
) -> None:
    ticket = await session.scalar(
        select(Ticket).where(Ticket.id == ticket_id, Ticket.user_id == user.id)
    )
    if ticket is None:
        raise TicketNotFound()
    await _check_deadline(session, ticket.event_id, now)
    if ticket.status == TicketStatus.CANCELLED:
        return
    if ticket.status == TicketStatus.USED:
        raise NotCancellable("This ticket has been used at the door.")
    await _cancel_tickets(session, [ticket.id], now=now, refuse_used=True)
    left = await session.scalar(
        select(func.count(Ticket.id)).where(
            Ticket.booking_id == ticket.booking_id, Ticket.status != TicketStatus.CANCELLED
        )
    )
    if not left:
        await session.execute(
            update(Booking)
            .where(Booking.id == ticket.booking_id, Booking.status == BookingStatus.CONFIRMED)
            .values(status=BookingStatus.CANCELLED, cancelled_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )


async def cancel_event(
    session: AsyncSession, *, event_id: uuid.UUID, manager: User, now: datetime
) -> Event:
    """The organizer calls the event off: live holds are released, unpaid bookings and
    every ticket cancelled, every payment refunded, and the holders told. Idempotent."""
    event, changed = await catalog.mark_cancelled(
        session, event_id=event_id, manager=manager, now=now
    )
    if not changed:
        return event
    # Every shard of the event first, in the order holds take them. Releasing the holds and
    # then cancelling booking after booking would lock them in whatever order those came,
    # and a two-tier hold in flight (it does not see the cancellation yet) could hold one
    # that this waits for while it waits for one this holds.
    await inventory.lock_stock(
        session, [tier.id for tier in await catalog.tiers_of(session, [event.id])]
    )
    live = await session.scalars(
        select(Hold.id).where(Hold.event_id == event.id, Hold.status == HoldStatus.ACTIVE)
    )
    released = await holds.end(session, list(live), HoldStatus.RELEASED, now=now)
    HOLDS_ENDED.labels("released").inc(len(released))
    bookings = list(
        await session.scalars(
            select(Booking)
            .where(
                Booking.event_id == event.id,
                Booking.status.in_([BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED]),
            )
            .order_by(Booking.id)
        )
    )
    for booking in bookings:
        owned = await tickets.of_bookings(session, [booking.id])
        await _cancel_tickets(session, [ticket.id for ticket in owned], now=now)
    await session.execute(
        update(Booking)
        .where(Booking.id.in_([booking.id for booking in bookings]))
        .values(status=BookingStatus.CANCELLED, cancelled_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    BOOKINGS.labels("cancelled").inc(len(bookings))
    enqueue(session, "orders.event_cancelled", {"event_id": str(event.id)}, now=now)
    return event


async def _cancel_tickets(
    session: AsyncSession, ticket_ids: list[uuid.UUID], *, now: datetime, refuse_used: bool = False
) -> None:
    """Cancel valid tickets, return their seats, and refund what was paid for them.

    With `refuse_used`, a ticket scanned at the door since the caller read it (its update
    found it `used`) makes the whole cancellation NotCancellable: the fan was let in."""
    cancelled = await tickets.cancel(session, ticket_ids, now=now)
    if refuse_used and len(cancelled) < len(ticket_ids):
        missed = set(ticket_ids) - {ticket.id for ticket in cancelled}
        used = await session.scalar(
            select(func.count(Ticket.id)).where(
                Ticket.id.in_(missed), Ticket.status == TicketStatus.USED
            )
        )
        if used:
            raise NotCancellable("A ticket was used at the door a moment ago.")
    per_tier: dict[uuid.UUID, int] = {}
    for ticket in cancelled:
        per_tier[ticket.ticket_type_id] = per_tier.get(ticket.ticket_type_id, 0) + 1
    for tier_id in sorted(per_tier):
        await holds.unsell(session, tier_id, per_tier[tier_id])
    amount = sum(ticket.price_cents for ticket in cancelled)
    if amount:
        paid = await session.scalar(
            select(Payment)
            .where(
                Payment.booking_id == cancelled[0].booking_id,
                Payment.status.in_([PaymentStatus.SUCCESSFUL, PaymentStatus.PARTIALLY_REFUNDED]),
            )
            .order_by(Payment.created_at)
            .limit(1)
        )
        if paid is not None:
            await start_refund(session, paid, amount_cents=amount, reason="cancelled", now=now)


async def _check_deadline(session: AsyncSession, event_id: uuid.UUID, now: datetime) -> None:
    event = await session.get_one(Event, event_id)
    deadline = event.starts_at - timedelta(hours=event.cancellation_deadline_hours)
    if now >= deadline:
        raise CancellationClosed(
            f"Cancellations closed {event.cancellation_deadline_hours} h before the event.",
            deadline=deadline.isoformat(),
        )


async def start_refund(
    session: AsyncSession, payment: Payment, *, amount_cents: int, reason: str, now: datetime
) -> Refund:
    """Write the refund and the job that carries it out with the provider."""
    refund = Refund(
        id=uuid.uuid4(),
        payment_id=payment.id,
        amount_cents=amount_cents,
        reason=reason,
        status=RefundStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    await session.flush()
    REFUNDS.labels(reason).inc()
    # Retried until the provider confirms: backoff doubles up to an hour, so ~1.5 days.
    enqueue(
        session,
        "payments.refund",
        {"refund_id": str(refund.id)},
        now=now,
        max_attempts=REFUND_ATTEMPTS,
    )
    return refund


async def _hold_items(session: AsyncSession, hold_id: uuid.UUID) -> list[HoldItem]:
    return list(await session.scalars(_HOLD_ITEMS, {"hold": hold_id}))
