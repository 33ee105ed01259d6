import datetime as dt
import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from boxoffice.catalog import zones
from boxoffice.catalog.models import EventStatus, TierStatus
from boxoffice.validation import Money, invalid_at, text

MAX_CAPACITY = 1_000_000
DEFAULT_DURATION = dt.timedelta(hours=4)  # when an event is created without ends_at
MAX_PRICE = 10**12  # minor units; far above any ticket, far below integer overflow


def _country(value: str) -> str:
    if not zones.is_country(value):
        raise ValueError("must be an ISO 3166 alpha-2 country code, e.g. UG")
    return value.upper()


def _currency(value: str) -> str:
    if not zones.is_currency(value):
        raise ValueError("must be an ISO 4217 currency code, e.g. UGX")
    return value.upper()


def _timezone(value: str) -> str:
    if value not in zones.timezones():
        raise ValueError("must be an IANA time zone, e.g. Africa/Kampala")
    return value


def _slug(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", value):
        raise ValueError("must be lowercase letters, digits and single hyphens, e.g. hip-hop")
    return value


Country = Annotated[str, Field(min_length=2, max_length=2), AfterValidator(_country)]
Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_currency)]
Timezone = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
Slug = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_slug)]
Price = Annotated[int, Field(ge=0, le=MAX_PRICE, description="minor units, e.g. cents")]
Capacity = Annotated[int, Field(ge=1, le=MAX_CAPACITY)]
PerOrder = Annotated[int, Field(ge=1, le=100)]
# Stock shards (ARCHITECTURE §5); left out, the tier's size decides.
Shards = Annotated[int, Field(ge=1, le=64)]
ImageUrl = Annotated[HttpUrl, Field(max_length=2000)]
Artists = Annotated[list[text(100)], Field(max_length=20)]


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAY_ADAPTER = TypeAdapter(dt.date)
_INSTANT_ADAPTER = TypeAdapter(AwareDatetime)


def _day_or_instant(value: Any) -> dt.date | datetime:
    # Decided here, not by the union alone: that would read "2026-03-20T00:00:00+03:00" as
    # the day 2026-03-20, dropping the offset, accept a midnight without offset, and name
    # its errors "date_from.date" and "date_from.datetime".
    if isinstance(value, dt.date) and not isinstance(value, datetime):
        return value
    try:
        if isinstance(value, str) and _DAY.fullmatch(value.strip()):
            return _DAY_ADAPTER.validate_python(value.strip())
        return _INSTANT_ADAPTER.validate_python(value)
    except ValidationError:
        raise ValueError(
            "must be a date (2026-03-20) or a date and time with an offset "
            "(2026-03-20T19:00:00+03:00)"
        ) from None


DayOrInstant = Annotated[dt.date | AwareDatetime, BeforeValidator(_day_or_instant)]


def _check_window(
    start: datetime | None,
    end: datetime | None,
    *,
    ends_at: datetime | None,
    loc: tuple[str | int, ...] = (),
) -> None:
    if start and end and end <= start:
        raise invalid_at((*loc, "sales_end"), "sales_end must be after sales_start", end)
    if end and ends_at and end > ends_at:
        message = "sales_end must be no later than the event's ends_at"
        raise invalid_at((*loc, "sales_end"), message, end)


# Inputs


class VenueIn(BaseModel):
    name: text(200)
    address: text(300) | None = None
    city: text(100)
    country: Country
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180)] | None = None

    @model_validator(mode="after")
    def _both_coordinates_or_none(self) -> Self:
        if (self.lat is None) != (self.lng is None):
            raise ValueError("give both lat and lng, or neither")
        return self


class VenuePatch(BaseModel):
    name: text(200) | None = None
    address: text(300) | None = None
    city: text(100) | None = None
    country: Country | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180)] | None = None


class TicketTypeCreate(BaseModel):
    name: text(100)
    price: Price
    capacity: Capacity
    max_per_order: PerOrder = 10
    shards: Shards | None = None
    sales_start: AwareDatetime | None = None
    sales_end: AwareDatetime | None = None
    sort_order: Annotated[int, Field(ge=0, le=10_000)] | None = None

    @model_validator(mode="after")
    def _window(self) -> Self:
        _check_window(self.sales_start, self.sales_end, ends_at=None)
        return self


class TicketTypeUpdate(BaseModel):
    """PATCH: what is sent changes. Capacity changes go through the stock shards."""

    name: text(100) | None = None
    price: Price | None = None
    capacity: Capacity | None = None
    max_per_order: PerOrder | None = None
    shards: Shards | None = None
    sales_start: AwareDatetime | None = None
    sales_end: AwareDatetime | None = None
    sort_order: Annotated[int, Field(ge=0, le=10_000)] | None = None


class EventFields(BaseModel):
    """The body of PUT: every field of an event but its tiers."""

    title: text(200)
    artists: Artists = []
    genre: Slug | None = None
    description: text(5000, min_length=0) = ""
    venue: VenueIn
    timezone: Timezone | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    sales_start: AwareDatetime | None = None
    sales_end: AwareDatetime | None = None
    status: Literal[EventStatus.DRAFT, EventStatus.PUBLISHED] = EventStatus.DRAFT
    currency: Currency
    image_url: ImageUrl | None = None
    max_tickets_per_user: Annotated[int, Field(ge=1, le=100)] = 10
    cancellation_deadline_hours: Annotated[int, Field(ge=0, le=8760)] = 48

    @model_validator(mode="after")
    def _times(self) -> Self:
        if self.ends_at is None:
            self.ends_at = self.starts_at + DEFAULT_DURATION
        if self.ends_at <= self.starts_at:
            message = "ends_at must be after starts_at"
            raise invalid_at(("ends_at",), message, self.ends_at)
        _check_window(self.sales_start, self.sales_end, ends_at=self.ends_at)
        return self


class EventCreate(EventFields):
    ticket_types: Annotated[list[TicketTypeCreate], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _tier_windows(self) -> Self:
        for position, tier in enumerate(self.ticket_types):
            _check_window(
                tier.sales_start,
                tier.sales_end,
                ends_at=self.ends_at,
                loc=("ticket_types", position),
            )
        return self


class EventPatch(BaseModel):
    """PATCH: any subset of EventFields; the merged result is validated as a whole."""

    title: text(200) | None = None
    artists: Artists | None = None
    genre: Slug | None = None
    description: text(5000, min_length=0) | None = None
    venue: VenuePatch | None = None
    timezone: Timezone | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    sales_start: AwareDatetime | None = None
    sales_end: AwareDatetime | None = None
    status: Literal[EventStatus.DRAFT, EventStatus.PUBLISHED] | None = None
    currency: Currency | None = None
    image_url: ImageUrl | None = None
    max_tickets_per_user: Annotated[int, Field(ge=1, le=100)] | None = None
    cancellation_deadline_hours: Annotated[int, Field(ge=0, le=8760)] | None = None


class CapacityChange(BaseModel):
    id: uuid.UUID
    capacity: Capacity


class AvailabilityChange(BaseModel):
    ticket_types: Annotated[list[CapacityChange], Field(max_length=50)] = []
    on_sale: bool | None = None


class CategoryCreate(BaseModel):
    slug: Slug
    name: text(80)


# Outputs


class CategoryRead(BaseModel):
    slug: str
    name: str


class CategoryCount(CategoryRead):
    event_count: int


class VenueRead(BaseModel):
    name: str
    address: str | None
    city: str
    country: str
    lat: float | None
    lng: float | None


class TicketTypeRead(BaseModel):
    id: uuid.UUID
    name: str
    price: Money
    capacity: int
    available: int
    max_per_order: int
    sales_start: datetime | None
    sales_end: datetime | None
    status: TierStatus


class TicketTypeManaged(TicketTypeRead):
    sold: int
    held: int
    shards: int
    sort_order: int


class EventRead(BaseModel):
    id: uuid.UUID
    title: str
    artists: list[str]
    genre: CategoryRead | None
    description: str
    venue: VenueRead
    timezone: str
    starts_at: datetime
    ends_at: datetime
    sales_start: datetime | None
    sales_end: datetime | None
    status: EventStatus
    currency: str
    image_url: str | None
    organizer_id: uuid.UUID
    max_tickets_per_user: int
    cancellation_deadline_hours: int
    ticket_types: list[TicketTypeRead]
    available: int
    sold_out: bool


class EventManaged(EventRead):
    """What the organizer sees: counters and state the public does not."""

    ticket_types: list[TicketTypeManaged]  # type: ignore[assignment]
    on_sale: bool
    capacity: int
    sold: int
    held: int
    created_at: datetime
    updated_at: datetime


class EventSort(StrEnum):
    STARTS_AT = "starts_at"
    STARTS_AT_DESC = "-starts_at"
    PRICE = "price"
    PRICE_DESC = "-price"
    POPULARITY = "popularity"
    TITLE = "title"


class EventFilters(BaseModel):
    """GET /events query parameters; every one optional, all combinable."""

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, values: Any) -> Any:
        # A search form submits its empty boxes: `?q=&city=` means no such filter.
        if isinstance(values, dict):
            return {key: value for key, value in values.items() if value != ""}
        return values

    q: text(200) | None = None
    artist: text(100) | None = None
    genre: Slug | None = None
    venue: text(200) | None = None
    city: text(100) | None = None
    date: dt.date | None = None
    date_from: DayOrInstant | None = None
    date_to: DayOrInstant | None = None
    price_min: Price | None = None
    price_max: Price | None = None
    available: bool | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180)] | None = None
    radius_km: Annotated[float, Field(gt=0, le=20_000)] | None = None
    sort: EventSort = EventSort.STARTS_AT
    page: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    limit: Annotated[int, Field(ge=1, le=100)] = 20
