import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from boxoffice.db import Base, UUIDPrimaryKey, str_enum, utcnow


class TicketStock(UUIDPrimaryKey, Base):
    """One shard of a tier's seats. available = capacity - sold - held, never negative."""

    __tablename__ = "ticket_stock"
    __table_args__ = (
        UniqueConstraint("ticket_type_id", "shard"),
        CheckConstraint("sold >= 0", name="sold_not_negative"),
        CheckConstraint("held >= 0", name="held_not_negative"),
        CheckConstraint("sold + held <= capacity", name="within_capacity"),
    )

    ticket_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ticket_types.id", ondelete="CASCADE"), index=True
    )
    shard: Mapped[int] = mapped_column(default=0)
    capacity: Mapped[int]
    sold: Mapped[int] = mapped_column(default=0)
    held: Mapped[int] = mapped_column(default=0)


class HoldStatus(StrEnum):
    ACTIVE = "active"
    CONVERTED = "converted"  # its booking was paid: the seats are sold
    EXPIRED = "expired"
    RELEASED = "released"


_ACTIVE = "status = 'active'"


class Hold(UUIDPrimaryKey, Base):
    """Seats taken from the shards for a while, for one user and one event."""

    __tablename__ = "holds"
    __table_args__ = (
        # Only live holds are looked for by these (the expiry sweep, the per-user limit);
        # the many that ended stay out of the indexes, and out of the planner's way.
        # On PostgreSQL `expires_at IS NOT NULL` (always true) keeps the per-user limit off
        # the expiry index: only a query that bounds expires_at implies it (migration
        # 0008). SQLite 3.40 does not draw that inference, and takes the fan's own index
        # for the limit anyway (an equality beats a range there).
        Index(
            "ix_holds_active_expires_at",
            "expires_at",
            postgresql_where=text(f"{_ACTIVE} AND expires_at IS NOT NULL"),
            sqlite_where=text(_ACTIVE),
        ),
        Index(
            "ix_holds_active_user_id_event_id",
            "user_id",
            "event_id",
            postgresql_where=text(_ACTIVE),
            sqlite_where=text(_ACTIVE),
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    status: Mapped[HoldStatus] = mapped_column(str_enum(HoldStatus), default=HoldStatus.ACTIVE)
    quantity: Mapped[int]  # Σ items' quantity
    total_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # When the hold runs out: its own TTL, pushed later while a payment attempt is pending.
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]  # converted, expired or released
    # Set once, by the booking made from this hold (no foreign key: bookings point here).
    booking_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)

    items: Mapped[list["HoldItem"]] = relationship(
        lazy="raise", order_by="(HoldItem.ticket_type_id, HoldItem.stock_id)"
    )

    def is_overdue(self, now: datetime) -> bool:
        """Active but past its expiry: expired for every purpose, until the sweep says so."""
        return self.status == HoldStatus.ACTIVE and self.expires_at <= now


class HoldItem(UUIDPrimaryKey, Base):
    """Seats of one tier taken from one shard: they go back to that shard."""

    __tablename__ = "hold_items"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    hold_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("holds.id", ondelete="CASCADE"), index=True
    )
    # A tier can only be deleted with no live holds and no sales: these rows are history.
    ticket_type_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ticket_types.id", ondelete="CASCADE"), index=True
    )
    stock_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ticket_stock.id", ondelete="CASCADE"), index=True
    )
    quantity: Mapped[int]
    unit_price_cents: Mapped[int]  # the tier's price when the seats were taken
