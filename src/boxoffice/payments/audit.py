"""Money that needs a person: refunds the providers never confirmed or refused, and
attempts that reconciliation should have settled long ago. `boxoffice audit` and the
hourly `payments.audit` job report them; nothing here changes anything."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus

REFUND_PATIENCE = timedelta(days=1)  # a refund pending longer is stuck
SETTLE_GRACE = timedelta(minutes=10)  # past the payment window, for reconciliation to act


@dataclass(frozen=True, slots=True)
class Stuck:
    kind: str  # "refund" or "payment"
    id: str
    problem: str

    def __str__(self) -> str:
        return f"{self.kind} {self.id}: {self.problem}"


async def stuck(session: AsyncSession, *, now: datetime, payment_window: timedelta) -> list[Stuck]:
    found = [
        Stuck("refund", str(refund.id), _refund_problem(refund, now))
        for refund in await session.scalars(
            select(Refund)
            .where(
                (Refund.status == RefundStatus.FAILED)
                | (
                    (Refund.status == RefundStatus.PENDING)
                    & (Refund.created_at <= now - REFUND_PATIENCE)
                )
            )
            .order_by(Refund.created_at)
        )
    ]
    found += [
        Stuck("payment", str(payment.id), f"pending since {payment.created_at:%Y-%m-%d %H:%M} UTC")
        for payment in await session.scalars(
            select(Payment)
            .where(
                Payment.status == PaymentStatus.PENDING,
                Payment.created_at <= now - payment_window - SETTLE_GRACE,
            )
            .order_by(Payment.created_at)
        )
    ]
    return found


def _refund_problem(refund: Refund, now: datetime) -> str:
    amount = f"{refund.amount_cents} minor units of payment {refund.payment_id}"
    if refund.status == RefundStatus.FAILED:
        return f"the provider refused it ({refund.failure_reason}): {amount} still to give back"
    return f"not confirmed after {(now - refund.created_at).days} day(s): {amount}"
