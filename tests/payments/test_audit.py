"""Money that needs a person: refunds never confirmed or refused, attempts never settled."""

import uuid
from datetime import timedelta

from boxoffice.db import Database, utcnow
from boxoffice.orders import service as orders
from boxoffice.orders.schemas import BookingCreate, HoldCreate
from boxoffice.payments import audit
from boxoffice.payments.models import Payment, RefundStatus
from tests.factories import create_user
from tests.orders.helpers import free_event
from tests.payments.fakes import PendingProvider, providers_with

WINDOW = timedelta(minutes=15)


async def _pending_payment(db: Database) -> Payment:
    event, (tier,) = await free_event(
        db, ticket_types=[{"name": "GA", "price": 50_000, "capacity": 10}]
    )
    fan = await create_user(db)
    now = utcnow()
    async with db.transaction() as session:
        hold = await orders.place_hold(
            session,
            user=fan,
            data=HoldCreate.model_validate(
                {"event_id": str(event.id), "items": [{"ticket_type_id": str(tier), "quantity": 1}]}
            ),
            ttl=timedelta(minutes=10),
            now=now,
        )
        _, payment = await orders.book(
            session,
            user=fan,
            data=BookingCreate.model_validate(
                {"hold_id": str(hold.id), "payment": {"method": "momo", "phone": "+256772123456"}}
            ),
            providers=providers_with(PendingProvider()),
            payment_window=WINDOW,
            now=now,
        )
    return payment


async def test_an_attempt_never_settled_is_reported_once_reconciliation_is_overdue(
    db: Database,
) -> None:
    payment = await _pending_payment(db)

    async with db.read_transaction() as session:
        soon = await audit.stuck(session, now=utcnow() + WINDOW, payment_window=WINDOW)
        later = await audit.stuck(
            session, now=utcnow() + WINDOW + timedelta(minutes=11), payment_window=WINDOW
        )

    assert soon == []
    assert [(item.kind, item.id) for item in later] == [("payment", str(payment.id))]


async def test_a_refund_refused_or_pending_for_a_day_is_reported(db: Database) -> None:
    payment = await _pending_payment(db)
    async with db.transaction() as session:
        paid = await session.get_one(Payment, payment.id)
        refused = await orders.start_refund(
            session, paid, amount_cents=50_000, reason="cancelled", now=utcnow()
        )
        waiting = await orders.start_refund(
            session, paid, amount_cents=50_000, reason="duplicate", now=utcnow()
        )
        refused.status, refused.failure_reason = RefundStatus.FAILED, "merchant_error"

    async with db.read_transaction() as session:
        today = await audit.stuck(session, now=utcnow(), payment_window=timedelta(days=9))
        tomorrow = await audit.stuck(
            session, now=utcnow() + timedelta(days=1, minutes=1), payment_window=timedelta(days=9)
        )

    assert [item.id for item in today] == [str(refused.id)]
    assert "merchant_error" in str(today[0])
    assert {uuid.UUID(item.id) for item in tomorrow} == {refused.id, waiting.id}
