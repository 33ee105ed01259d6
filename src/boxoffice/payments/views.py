"""Payments as API.md shows them."""

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts.models import Role, User
from boxoffice.payments import service
from boxoffice.payments.http import mask_phone
from boxoffice.payments.models import Payment, PaymentStatus
from boxoffice.payments.schemas import PaymentRead, RefundRead
from boxoffice.validation import Money


async def payment_reads(
    session: AsyncSession, payments: Sequence[Payment], *, viewer: User
) -> list[PaymentRead]:
    refunds = await service.refunds_of(session, [payment.id for payment in payments])
    admin = viewer.role == Role.ADMIN
    return [
        PaymentRead(
            id=payment.id,
            booking_id=payment.booking_id,
            provider=payment.provider,
            amount=Money(amount=payment.amount_cents, currency=payment.currency),
            status=payment.status,
            payer_phone=payment.payer_phone if admin else mask_phone(payment.payer_phone),
            provider_reference=payment.provider_reference,
            provider_transaction_id=payment.provider_transaction_id,
            failure_reason=payment.failure_reason,
            instructions=payment.instructions if payment.status == PaymentStatus.PENDING else None,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
            refunds=[
                RefundRead(
                    id=refund.id,
                    amount=Money(amount=refund.amount_cents, currency=payment.currency),
                    status=refund.status,
                    reason=refund.reason,
                    provider_reference=refund.provider_reference,
                    failure_reason=refund.failure_reason,
                    created_at=refund.created_at,
                    updated_at=refund.updated_at,
                )
                for refund in refunds[payment.id]
            ],
        )
        for payment in payments
    ]
