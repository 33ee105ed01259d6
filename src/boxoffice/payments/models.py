import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from boxoffice.db import Base, UUIDPrimaryKey, str_enum, utcnow


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCESSFUL = "successful"
    FAILED = "failed"


class Payment(UUIDPrimaryKey, Base):
    """One attempt to pay for a booking; a booking may have several (retries)."""

    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_booking_id_created_at", "booking_id", "created_at"),
        Index("ix_payments_user_id_created_at", "user_id", "created_at"),
        Index("ix_payments_status_created_at", "status", "created_at"),  # reconciliation
    )

    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    provider: Mapped[str] = mapped_column(String(16))  # "free", "momo", "mpesa"
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    payer_phone: Mapped[str | None] = mapped_column(String(16))  # E.164
    status: Mapped[PaymentStatus] = mapped_column(str_enum(PaymentStatus))
    # SHA-256 of the secret in the provider's callback URL that names this payment.
    callback_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    provider_reference: Mapped[str | None] = mapped_column(String(100), index=True)
    provider_transaction_id: Mapped[str | None] = mapped_column(String(100))
    failure_reason: Mapped[str | None] = mapped_column(String(40))
    instructions: Mapped[str | None] = mapped_column(String(300))  # what the payer must do
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)  # also: last polled


class Refund(UUIDPrimaryKey, Base):
    """Money going back for a payment; the worker retries it until the provider agrees."""

    __tablename__ = "refunds"

    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payments.id", ondelete="CASCADE"), index=True
    )
    amount_cents: Mapped[int]
    reason: Mapped[str] = mapped_column(String(40))  # "cancelled", "seats_gone", "duplicate"…
    status: Mapped[RefundStatus] = mapped_column(str_enum(RefundStatus))
    provider_reference: Mapped[str | None] = mapped_column(String(100))
    failure_reason: Mapped[str | None] = mapped_column(String(40))
    # SHA-256 of the secret in the URL where the provider reports the refund's result.
    callback_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
