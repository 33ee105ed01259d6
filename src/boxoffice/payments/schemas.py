import uuid
from datetime import datetime

from pydantic import BaseModel

from boxoffice.payments.models import PaymentStatus, RefundStatus
from boxoffice.validation import Money


class RefundRead(BaseModel):
    id: uuid.UUID
    amount: Money
    status: RefundStatus
    reason: str
    provider_reference: str | None = None
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class PaymentRead(BaseModel):
    id: uuid.UUID
    booking_id: uuid.UUID
    provider: str
    amount: Money
    status: PaymentStatus
    payer_phone: str | None = None  # all but the last three characters masked, but for admins
    provider_reference: str | None = None
    provider_transaction_id: str | None = None
    failure_reason: str | None = None
    instructions: str | None = None  # while pending: what the payer must do
    created_at: datetime
    updated_at: datetime
    refunds: list[RefundRead]
