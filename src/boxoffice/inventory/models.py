import uuid

from sqlalchemy import CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from boxoffice.db import Base, UUIDPrimaryKey


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
