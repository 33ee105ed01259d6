import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from boxoffice.db import Base, UUIDPrimaryKey, str_enum, utcnow


class TicketStatus(StrEnum):
    VALID = "valid"
    USED = "used"
    CANCELLED = "cancelled"


class Ticket(UUIDPrimaryKey, Base):
    """One seat of a confirmed booking."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_user_id_event_id", "user_id", "event_id"),
        Index("ix_tickets_ticket_type_id_status", "ticket_type_id", "status"),
    )

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    ticket_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ticket_types.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    number: Mapped[str] = mapped_column(String(24), unique=True)  # "AFR-7K2Q-9XZA-01"
    holder_name: Mapped[str] = mapped_column(String(120))
    price_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[TicketStatus] = mapped_column(str_enum(TicketStatus))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_in_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
