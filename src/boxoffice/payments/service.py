"""The paid half of the booking flow (ARCHITECTURE §6): starting attempts, retries,
callbacks, reconciliation and refunds.

A provider is never called inside a database transaction: the attempt (or refund) and its
reference are committed first, so a crash after the call leaves a row that reconciliation
finds; what the provider answered is recorded in a second transaction through
`orders.record_outcome`, whose conditional updates make every repeat harmless. A callback
is only a prompt: the status is read again from the provider before anything changes.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts.models import Role, User
from boxoffice.db import Database
from boxoffice.inventory.errors import HoldExpired
from boxoffice.inventory.models import Hold, HoldStatus
from boxoffice.orders import service as orders
from boxoffice.orders.errors import BookingNotFound
from boxoffice.orders.models import Booking, BookingStatus
from boxoffice.orders.schemas import PaymentChoice
from boxoffice.payments.errors import (
    BookingNotPayable,
    PaymentInProgress,
    PaymentNotFound,
    PaymentProviderUnavailable,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from boxoffice.payments.providers import Outcome, RefundOutcome, digest
from boxoffice.payments.setup import Payments

log = structlog.get_logger("boxoffice.payments")

RECONCILE_BATCH = 50


# Attempts


async def start(db: Database, payments: Payments, payment: Payment, *, now: datetime) -> str | None:
    """Ask the provider for the committed attempt `payment`; record what it says. Returns
    the payer's instructions. Raises PaymentProviderUnavailable when the provider could not
    be reached: the attempt is then failed (the fan may retry at once), unless the request
    may have got through, in which case it stays pending for reconciliation."""
    provider = payments.providers.get(payment.provider)
    try:
        outcome = await provider.start(
            payment, callback_url=payments.providers.callback_url("payment", payment.id)
        )
    except ProviderRejected as exc:
        outcome = Outcome(PaymentStatus.FAILED, failure_reason=exc.reason)
    except ProviderUnavailable as exc:
        log.warning("payment.provider_unavailable", payment_id=str(payment.id), error=str(exc))
        if exc.definitive:
            await _record(db, payments, payment.id, _unavailable(), now=now)
        raise PaymentProviderUnavailable(
            f"{payment.provider} could not be reached. Your seats are still held: try again "
            "in a moment, or pay another way.",
            booking_id=str(payment.booking_id),
            payment_id=str(payment.id),
        ) from exc
    await _record(db, payments, payment.id, outcome, now=now)
    return outcome.instructions


def _unavailable() -> Outcome:
    return Outcome(PaymentStatus.FAILED, failure_reason="provider_unavailable")


async def _record(
    db: Database, payments: Payments, payment_id: uuid.UUID, outcome: Outcome, *, now: datetime
) -> None:
    async with db.transaction() as session:
        await orders.record_outcome(
            session, payment_id, outcome, hold_ttl=payments.hold_ttl, now=now
        )


async def add_retry(
    session: AsyncSession,
    payments: Payments,
    *,
    booking_id: uuid.UUID,
    user: User,
    choice: PaymentChoice,
    now: datetime,
) -> Payment:
    """A new attempt for the owner's pending_payment booking whose last attempt failed.

    The hold row is locked first (by the update that keeps it alive while the attempt is
    pending), so two retries of one booking queue there and the second sees the first's
    pending attempt."""
    booking = await session.scalar(
        select(Booking).where(Booking.id == booking_id, Booking.user_id == user.id)
    )
    if booking is None:
        raise BookingNotFound()
    if booking.status != BookingStatus.PENDING_PAYMENT:
        raise BookingNotPayable(f"The booking is {booking.status.value}.")
    provider = payments.providers.get(choice.method.value)
    provider.check(phone=choice.phone, currency=booking.currency, amount_cents=booking.total_cents)
    until = now + payments.payment_window
    kept = await session.scalar(
        update(Hold)
        .where(Hold.id == booking.hold_id, Hold.status == HoldStatus.ACTIVE, Hold.expires_at > now)
        .values(expires_at=case((Hold.expires_at > until, Hold.expires_at), else_=until))
        .returning(Hold.id)
        .execution_options(synchronize_session=False)
    )
    if kept is None:
        await session.refresh(booking)
        if booking.status != BookingStatus.PENDING_PAYMENT:
            raise BookingNotPayable(f"The booking became {booking.status.value} a moment ago.")
        raise HoldExpired("The seats were released; hold them again.")
    pending = await session.scalar(
        select(Payment.id).where(
            Payment.booking_id == booking.id, Payment.status == PaymentStatus.PENDING
        )
    )
    if pending is not None:
        raise PaymentInProgress(
            "The last attempt is still waiting for the payer; it must fail before another.",
            payment_id=str(pending),
        )
    return await orders.add_attempt(
        session,
        booking,
        provider=provider,
        providers=payments.providers,
        phone=choice.phone,
        now=now,
    )


# Callbacks


@dataclass(frozen=True)
class CallbackTarget:
    payment: Payment
    refund: Refund | None = None


async def find_by_token(session: AsyncSession, token: str) -> CallbackTarget:
    """The payment or refund a callback token names; 404 for anything else. The lookup is
    by the token's SHA-256, so how long it takes tells nothing about the token."""
    if not 16 <= len(token) <= 128:
        raise PaymentNotFound()
    hashed = digest(token)
    payment = await session.scalar(select(Payment).where(Payment.callback_token_hash == hashed))
    if payment is not None:
        return CallbackTarget(payment)
    refund = await session.scalar(select(Refund).where(Refund.callback_token_hash == hashed))
    if refund is None:
        raise PaymentNotFound()
    return CallbackTarget(await session.get_one(Payment, refund.payment_id), refund)


async def handle_callback(
    db: Database, payments: Payments, token: str, body: Any, *, now: datetime
) -> None:
    """A provider says something happened. Whatever the body claims, the status is read
    again from the provider, and only that is recorded; a provider that cannot be reached
    now is left to reconciliation. Never raises for a known token."""
    async with db.read_transaction() as session:
        target = await find_by_token(session, token)
    payment = target.payment
    provider = payments.providers.get(payment.provider)
    try:
        if target.refund is not None:
            refund_outcome = await provider.refund(
                target.refund,
                payment,
                callback_url=payments.providers.callback_url("refund", target.refund.id),
                callback=body,
            )
            async with db.transaction() as session:
                await record_refund(session, target.refund.id, refund_outcome, now=now)
            return
        if payment.status == PaymentStatus.SUCCESSFUL and payment.provider_transaction_id:
            return  # nothing left to learn: a duplicate or late callback
        outcome = await provider.status(payment, callback=body)
    except ProviderError as exc:
        log.warning("payment.callback_unverified", payment_id=str(payment.id), error=str(exc))
        return
    log.info("payment.callback", payment_id=str(payment.id), status=outcome.status.value)
    await _record(db, payments, payment.id, outcome, now=now)


# Reconciliation


async def reconcile(db: Database, payments: Payments, *, now: datetime) -> int:
    """Poll the provider for attempts still pending `poll_after` after their last news, so
    a lost callback never strands a booking; an attempt still pending when the payment
    window has passed is failed, and the hold's expiry returns its seats. Returns how many
    attempts were looked at."""
    async with db.read_transaction() as session:
        due = list(
            await session.scalars(
                select(Payment)
                .where(
                    Payment.status == PaymentStatus.PENDING,
                    Payment.provider != "free",
                    Payment.updated_at <= now - payments.poll_after,
                )
                .order_by(Payment.updated_at)
                .limit(RECONCILE_BATCH)
            )
        )
    for payment in due:
        try:
            await _poll(db, payments, payment, now=now)
        except Exception:  # one bad attempt must not stop the others being settled
            log.exception("payment.poll_crashed", payment_id=str(payment.id))
    return len(due)


async def _poll(db: Database, payments: Payments, payment: Payment, *, now: datetime) -> None:
    try:
        outcome = await payments.providers.get(payment.provider).status(payment)
    except ProviderError as exc:
        log.warning("payment.poll_failed", payment_id=str(payment.id), error=str(exc))
        outcome = Outcome(PaymentStatus.PENDING)
    if (
        outcome.status == PaymentStatus.PENDING
        and payment.created_at + payments.payment_window <= now
    ):
        outcome = Outcome(PaymentStatus.FAILED, failure_reason="expired")
    await _record(db, payments, payment.id, outcome, now=now)


# Refunds


class RefundNotConfirmed(Exception):
    """The provider has not confirmed the refund yet: the worker asks again later."""


async def run_refund(
    db: Database, payments: Payments, refund_id: uuid.UUID, *, now: datetime
) -> None:
    """Send a pending refund to the provider, or ask how it went. The reference the
    provider wants stored first is committed before the call."""
    async with db.transaction() as session:
        refund = await session.scalar(
            select(Refund).where(Refund.id == refund_id).with_for_update()
        )
        if refund is None or refund.status != RefundStatus.PENDING:
            return
        payment = await session.get_one(Payment, refund.payment_id)
        provider = payments.providers.get(payment.provider)
        first = refund.callback_token_hash is None
        if first:  # about to send
            refund.provider_reference = provider.new_reference()
            refund.callback_token_hash = payments.providers.callback_digest("refund", refund.id)
        elif refund.provider_reference is None:
            # An earlier run got here and may have sent it before it died: never again.
            refund.provider_reference = str(refund.id)
    try:
        outcome = await provider.refund(
            refund, payment, callback_url=payments.providers.callback_url("refund", refund.id)
        )
    except ProviderUnavailable as exc:
        if exc.definitive:
            if first:  # certainly not sent: the next run may send it afresh
                await _unprepare(db, refund)
            raise RefundNotConfirmed(f"refund {refund.id}: {exc}") from exc
        # It may have been sent: never send it again, wait for its result (a stored
        # reference makes providers only read results from now on).
        outcome = RefundOutcome(
            RefundStatus.PENDING, reference=refund.provider_reference or str(refund.id)
        )
    except ProviderError as exc:  # refused: not sent either
        if first:
            await _unprepare(db, refund)
        raise RefundNotConfirmed(f"refund {refund.id}: {exc}") from exc
    async with db.transaction() as session:
        await record_refund(session, refund.id, outcome, now=now)
    if outcome.status == RefundStatus.PENDING:
        raise RefundNotConfirmed(f"refund {refund.id}: the provider has not confirmed it yet")


async def _unprepare(db: Database, refund: Refund) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Refund)
            .where(Refund.id == refund.id, Refund.status == RefundStatus.PENDING)
            .values(callback_token_hash=None, provider_reference=None)
            .execution_options(synchronize_session=False)
        )


async def record_refund(
    session: AsyncSession, refund_id: uuid.UUID, outcome: RefundOutcome, *, now: datetime
) -> None:
    """What a provider said of a refund. Final answers are recorded once; a successful
    refund moves its payment to refunded or partially_refunded."""
    values: dict[str, Any] = {
        "provider_reference": func.coalesce(outcome.reference, Refund.provider_reference),
        "updated_at": now,
    }
    if outcome.status != RefundStatus.PENDING:
        values.update(status=outcome.status, failure_reason=outcome.failure_reason)
    payment_id = await session.scalar(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == RefundStatus.PENDING)
        .values(**values)
        .returning(Refund.payment_id)
        .execution_options(synchronize_session=False)
    )
    if payment_id is None or outcome.status == RefundStatus.PENDING:
        return
    if outcome.status == RefundStatus.FAILED:
        log.error("refund.failed", refund_id=str(refund_id), reason=outcome.failure_reason)
        return
    payment = await session.scalar(
        select(Payment).where(Payment.id == payment_id).with_for_update()
    )
    assert payment is not None
    refunded = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.payment_id == payment_id, Refund.status == RefundStatus.SUCCESSFUL
        )
    )
    payment.status = (
        PaymentStatus.REFUNDED
        if refunded >= payment.amount_cents
        else PaymentStatus.PARTIALLY_REFUNDED
    )
    payment.updated_at = now
    log.info("refund.successful", refund_id=str(refund_id), payment_id=str(payment_id))


# Reading


async def list_payments(
    session: AsyncSession, *, user: User, offset: int, limit: int
) -> tuple[list[Payment], int]:
    """The caller's own payment attempts, newest first."""
    total = await session.scalar(select(func.count(Payment.id)).where(Payment.user_id == user.id))
    rows = await session.scalars(
        select(Payment)
        .where(Payment.user_id == user.id)
        .order_by(Payment.created_at.desc(), Payment.id)
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(total or 0)


async def get_payment(session: AsyncSession, *, payment_id: uuid.UUID, viewer: User) -> Payment:
    """The payer and admins may read a payment; others get 404."""
    query = select(Payment).where(Payment.id == payment_id)
    if viewer.role != Role.ADMIN:
        query = query.where(Payment.user_id == viewer.id)
    payment = await session.scalar(query)
    if payment is None:
        raise PaymentNotFound()
    return payment


async def refunds_of(
    session: AsyncSession, payment_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Refund]]:
    found: dict[uuid.UUID, list[Refund]] = {payment_id: [] for payment_id in payment_ids}
    if payment_ids:
        rows = await session.scalars(
            select(Refund)
            .where(Refund.payment_id.in_(payment_ids))
            .order_by(Refund.created_at, Refund.id)
        )
        for refund in rows:
            found[refund.payment_id].append(refund)
    return found
