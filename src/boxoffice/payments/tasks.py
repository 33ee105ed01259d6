from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from boxoffice.payments.providers import PROVIDERS
from boxoffice.worker.registry import job


class RefundNotConfirmed(Exception):
    """The provider did not confirm the refund yet: the worker tries again later."""


@job("payments.refund")
async def refund(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    record = await session.scalar(
        select(Refund).where(Refund.id == payload["refund_id"]).with_for_update()
    )
    if record is None or record.status != RefundStatus.PENDING:
        return
    payment = await session.get_one(Payment, record.payment_id)
    outcome = await PROVIDERS.get(payment.provider).refund(record, payment)
    record.provider_reference = outcome.reference or record.provider_reference
    record.updated_at = now
    if outcome.status != RefundStatus.SUCCESSFUL:
        raise RefundNotConfirmed(f"refund {record.id}: provider says {outcome.status.value}")
    record.status = RefundStatus.SUCCESSFUL
    refunded = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.payment_id == payment.id, Refund.status == RefundStatus.SUCCESSFUL
        )
    )
    payment.status = (
        PaymentStatus.REFUNDED
        if refunded >= payment.amount_cents
        else PaymentStatus.PARTIALLY_REFUNDED
    )
    payment.updated_at = now
