import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from boxoffice.db import Base, UUIDPrimaryKey, str_enum, utcnow


class EventStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"


class TierStatus(StrEnum):
    ON_SALE = "on_sale"
    SOLD_OUT = "sold_out"
    NOT_YET_ON_SALE = "not_yet_on_sale"
    SALES_ENDED = "sales_ended"
    PAUSED = "paused"


class Category(UUIDPrimaryKey, Base):
    __tablename__ = "categories"

    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(UUIDPrimaryKey, Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_status_starts_at_id", "status", "starts_at", "id"),  # the default order
        Index("ix_events_status_ends_at", "status", "ends_at"),  # the listing and its count
        Index("ix_events_city_key_starts_on", "city_key", "starts_on"),
        Index("ix_events_coordinates", "latitude", "longitude"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )

    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    category_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("categories.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    artists: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    venue_name: Mapped[str] = mapped_column(String(200))
    venue_address: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2))
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    timezone: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    sales_start: Mapped[datetime | None]
    sales_end: Mapped[datetime | None]
    status: Mapped[EventStatus] = mapped_column(str_enum(EventStatus), default=EventStatus.DRAFT)
    on_sale: Mapped[bool] = mapped_column(default=True)  # false: sales paused by the organizer
    currency: Mapped[str] = mapped_column(String(3))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    max_tickets_per_user: Mapped[int] = mapped_column(default=10)
    cancellation_deadline_hours: Mapped[int] = mapped_column(default=48)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Derived from the fields above by catalog.search.index_fields() on every write, so
    # that filters compare casefolded text and local dates on both databases alike.
    starts_on: Mapped[date] = mapped_column(index=True)  # local start date in `timezone`
    search_text: Mapped[str] = mapped_column(Text, default="")
    artists_key: Mapped[str] = mapped_column(Text, default="")
    venue_key: Mapped[str] = mapped_column(String(200), default="")
    city_key: Mapped[str] = mapped_column(String(100), default="", index=True)

    category: Mapped[Category | None] = relationship(lazy="raise")
    ticket_types: Mapped[list["TicketType"]] = relationship(
        back_populates="event",
        lazy="raise",
        passive_deletes=True,
        order_by="(TicketType.sort_order, TicketType.created_at)",
    )


class TicketType(UUIDPrimaryKey, Base):
    __tablename__ = "ticket_types"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        CheckConstraint("capacity >= 1", name="capacity_positive"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    price_cents: Mapped[int]
    # Σ capacity of the tier's ticket_stock shards; changed only together with them.
    capacity: Mapped[int]
    max_per_order: Mapped[int] = mapped_column(default=10)
    sales_start: Mapped[datetime | None]
    sales_end: Mapped[datetime | None]
    sort_order: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    event: Mapped[Event] = relationship(back_populates="ticket_types", lazy="raise")
