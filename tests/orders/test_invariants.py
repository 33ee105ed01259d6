"""The selling invariants (ARCHITECTURE §5) under random sequences of everything that moves
seats: holds (alone, or retried after expiring as POST /holds does), releases, the expiry
sweep, bookings (free and paid), payment outcomes, cancelled bookings and tickets, capacity
changes, resharding, the event called off, and the clock running on to the doors.

A hypothesis state machine calls the services directly, one transaction per operation, on
a simulated clock. After every step `inventory.audit.check` must find no drift on any shard
or tier (0 ≤ held, 0 ≤ sold, sold + held ≤ capacity, held = the seats of active holds,
Σ shard capacity = tier capacity, sold = valid and used tickets), and the database must
agree with a small shadow model (`Sale`) that predicts every answer, every tier's figures
and every hold, booking, payment, refund and ticket: a wrong answer that keeps the counts
consistent (seats sold to late money for an event called off, say) fails too.

One operation at a time: races have their own tests, in tests/concurrency.

Hypothesis runs a state machine synchronously, so the machine runs in a worker thread and
hands every database call to the test's event loop (anyio.from_thread), on `committing_db`.
"""

import asyncio
import functools
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts.models import Role
from boxoffice.catalog import service as catalog
from boxoffice.catalog.errors import EventCancelled, EventNotFound
from boxoffice.catalog.schemas import AvailabilityChange, CapacityChange, TicketTypeUpdate
from boxoffice.db import Database, utcnow
from boxoffice.errors import DomainError
from boxoffice.inventory import audit, holds
from boxoffice.inventory import service as inventory
from boxoffice.inventory.errors import (
    CapacityBelowSold,
    HoldExpired,
    HoldNotActive,
    NotOnSale,
    SoldOut,
    TicketLimitExceeded,
)
from boxoffice.inventory.models import Hold, HoldItem, HoldStatus
from boxoffice.models import metadata
from boxoffice.orders import service as orders
from boxoffice.orders.errors import CancellationClosed, NotCancellable
from boxoffice.orders.models import Booking
from boxoffice.orders.schemas import BookingCreate, HoldCreate, HoldItemIn, PaymentChoice
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from boxoffice.payments.providers import Outcome, Providers, RefundOutcome
from boxoffice.tickets import service as tickets
from boxoffice.tickets.models import Ticket
from tests.factories import create_user
from tests.orders.helpers import free_event

T = TypeVar("T")

# A third of a second per example on each backend: the defaults keep the whole file near
# 20 s; raise them for a longer hunt (hypothesis then generates other examples too).
SETTINGS = settings(
    max_examples=int(os.environ.get("BOXOFFICE_HYPOTHESIS_EXAMPLES", "20")),
    stateful_step_count=int(os.environ.get("BOXOFFICE_HYPOTHESIS_STEPS", "20")),
    deadline=None,
    derandomize=True,  # the same examples on every run: no flakiness, nothing to replay
)

TTL = timedelta(minutes=10)
PAYMENT_WINDOW = timedelta(minutes=15)
DEADLINE_HOURS = 48  # cancellations close this long before the doors open
PRICE = 150_000  # odd tiers cost this much, even ones nothing
PER_ORDER = 3
PER_USER = 8
FANS = 3
PHONE = "+256772123456"
SOLD = ("valid", "used")  # the tickets that take a seat

# A hold's wish: tier index -> seats; one seat more than PER_ORDER is sometimes refused.
WANTED = st.dictionaries(st.integers(0, 2), st.integers(1, PER_ORDER + 1), min_size=1, max_size=2)
TIER = st.integers(0, 2)  # an index, modulo the event's tiers
PICK = st.integers(0, 3)  # a hold or booking, newest first
LATE = 8  # steps before the event may be called off or the doors open


class LaterProvider:
    """Mobile money that answers later: book() leaves the payment pending (it never calls
    start() for a provider that is not instant), and the machine plays the verdicts. The
    keyword arguments of the protocol (callback URLs…) are taken and ignored."""

    name = "momo"
    instant = False

    def check(self, *, phone: str | None, currency: str, amount_cents: int) -> None:
        return None

    def new_reference(self) -> str | None:
        return None

    async def start(self, payment: Payment, **options: object) -> Outcome:
        return Outcome(PaymentStatus.PENDING, reference=f"later-{payment.id}")

    async def status(self, payment: Payment, **options: object) -> Outcome:
        return Outcome(PaymentStatus.PENDING, reference=payment.provider_reference)

    async def refund(self, refund: Refund, payment: Payment, **options: object) -> RefundOutcome:
        return RefundOutcome(RefundStatus.SUCCESSFUL)


# The shadow model


@dataclass
class MTier:
    price: int
    capacity: int
    shards: int


@dataclass
class MHold:
    user: int
    seats: dict[uuid.UUID, int]  # per tier
    total: int
    created_at: datetime
    expires_at: datetime
    status: str = "active"
    booking: uuid.UUID | None = None


@dataclass
class MTicket:
    tier: uuid.UUID
    price: int
    status: str = "valid"


@dataclass
class MBooking:
    hold: MHold
    payment_id: uuid.UUID
    status: str = "pending_payment"
    payment: str = "pending"  # its one payment's status
    refunded: int = 0
    tickets: list[MTicket] = field(default_factory=list)  # in seat number order


@dataclass
class Sale:
    """What the database must say. Each method mirrors one service, in the order the
    service decides, and returns the domain error it must answer (None: success)."""

    now: datetime
    starts_at: datetime
    tiers: dict[uuid.UUID, MTier]
    holds: dict[uuid.UUID, MHold] = field(default_factory=dict)
    bookings: dict[uuid.UUID, MBooking] = field(default_factory=dict)
    on_sale: bool = True
    cancelled: bool = False

    # Figures

    def held(self, tier_id: uuid.UUID) -> int:
        return sum(h.seats.get(tier_id, 0) for h in self.holds.values() if h.status == "active")

    def sold(self, tier_id: uuid.UUID) -> int:
        return sum(
            1
            for booking in self.bookings.values()
            for ticket in booking.tickets
            if ticket.tier == tier_id and ticket.status in SOLD
        )

    def free(self, tier_id: uuid.UUID) -> int:
        return self.tiers[tier_id].capacity - self.sold(tier_id) - self.held(tier_id)

    def overdue(self, tier_id: uuid.UUID | None = None) -> list[MHold]:
        """Active holds past their expiry (on that tier): only a sweep or a retry ends them,
        until then they keep their seats."""
        return [
            hold
            for hold in self.holds.values()
            if hold.status == "active"
            and hold.expires_at <= self.now
            and (tier_id is None or tier_id in hold.seats)
        ]

    def seats_of(self, user: int) -> int:
        """What counts against the per-user limit: live holds, valid and used tickets."""
        live = sum(
            sum(hold.seats.values())
            for hold in self.holds.values()
            if hold.user == user and hold.status == "active" and hold.expires_at > self.now
        )
        owned = sum(
            1
            for booking in self.bookings.values()
            if booking.hold.user == user
            for ticket in booking.tickets
            if ticket.status in SOLD
        )
        return live + owned

    @property
    def deadline(self) -> datetime:
        return self.starts_at - timedelta(hours=DEADLINE_HOURS)

    # Holds

    def hold_refusal(self, user: int, wanted: dict[uuid.UUID, int]) -> type[DomainError] | None:
        """place_hold, in API.md's order: not on sale, over a limit, sold out."""
        if self.cancelled:
            return EventNotFound
        if not self.on_sale or self.now >= self.starts_at:
            return NotOnSale
        if any(quantity > PER_ORDER for quantity in wanted.values()):
            return TicketLimitExceeded
        if self.seats_of(user) + sum(wanted.values()) > PER_USER:
            return TicketLimitExceeded
        if self.short_tier(wanted) is not None:
            return SoldOut
        return None

    def short_tier(self, wanted: dict[uuid.UUID, int]) -> uuid.UUID | None:
        """The first tier, in id order (as seats are taken), without the seats."""
        return next((t for t in sorted(wanted) if self.free(t) < wanted[t]), None)

    def expire_for_retries(self, user: int, wanted: dict[uuid.UUID, int]) -> None:
        """What retry_after_expiring commits before its last attempt: while the attempt is
        sold out on a tier not retried yet, that tier's overdue holds expire and it tries
        again; with none to expire it gives up (serially, nobody else frees seats)."""
        retried: set[uuid.UUID] = set()
        while self.hold_refusal(user, wanted) is SoldOut:
            tier_id = self.short_tier(wanted)
            assert tier_id is not None
            due = self.overdue(tier_id)
            if tier_id in retried or not due:
                return
            retried.add(tier_id)
            for hold in due:
                self.expire(hold)

    def add_hold(self, hold_id: uuid.UUID, user: int, wanted: dict[uuid.UUID, int]) -> None:
        total = sum(self.tiers[t].price * quantity for t, quantity in wanted.items())
        self.holds[hold_id] = MHold(user, wanted, total, self.now, self.now + TTL)

    def expire(self, hold: MHold) -> None:
        """expire_holds: the hold's seats go back; its unpaid booking expires with it."""
        hold.status = "expired"
        if hold.booking is not None and self.bookings[hold.booking].status == "pending_payment":
            self.bookings[hold.booking].status = "expired"

    def expire_overdue(self) -> int:
        due = self.overdue()
        for hold in due:
            self.expire(hold)
        return len(due)

    def release(self, hold: MHold) -> type[DomainError] | None:
        """release_hold: a booked hold goes with its booking; an overdue one expires."""
        if hold.booking is not None:
            return HoldNotActive
        if hold.status == "active":
            if hold.expires_at <= self.now:
                self.expire(hold)
            else:
                hold.status = "released"
        return None  # released or expired already: nothing to do

    # Bookings and payments

    def booking_refusal(self, hold: MHold) -> type[DomainError] | None:
        if hold.status == "expired" or (hold.status == "active" and hold.expires_at <= self.now):
            return HoldExpired
        if hold.status != "active" or hold.booking is not None:
            return HoldNotActive
        return None

    def book(self, hold: MHold, booking_id: uuid.UUID, payment_id: uuid.UUID) -> None:
        """Free: the free provider settles inside book(). Paid: pending, and the hold lives
        on for the payment window."""
        hold.booking = booking_id
        booking = self.bookings[booking_id] = MBooking(hold, payment_id)
        if hold.total == 0:
            booking.payment = "successful"
            hold.status = "converted"
            self.issue(booking)
        else:
            hold.expires_at = max(hold.expires_at, self.now + PAYMENT_WINDOW)

    def issue(self, booking: MBooking) -> None:
        """Confirmed: a ticket per seat, numbered in tier id order."""
        booking.status = "confirmed"
        for tier_id in sorted(booking.hold.seats):
            price = self.tiers[tier_id].price
            booking.tickets += [MTicket(tier_id, price) for _ in range(booking.hold.seats[tier_id])]

    def confirm(self, booking: MBooking) -> bool:
        """confirm_payment: whether the money was news. A live hold's seats are sold; late
        money for an expired booking takes the seats again only while the event is still
        selling (not called off, doors not open) and every tier has them; else the booking
        fails (seats_gone) and, as for a cancelled booking, the money goes back."""
        if booking.payment == "successful":
            return False  # a duplicate callback changes nothing
        booking.payment = "successful"
        hold = booking.hold
        selling = not self.cancelled and self.now < self.starts_at
        if hold.status == "active":
            hold.status = "converted"
            self.issue(booking)
        elif (
            booking.status == "expired"
            and selling
            and all(self.free(t) >= quantity for t, quantity in hold.seats.items())
        ):
            self.issue(booking)
        else:
            if booking.status == "expired":
                booking.status = "failed"
            booking.refunded += hold.total
        return True

    def fail(self, booking: MBooking) -> bool:
        """fail_payment: whether the attempt was pending. The hold keeps its seats until its
        own TTL, or min(60 s, TTL) from now if later (which may be sooner than the payment
        window gave it)."""
        if booking.payment != "pending":
            return False
        booking.payment = "failed"
        hold = booking.hold
        if hold.status == "active":
            grace = min(orders.RETRY_GRACE, TTL)
            hold.expires_at = max(hold.created_at + TTL, self.now + grace)
        return True

    # Cancellations

    def cancel_tickets(self, booking: MBooking, chosen: list[MTicket]) -> None:
        """The valid ones are cancelled, their seats return, what was paid for them too."""
        amount = 0
        for ticket in chosen:
            if ticket.status == "valid":
                ticket.status = "cancelled"
                amount += ticket.price
        if amount and booking.payment == "successful":
            booking.refunded += amount

    def cancel_booking(self, booking: MBooking) -> type[DomainError] | None:
        if self.now >= self.deadline:
            return CancellationClosed
        if booking.status == "pending_payment":
            booking.hold.status = "released"
        elif booking.status == "confirmed":
            self.cancel_tickets(booking, booking.tickets)
        elif booking.status != "cancelled":
            return NotCancellable  # expired or failed
        booking.status = "cancelled"
        return None

    def cancel_ticket(self, booking: MBooking, ticket: MTicket) -> type[DomainError] | None:
        """The booking goes when its last ticket does."""
        if self.now >= self.deadline:
            return CancellationClosed
        if ticket.status == "cancelled":
            return None
        self.cancel_tickets(booking, [ticket])
        if booking.status == "confirmed" and all(t.status == "cancelled" for t in booking.tickets):
            booking.status = "cancelled"
        return None

    def cancel_event(self) -> None:
        """Live holds released (booked ones too), unpaid and paid bookings cancelled, their
        tickets cancelled and refunded. Twice changes nothing."""
        if self.cancelled:
            return
        self.cancelled = True
        for hold in self.holds.values():
            if hold.status == "active":
                hold.status = "released"
        for booking in self.bookings.values():
            if booking.status in ("pending_payment", "confirmed"):
                self.cancel_tickets(booking, booking.tickets)
                booking.status = "cancelled"

    # Capacity and shards

    def change_availability(
        self, tier_id: uuid.UUID, capacity: int, on_sale: bool | None
    ) -> type[DomainError] | None:
        """Never below sold + held (overdue holds hold theirs until swept)."""
        if self.cancelled:
            return EventCancelled
        if capacity < self.sold(tier_id) + self.held(tier_id):
            return CapacityBelowSold
        self.tiers[tier_id].capacity = capacity
        if on_sale is not None:
            self.on_sale = on_sale
        return None

    def reshard(self, tier_id: uuid.UUID, shards: int) -> type[DomainError] | None:
        """Shards are never deleted: a tier keeps as many as it ever had."""
        if self.cancelled:
            return EventCancelled
        tier = self.tiers[tier_id]
        tier.shards = max(tier.shards, shards)
        return None

    # What the database must hold

    def view(self) -> dict[str, Any]:
        """The same shape as `read_database` gives."""
        return {
            "stock": {
                tier_id: inventory.Stock(
                    tier.capacity, self.sold(tier_id), self.held(tier_id), tier.shards
                )
                for tier_id, tier in self.tiers.items()
            },
            "holds": {
                hold_id: (hold.status, hold.expires_at, hold.booking)
                for hold_id, hold in self.holds.items()
            },
            "bookings": {
                booking_id: (
                    booking.status,
                    booking.payment,
                    booking.refunded,
                    [(ticket.tier, ticket.status) for ticket in booking.tickets],
                )
                for booking_id, booking in self.bookings.items()
            },
        }


# Each booking with its one payment's status and what was refunded of it.
_BOOKINGS = (
    select(
        Booking.id, Booking.status, Payment.status, func.coalesce(func.sum(Refund.amount_cents), 0)
    )
    .join(Payment, Payment.booking_id == Booking.id)
    .outerjoin(Refund, Refund.payment_id == Payment.id)
    .group_by(Booking.id, Booking.status, Payment.status)
)


async def read_database(
    session: AsyncSession, tier_ids: list[uuid.UUID]
) -> tuple[list[audit.Drift], dict[str, Any]]:
    """The audit's drifts, and what Sale.view() predicts, as the database has it."""
    drifts = await audit.check(session)
    stock = await inventory.stock_by_tier(session, tier_ids)
    holds = await session.execute(select(Hold.id, Hold.status, Hold.expires_at, Hold.booking_id))
    issued: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {}
    for booking_id, tier_id, status in await session.execute(
        select(Ticket.booking_id, Ticket.ticket_type_id, Ticket.status).order_by(Ticket.number)
    ):
        issued.setdefault(booking_id, []).append((tier_id, status))
    return drifts, {
        "stock": stock,
        "holds": {row.id: (row.status, row.expires_at, row.booking_id) for row in holds},
        "bookings": {
            booking_id: (status, paid, refunded, issued.get(booking_id, []))
            for booking_id, status, paid, refunded in await session.execute(_BOOKINGS)
        },
    }


def answered(result: object, expected: type[DomainError] | None) -> None:
    """The operation answered as the model predicts: success, or that domain error."""
    got = type(result) if isinstance(result, DomainError) else None
    assert got is expected, f"expected {expected and expected.__name__}, got {result!r}"


async def empty(db: Database) -> None:
    """As committing_db leaves the database: every table empty."""
    async with db.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(delete(table))


# The machine


def late_in_the_sale(machine: "SellingMachine") -> bool:
    """Calling the event off or opening the doors ends the selling: once per example, and
    not at once, or most examples would end before they began."""
    sale = machine.sale
    return machine.steps >= LATE and not sale.cancelled and sale.now < sale.starts_at


class SellingMachine(RuleBasedStateMachine):
    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.providers = Providers()
        self.providers.register(LaterProvider())
        self.steps = 0
        self.dirty = True  # the database may have changed since the last check

    # Plumbing

    def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work` on the test's event loop: the machine runs in a worker thread."""
        self.dirty = True
        return anyio.from_thread.run(work)

    def call(self, operation: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        """`operation` in a transaction of its own: what it returned, or the domain error it
        answered with (and its changes rolled back)."""

        async def transaction() -> Any:
            try:
                async with self.db.transaction() as session:
                    return await operation(session)
            except DomainError as exc:
                return exc

        return self.run(transaction)

    def tier_id(self, index: int) -> uuid.UUID:
        return self.tier_ids[index % len(self.tier_ids)]

    @staticmethod
    def newest(rows: dict[uuid.UUID, Any], pick: int) -> uuid.UUID:
        """The pick-th newest: the newest are the likeliest to still be live."""
        keys = list(rows)
        return keys[-1 - pick % len(keys)]

    # Set-up and clean-up

    @initialize(
        tiers=st.lists(st.tuples(st.integers(2, 6), st.integers(1, 3)), min_size=2, max_size=3)
    )
    def open_the_sale(self, tiers: list[tuple[int, int]]) -> None:
        """An event whose tiers (capacity, shards) are free and priced by turns, three fans,
        an admin to manage it, and the opening minutes: a free booking (confirmed), a paid
        one (pending) and a hold, so that every example has something to pay, cancel or
        expire, whichever rules swarm testing switched off."""
        prices = [PRICE * (n % 2) for n in range(len(tiers))]
        ticket_types = [
            {
                "name": f"Tier {n}",
                "price": price,
                "capacity": capacity,
                "shards": shards,
                "max_per_order": PER_ORDER,
            }
            for n, (price, (capacity, shards)) in enumerate(zip(prices, tiers, strict=True))
        ]
        event, self.tier_ids = self.run(
            lambda: free_event(
                self.db,
                ticket_types=ticket_types,
                max_tickets_per_user=PER_USER,
                cancellation_deadline_hours=DEADLINE_HOURS,
            )
        )
        self.event_id = event.id
        self.fans = [self.run(lambda: create_user(self.db)) for _ in range(FANS)]
        self.admin = self.run(lambda: create_user(self.db, role=Role.ADMIN))
        self.sale = Sale(
            now=utcnow().replace(microsecond=0),
            starts_at=event.starts_at,
            tiers={
                tier_id: MTier(price, capacity, min(shards, capacity))
                for tier_id, price, (capacity, shards) in zip(
                    self.tier_ids, prices, tiers, strict=True
                )
            },
        )
        self.hold(user=0, wanted={0: 1}, retry=False)
        self.book(pick=0)
        self.hold(user=1, wanted={1: 1}, retry=False)
        self.book(pick=0)
        self.hold(user=2, wanted={0: 1}, retry=False)

    def teardown(self) -> None:
        """Every example starts from empty tables: the sweep and the audit see them all."""
        self.run(lambda: empty(self.db))

    # Holds

    @rule(user=st.integers(0, FANS - 1), wanted=WANTED, retry=st.booleans())
    def hold(self, user: int, wanted: dict[int, int], retry: bool) -> None:
        """place_hold; with `retry`, through retry_after_expiring as POST /holds calls it."""
        sale, fan, now = self.sale, self.fans[user], self.sale.now
        seats = {self.tier_id(index): quantity for index, quantity in wanted.items()}
        data = HoldCreate(
            event_id=self.event_id,
            items=[HoldItemIn(ticket_type_id=t, quantity=q) for t, q in seats.items()],
        )

        async def attempt() -> Any:
            async with self.db.transaction() as session:
                return await orders.place_hold(session, user=fan, data=data, ttl=TTL, now=now)

        async def post() -> Any:
            try:
                if retry:
                    return await orders.retry_after_expiring(self.db, attempt, now=now)
                return await attempt()
            except DomainError as exc:
                return exc

        if retry:
            sale.expire_for_retries(user, seats)
        expected = sale.hold_refusal(user, seats)
        result = self.run(post)
        answered(result, expected)
        if isinstance(result, SoldOut):
            short = sale.short_tier(seats)
            assert (result.ticket_type_id, result.available) == (short, sale.free(short))
        if expected is None:
            sale.add_hold(result.id, user, seats)

    @rule(pick=PICK)
    def release(self, pick: int) -> None:
        hold_id = self.newest(self.sale.holds, pick)
        hold, now = self.sale.holds[hold_id], self.sale.now
        fan = self.fans[hold.user]
        expected = self.sale.release(hold)
        result = self.call(lambda s: orders.release_hold(s, hold_id=hold_id, user=fan, now=now))
        answered(result, expected)

    # Bookings and payments

    @rule(pick=PICK)
    def book(self, pick: int) -> None:
        hold_id = self.newest(self.sale.holds, pick)
        hold, now = self.sale.holds[hold_id], self.sale.now
        payment = PaymentChoice(method="momo", phone=PHONE) if hold.total else None
        data = BookingCreate(hold_id=hold_id, payment=payment)
        expected = self.sale.booking_refusal(hold)
        result = self.call(
            lambda s: orders.book(
                s,
                user=self.fans[hold.user],
                data=data,
                providers=self.providers,
                payment_window=PAYMENT_WINDOW,
                now=now,
            )
        )
        answered(result, expected)
        if expected is None:
            booking, payment_row = result
            self.sale.book(hold, booking.id, payment_row.id)

    @rule(pick=PICK)
    def confirm_payment(self, pick: int) -> None:
        """The money arrived (a callback, or a duplicate of one)."""
        booking = self.sale.bookings[self.newest(self.sale.bookings, pick)]
        payment_id, now = booking.payment_id, self.sale.now
        news = self.sale.confirm(booking)
        result = self.call(lambda s: orders.confirm_payment(s, payment_id, now=now))
        assert (result is not None) is news, result

    @rule(pick=PICK)
    def fail_payment(self, pick: int) -> None:
        booking = self.sale.bookings[self.newest(self.sale.bookings, pick)]
        payment_id, now = booking.payment_id, self.sale.now
        expected = self.sale.fail(booking)
        result = self.call(
            lambda s: orders.fail_payment(s, payment_id, reason="rejected", hold_ttl=TTL, now=now)
        )
        assert result is expected

    # Cancellations

    @rule(pick=PICK)
    def cancel_booking(self, pick: int) -> None:
        booking_id = self.newest(self.sale.bookings, pick)
        booking, now = self.sale.bookings[booking_id], self.sale.now
        fan = self.fans[booking.hold.user]
        expected = self.sale.cancel_booking(booking)
        result = self.call(
            lambda s: orders.cancel_booking(s, booking_id=booking_id, user=fan, now=now)
        )
        answered(result, expected)

    @rule(pick=PICK, seat=st.integers(0, 2 * PER_ORDER - 1))
    def cancel_ticket(self, pick: int, seat: int) -> None:
        booking_id = self.newest(self.sale.bookings, pick)
        booking, now = self.sale.bookings[booking_id], self.sale.now
        if not booking.tickets:
            return  # never confirmed: nothing to cancel
        fan, seat = self.fans[booking.hold.user], seat % len(booking.tickets)

        async def cancel(session: AsyncSession) -> None:
            owned = await tickets.of_bookings(session, [booking_id])  # in seat order
            await orders.cancel_ticket(session, ticket_id=owned[seat].id, user=fan, now=now)

        expected = self.sale.cancel_ticket(booking, booking.tickets[seat])
        answered(self.call(cancel), expected)

    @precondition(late_in_the_sale)
    @rule()
    def cancel_event(self) -> None:
        event_id, now = self.event_id, self.sale.now
        self.sale.cancel_event()
        result = self.call(
            lambda s: orders.cancel_event(s, event_id=event_id, manager=self.admin, now=now)
        )
        answered(result, None)

    # Capacity and shards

    @rule(
        tier=TIER,
        capacity=st.integers(1, 8),
        on_sale=st.sampled_from([None, None, False, True]),
    )
    def change_availability(self, tier: int, capacity: int, on_sale: bool | None) -> None:
        """A capacity, and sometimes sales paused or resumed."""
        tier_id, now = self.tier_id(tier), self.sale.now
        data = AvailabilityChange(
            ticket_types=[CapacityChange(id=tier_id, capacity=capacity)], on_sale=on_sale
        )
        expected = self.sale.change_availability(tier_id, capacity, on_sale)
        result = self.call(
            lambda s: catalog.change_availability(
                s, event_id=self.event_id, manager=self.admin, data=data, now=now
            )
        )
        answered(result, expected)

    @rule(tier=TIER, shards=st.integers(1, 4))
    def reshard(self, tier: int, shards: int) -> None:
        """PATCH the tier's shards: its free seats spread anew."""
        tier_id, now = self.tier_id(tier), self.sale.now
        expected = self.sale.reshard(tier_id, shards)
        result = self.call(
            lambda s: catalog.update_ticket_type(
                s,
                event_id=self.event_id,
                ticket_type_id=tier_id,
                manager=self.admin,
                data=TicketTypeUpdate(shards=shards),
                now=now,
            )
        )
        answered(result, expected)

    # Time, and the worker's sweep: overdue holds keep their seats until it runs (or a
    # retry expires them); one rule for both, or time would seldom pass.

    @rule(seconds=st.integers(0, 1000), sweep=st.booleans())
    def advance(self, seconds: int, sweep: bool) -> None:
        self.sale.now += timedelta(seconds=seconds)
        if sweep:
            self.expire_overdue()

    @rule(pick=PICK, sweep=st.booleans())
    def advance_to_expiry(self, pick: int, sweep: bool) -> None:
        """To the very instant a hold runs out (expires_at == now: overdue), if still ahead."""
        hold = self.sale.holds[self.newest(self.sale.holds, pick)]
        self.sale.now = max(self.sale.now, hold.expires_at)
        if sweep:
            self.expire_overdue()

    def expire_overdue(self) -> None:
        now = self.sale.now
        expected = self.sale.expire_overdue()
        assert self.call(lambda s: orders.expire_overdue(s, now=now)) == expected

    @precondition(late_in_the_sale)
    @rule(hours_before=st.sampled_from([49, 48, 0]))
    def jump_to_the_event(self, hours_before: int) -> None:
        """Just before or at the cancellation deadline, or the doors open (sales end)."""
        self.sale.now = max(self.sale.now, self.sale.starts_at - timedelta(hours=hours_before))

    # After every step

    @invariant()
    def count_steps(self) -> None:
        self.steps += 1

    @invariant()
    def the_database_agrees(self) -> None:
        """Checked whenever the database may have changed (not after a step of time)."""
        if not self.dirty:
            return
        drifts, database = self.run(self.read)
        self.dirty = False
        assert drifts == []
        assert database == self.sale.view()

    async def read(self) -> tuple[list[audit.Drift], dict[str, Any]]:
        async with self.db.read_transaction() as session:
            return await read_database(session, list(self.sale.tiers))


async def test_selling_invariants(committing_db: Database) -> None:
    run = functools.partial(
        run_state_machine_as_test, lambda: SellingMachine(committing_db), settings=SETTINGS
    )
    await anyio.to_thread.run_sync(run)


# Two behaviours random sequences seldom reach, step by step.


async def replay(db: Database, steps: Callable[[SellingMachine], T]) -> T:
    """Run `steps` on a machine in a worker thread, as hypothesis would; what it returns."""
    machine = SellingMachine(db)

    def play() -> T:
        try:
            return steps(machine)
        finally:
            machine.teardown()

    return await anyio.to_thread.run_sync(play)


def checked(machine: SellingMachine, rule_result: T) -> T:
    """After a rule run by hand, the check hypothesis runs after every step."""
    machine.the_database_agrees()
    return rule_result


async def test_overdue_holds_on_two_tiers_do_not_turn_a_buyer_away(
    committing_db: Database,
) -> None:
    """Both tiers are full, mostly of overdue holds: POST /holds for a seat of each finds
    the first tier sold out, expires its overdue holds, finds the second sold out, expires
    its own too, and gets the seats (retry_after_expiring retries once per tier)."""

    def steps(m: SellingMachine) -> list[str]:
        checked(
            m, m.open_the_sale(tiers=[(4, 1), (4, 1)])
        )  # tier 0: 1 sold, 1 held; tier 1: 1 held
        checked(m, m.hold(user=0, wanted={0: 2}, retry=False))  # tier 0 full
        checked(m, m.hold(user=1, wanted={1: 3}, retry=False))  # tier 1 full
        m.advance(seconds=601, sweep=False)  # all overdue but the pending booking's hold
        checked(m, m.hold(user=2, wanted={0: 1, 1: 1}, retry=True))
        return [hold.status for hold in m.sale.holds.values()]

    statuses = await replay(committing_db, steps)
    assert statuses == ["converted", "active", "expired", "expired", "expired", "active"]


@pytest.mark.parametrize("stop", ["cancel_event", "jump_to_the_event"])
async def test_late_money_for_an_event_no_longer_selling_is_refunded(
    committing_db: Database, stop: str
) -> None:
    """A paid booking expires, the event is called off (or its doors open), then the money
    arrives: the booking fails and the money goes back; no seat is sold."""

    def steps(m: SellingMachine) -> MBooking:
        checked(m, m.open_the_sale(tiers=[(3, 1), (3, 1)]))  # the newest booking: paid, pending
        checked(m, m.advance(seconds=1000, sweep=True))  # past the payment window
        checked(m, m.cancel_event() if stop == "cancel_event" else m.jump_to_the_event(0))
        checked(m, m.confirm_payment(pick=0))
        return m.sale.bookings[m.newest(m.sale.bookings, 0)]

    late = await replay(committing_db, steps)
    assert (late.status, late.payment, late.refunded, late.tickets) == (
        "failed",
        "successful",
        PRICE,
        [],
    )


# A race the earlier, concurrent version of this machine found (on PostgreSQL).


async def test_a_capacity_change_racing_a_hold_does_not_deadlock(committing_db: Database) -> None:
    """change_availability against a hold: the hold has taken its seat (a shard row lock)
    when the organizer's change locks the event row and waits for the shard; the hold then
    writes its row, whose foreign key share-locks the event row. Both must finish. On
    PostgreSQL a hold is one statement, with no moment to wait in, so its steps are played
    here one by one, as the Python steps (SQLite) take them."""
    event, (tier_id,) = await free_event(committing_db, capacity=10, tiers=1)
    fan = await create_user(committing_db)
    admin = await create_user(committing_db, role=Role.ADMIN)
    taken, go = asyncio.Event(), asyncio.Event()
    change = AvailabilityChange(ticket_types=[CapacityChange(id=tier_id, capacity=20)])

    async def hold() -> None:
        now = utcnow()
        async with committing_db.transaction() as session:
            (part,) = await holds.take(session, tier_id, 1)
            taken.set()
            await go.wait()  # until the capacity change waits for the shard
            hold_id = uuid.uuid4()
            await session.execute(
                insert(Hold.__table__).values(
                    id=hold_id,
                    user_id=fan.id,
                    event_id=event.id,
                    status=HoldStatus.ACTIVE,
                    quantity=1,
                    total_cents=0,
                    currency=event.currency,
                    expires_at=now + TTL,
                    created_at=now,
                )
            )
            await session.execute(
                insert(HoldItem.__table__).values(
                    id=uuid.uuid4(),
                    hold_id=hold_id,
                    ticket_type_id=tier_id,
                    stock_id=part.stock_id,
                    quantity=1,
                    unit_price_cents=0,
                )
            )

    async def resize() -> None:
        await taken.wait()
        async with committing_db.transaction() as session:
            await catalog.change_availability(
                session, event_id=event.id, manager=admin, data=change, now=utcnow()
            )

    async def release() -> None:
        await taken.wait()
        await asyncio.sleep(0.5)
        go.set()

    await asyncio.wait_for(asyncio.gather(hold(), resize(), release()), timeout=60)
    async with committing_db.read_transaction() as session:
        assert await audit.check(session) == []
        stock = await inventory.stock_by_tier(session, [tier_id])
    assert stock[tier_id] == inventory.Stock(20, 0, 1, 1)
