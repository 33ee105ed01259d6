"""What the public reads: one event, the filtered list, the genres; and how a tier's
status follows from its sales window, the event and its stock."""

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice import geo
from boxoffice.analytics.models import Interaction, InteractionKind
from boxoffice.catalog import search
from boxoffice.catalog import service as catalog
from boxoffice.catalog.errors import EventNotFound
from boxoffice.catalog.models import Category, Event, EventStatus, TicketType, TierStatus
from boxoffice.catalog.schemas import (
    CategoryCount,
    CategoryRead,
    EventFilters,
    EventManaged,
    EventRead,
    EventSort,
    TicketTypeManaged,
    TicketTypeRead,
)
from boxoffice.db import like_pattern
from boxoffice.errors import ValidationFailed
from boxoffice.inventory import service as inventory
from boxoffice.inventory.models import TicketStock
from boxoffice.validation import Money

POPULARITY_WINDOW = timedelta(days=7)


# A tier's status. The Python rule (one event on screen) and the SQL rule (filtering and
# sorting the list) must agree; tests/catalog checks them against each other.


def sales_window(event: Event, tier: TicketType) -> tuple[datetime | None, datetime]:
    """When the tier sells: its own window, else the event's; never after the doors open."""
    start = tier.sales_start or event.sales_start
    end = tier.sales_end or event.sales_end or event.starts_at
    return start, min(end, event.starts_at)


def tier_status(event: Event, tier: TicketType, available: int, now: datetime) -> TierStatus:
    if not event.on_sale:
        return TierStatus.PAUSED
    start, end = sales_window(event, tier)
    if start is not None and now < start:
        return TierStatus.NOT_YET_ON_SALE
    if available <= 0:
        return TierStatus.SOLD_OUT
    if now >= end:
        return TierStatus.SALES_ENDED
    return TierStatus.ON_SALE


def _tier_available() -> ColumnElement[int]:
    """Seats left in the TicketType of the enclosing query (correlated)."""
    return (
        select(inventory.seats_left())
        .where(TicketStock.ticket_type_id == TicketType.id)
        .scalar_subquery()
    )


def _on_sale(now: datetime) -> ColumnElement[bool]:
    """SQL twin of tier_status(...) == ON_SALE, for TicketType joined to its Event."""
    start = func.coalesce(TicketType.sales_start, Event.sales_start)
    end = func.coalesce(TicketType.sales_end, Event.sales_end, Event.starts_at)
    return and_(
        Event.on_sale.is_(True),
        or_(start.is_(None), start <= now),
        end > now,
        Event.starts_at > now,
        _tier_available() > 0,
    )


# Reading events


async def get_public_event(
    session: AsyncSession, *, event_id: uuid.UUID, now: datetime
) -> EventRead:
    """A published event (past ones too); drafts and cancelled events are not found. One
    statement: the event, its genre, and a row per tier with its stock."""
    rows = (await session.execute(_PUBLISHED_EVENT_PAGE, {"id": event_id})).all()
    if not rows:
        raise EventNotFound()
    event, category = rows[0][0], rows[0][1]
    tiers = [row[2] for row in rows if row[2] is not None]
    stock = {tier.id: inventory.Stock(*figures) for _, _, tier, *figures in rows if tier}
    return _event_read(event, category, tiers, stock, now, managed=False)


async def present(
    session: AsyncSession, events: Sequence[Event], *, now: datetime, managed: bool = False
) -> list[EventRead]:
    """Events as the API shows them, with tiers and live availability: two queries."""
    ids = [event.id for event in events]
    categories = await _categories_by_id(session, {e.category_id for e in events if e.category_id})
    tiers_by_event: dict[uuid.UUID, list[TicketType]] = {event_id: [] for event_id in ids}
    stock: dict[uuid.UUID, inventory.Stock] = {}
    if ids:
        for tier, *figures in await session.execute(_TIERS_WITH_STOCK, {"ids": ids}):
            tiers_by_event[tier.event_id].append(tier)
            stock[tier.id] = inventory.Stock(*figures)
    return [
        _event_read(
            event, categories.get(event.category_id), tiers_by_event[event.id], stock, now, managed
        )
        for event in events
    ]


def _event_read(
    event: Event,
    category: Category | None,
    tiers: list[TicketType],
    stock: dict[uuid.UUID, inventory.Stock],
    now: datetime,
    managed: bool,
) -> EventRead:
    tier_reads = []
    for tier in tiers:
        tier_stock = stock.get(tier.id, inventory.EMPTY)
        fields = {
            "id": tier.id,
            "name": tier.name,
            "price": Money(amount=tier.price_cents, currency=event.currency),
            "capacity": tier.capacity,
            "available": tier_stock.available,
            "max_per_order": tier.max_per_order,
            "sales_start": tier.sales_start,
            "sales_end": tier.sales_end,
            "status": tier_status(event, tier, tier_stock.available, now),
        }
        if managed:
            tier_reads.append(
                TicketTypeManaged(
                    **fields,
                    sold=tier_stock.sold,
                    held=tier_stock.held,
                    shards=tier_stock.shards,
                    sort_order=tier.sort_order,
                )
            )
        else:
            tier_reads.append(TicketTypeRead(**fields))
    available = sum(t.available for t in tier_reads)
    fields = {
        **catalog.event_fields(event, None),
        "id": event.id,
        "genre": CategoryRead(slug=category.slug, name=category.name) if category else None,
        "organizer_id": event.organizer_id,
        "ticket_types": tier_reads,
        "available": available,
        "sold_out": available == 0,
    }
    if not managed:
        return EventRead(**fields)
    return EventManaged(
        **fields,
        on_sale=event.on_sale,
        capacity=sum(tier.capacity for tier in tiers),
        sold=sum(t.sold for t in tier_reads),  # type: ignore[attr-defined]
        held=sum(t.held for t in tier_reads),  # type: ignore[attr-defined]
        created_at=event.created_at,
        updated_at=event.updated_at,
    )


async def _categories_by_id(
    session: AsyncSession, ids: set[uuid.UUID]
) -> dict[uuid.UUID, Category]:
    if not ids:
        return {}
    return {c.id: c for c in await session.scalars(_CATEGORIES, {"ids": list(ids)})}


async def events_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Event]:
    """The events, in the order of `ids`."""
    if not ids:
        return []
    found = {e.id: e for e in await session.scalars(_EVENTS, {"ids": list(ids)})}
    return [found[event_id] for event_id in ids if event_id in found]


# The statements of a miss, built once: composing one costs about as much as running it.
_CATEGORIES = select(Category).where(Category.id.in_(bindparam("ids", expanding=True)))
_SHARD_FIGURES = (
    func.coalesce(func.sum(TicketStock.capacity), 0),
    func.coalesce(func.sum(TicketStock.sold), 0),
    func.coalesce(func.sum(TicketStock.held), 0),
    func.count(TicketStock.id),
)
_TIER_ORDER = (TicketType.sort_order, TicketType.created_at, TicketType.id)
_PUBLISHED_EVENT_PAGE = (  # grouped by primary keys: every column of the three is determined
    select(Event, Category, TicketType, *_SHARD_FIGURES)
    .outerjoin(Category, Category.id == Event.category_id)
    .outerjoin(TicketType, TicketType.event_id == Event.id)
    .outerjoin(TicketStock, TicketStock.ticket_type_id == TicketType.id)
    .where(Event.id == bindparam("id"), Event.status == EventStatus.PUBLISHED)
    .group_by(Event.id, Category.id, TicketType.id)
    .order_by(*_TIER_ORDER)
)
_EVENTS = select(Event).where(Event.id.in_(bindparam("ids", expanding=True)))
_TIERS_WITH_STOCK = (  # a tier's figures summed over its shards
    select(TicketType, *_SHARD_FIGURES)
    .outerjoin(TicketStock, TicketStock.ticket_type_id == TicketType.id)
    .where(TicketType.event_id.in_(bindparam("ids", expanding=True)))
    .group_by(TicketType.id)
    .order_by(*_TIER_ORDER)
)


# The public list


async def search_events(
    session: AsyncSession, *, filters: EventFilters, now: datetime
) -> tuple[list[EventRead], int]:
    """Published events that have not ended, filtered, sorted and paginated."""
    query = _filtered(filters, now=now, dialect=session.get_bind().dialect.name)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ordered = _ordered(query, filters.sort, now=now)
    offset = (filters.page - 1) * filters.limit
    ids = list(await session.scalars(ordered.offset(offset).limit(filters.limit)))
    return await present(session, await events_by_id(session, ids), now=now), total


def _filtered(filters: EventFilters, *, now: datetime, dialect: str) -> Select[tuple[uuid.UUID]]:
    _check(filters)
    query = select(Event.id).where(Event.status == EventStatus.PUBLISHED, Event.ends_at > now)
    if filters.q and (words := search.keywords(filters.q)):
        query = query.where(search.matching_event_ids(dialect, words))
    if filters.artist:
        query = query.where(
            Event.artists_key.like(like_pattern(search.normalise(filters.artist)), escape="\\")
        )
    if filters.venue:
        query = query.where(
            Event.venue_key.like(like_pattern(search.normalise(filters.venue)), escape="\\")
        )
    if filters.city:
        query = query.where(Event.city_key == search.normalise(filters.city))
    if filters.genre:
        query = query.where(
            Event.category_id.in_(select(Category.id).where(Category.slug == filters.genre))
        )
    if filters.date:
        query = query.where(Event.starts_on == filters.date)
    if filters.date_from:
        query = query.where(_on_or_after(filters.date_from))
    if filters.date_to:
        query = query.where(_on_or_before(filters.date_to))
    if filters.price_min is not None or filters.price_max is not None:
        query = query.where(_priced_within(filters.price_min, filters.price_max, now))
    if filters.available is not None:
        seats = _event_available()
        query = query.where(seats > 0 if filters.available else seats == 0)
    if filters.lat is not None and filters.lng is not None and filters.radius_km is not None:
        query = query.where(_within(filters.lat, filters.lng, filters.radius_km))
    return query


def _check(filters: EventFilters) -> None:
    geo_given = [name for name in ("lat", "lng", "radius_km") if getattr(filters, name) is not None]
    if geo_given and len(geo_given) < 3:
        missing = [name for name in ("lat", "lng", "radius_km") if name not in geo_given]
        raise ValidationFailed(
            [{"field": name, "message": "lat, lng and radius_km go together"} for name in missing]
        )
    if (
        filters.price_min is not None
        and filters.price_max is not None
        and filters.price_min > filters.price_max
    ):
        raise ValidationFailed.field("price_max", "must not be below price_min")
    if filters.date_from and filters.date_to and _after(filters.date_from, filters.date_to):
        raise ValidationFailed.field("date_to", "must not be before date_from")


def _after(start: date | datetime, end: date | datetime) -> bool:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return start > end  # two instants, whatever their offsets
    return _as_date(start) > _as_date(end)


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _on_or_after(value: date | datetime) -> ColumnElement[bool]:
    # A calendar day compares with the event's local start date; an instant with starts_at.
    return Event.starts_at >= value if isinstance(value, datetime) else Event.starts_on >= value


def _on_or_before(value: date | datetime) -> ColumnElement[bool]:
    return Event.starts_at <= value if isinstance(value, datetime) else Event.starts_on <= value


def _priced_within(low: int | None, high: int | None, now: datetime) -> ColumnElement[bool]:
    tier = select(TicketType.id).where(TicketType.event_id == Event.id, _on_sale(now))
    if low is not None:
        tier = tier.where(TicketType.price_cents >= low)
    if high is not None:
        tier = tier.where(TicketType.price_cents <= high)
    return exists(tier)


def _event_available() -> ColumnElement[int]:
    return (
        select(inventory.seats_left())
        .join(TicketType, TicketType.id == TicketStock.ticket_type_id)
        .where(TicketType.event_id == Event.id)
        .scalar_subquery()
    )


def _within(lat: float, lng: float, radius_km: float) -> ColumnElement[bool]:
    min_lat, max_lat, min_lng, max_lng = geo.bounding_box(lat, lng, radius_km)
    return and_(
        Event.latitude.between(min_lat, max_lat),
        Event.longitude.between(min_lng, max_lng),
        func.bo_distance_km(lat, lng, Event.latitude, Event.longitude) <= radius_km,
    )


def _cheapest_on_sale(now: datetime) -> ColumnElement[int]:
    return (
        select(func.min(TicketType.price_cents))
        .where(TicketType.event_id == Event.id, _on_sale(now))
        .scalar_subquery()
    )


def _ordered(
    query: Select[tuple[uuid.UUID]], sort: EventSort, *, now: datetime
) -> Select[tuple[uuid.UUID]]:
    if sort == EventSort.STARTS_AT_DESC:
        return query.order_by(Event.starts_at.desc(), Event.id)
    if sort in (EventSort.PRICE, EventSort.PRICE_DESC):
        price = _cheapest_on_sale(now)
        direction = price.asc() if sort == EventSort.PRICE else price.desc()
        return query.order_by(direction.nulls_last(), Event.starts_at, Event.id)
    if sort == EventSort.POPULARITY:
        sold = (
            select(func.coalesce(func.sum(Interaction.quantity), 0))
            .where(
                Interaction.event_id == Event.id,
                Interaction.kind == InteractionKind.PURCHASE,
                Interaction.created_at >= now - POPULARITY_WINDOW,
            )
            .scalar_subquery()
        )
        return query.order_by(sold.desc(), Event.starts_at, Event.id)
    if sort == EventSort.TITLE:
        return query.order_by(func.lower(Event.title), Event.starts_at, Event.id)
    return query.order_by(Event.starts_at, Event.id)


# Genres


async def category_counts(session: AsyncSession, *, now: datetime) -> list[CategoryCount]:
    """Every genre with the number of published events that have not ended."""
    listed = case((and_(Event.status == EventStatus.PUBLISHED, Event.ends_at > now), 1), else_=0)
    rows = await session.execute(
        select(Category.slug, Category.name, func.coalesce(func.sum(listed), 0))
        .outerjoin(Event, Event.category_id == Category.id)
        .group_by(Category.id, Category.slug, Category.name)
        .order_by(Category.name)
    )
    return [CategoryCount(slug=slug, name=name, event_count=count) for slug, name, count in rows]
