import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from boxoffice.inventory.models import HoldStatus
from boxoffice.orders.models import BookingStatus
from boxoffice.tickets.models import TicketStatus
from boxoffice.validation import Money, Phone, invalid_at

MAX_ITEMS = 20
MAX_QUANTITY = 100


class HoldItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_type_id: uuid.UUID
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


class HoldCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID
    items: Annotated[list[HoldItemIn], Field(min_length=1, max_length=MAX_ITEMS)]

    @model_validator(mode="after")
    def _each_tier_once(self) -> Self:
        seen: set[uuid.UUID] = set()
        for index, item in enumerate(self.items):
            if item.ticket_type_id in seen:
                raise invalid_at(
                    ("items", index, "ticket_type_id"),
                    "name each ticket type once, with its whole quantity",
                    str(item.ticket_type_id),
                )
            seen.add(item.ticket_type_id)
        return self


class HoldItemRead(BaseModel):
    ticket_type_id: uuid.UUID
    name: str
    quantity: int
    unit_price: Money


class HoldRead(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    items: list[HoldItemRead]
    total: Money
    expires_at: datetime
    status: HoldStatus
    booking_id: uuid.UUID | None = None


class PaymentMethod(StrEnum):
    MOMO = "momo"
    MPESA = "mpesa"


class PaymentChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: PaymentMethod
    phone: Phone


class BookingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hold_id: uuid.UUID
    payment: PaymentChoice | None = None


class VenueSummary(BaseModel):
    name: str
    city: str
    country: str


class EventSummary(BaseModel):
    id: uuid.UUID
    title: str
    starts_at: datetime
    venue: VenueSummary


class BookingItemRead(BaseModel):
    ticket_type_id: uuid.UUID
    name: str
    quantity: int
    unit_price: Money


class TicketTypeRef(BaseModel):
    id: uuid.UUID
    name: str


class TicketRead(BaseModel):
    id: uuid.UUID
    booking_id: uuid.UUID
    event_id: uuid.UUID
    ticket_type: TicketTypeRef
    holder_name: str
    number: str
    price: Money
    status: TicketStatus
    code: str | None = None  # the QR payload: shown to the ticket's owner only
    checked_in_at: datetime | None = None


class PaymentSummary(BaseModel):
    id: uuid.UUID
    status: str
    provider: str
    amount: Money
    failure_reason: str | None = None
    instructions: str | None = None


class BookingRead(BaseModel):
    id: uuid.UUID
    reference: str
    event: EventSummary
    items: list[BookingItemRead]
    total: Money
    status: BookingStatus
    failure_reason: str | None = None
    created_at: datetime
    confirmed_at: datetime | None = None
    cancelled_at: datetime | None = None
    expires_at: datetime | None = None  # while pending_payment: when the seats go back
    payment: PaymentSummary | None = None
    tickets: list[TicketRead]


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=500)]  # the scanned QR payload
    event_id: uuid.UUID
