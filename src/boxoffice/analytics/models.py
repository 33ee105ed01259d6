import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index
from sqlalchemy.orm import Mapped, mapped_column

from boxoffice.db import Base, UUIDPrimaryKey, str_enum, utcnow


class InteractionKind(StrEnum):
    VIEW = "view"
    SEARCH = "search"
    HOLD = "hold"
    PURCHASE = "purchase"


class Interaction(UUIDPrimaryKey, Base):
    """What fans did: the input to popularity, funnels and recommendations. No foreign
    keys: rows arrive in batches, and must not fail because an event was deleted since."""

    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_kind_created_at", "kind", "created_at"),)

    kind: Mapped[InteractionKind] = mapped_column(str_enum(InteractionKind))
    user_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    event_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    quantity: Mapped[int] = mapped_column(default=1)  # tickets, for holds and purchases
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
