"""What organizers and admins do to the catalogue. Every change is audited and touches the
"catalog" cache namespace, which is invalidated when the transaction commits."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts.models import Role, User
from boxoffice.audit import service as audit
from boxoffice.catalog import search, zones
from boxoffice.catalog.errors import (
    CategoryExists,
    EventCancelled,
    EventHasSales,
    EventNotFound,
    TicketTypeHasSales,
    TicketTypeNotFound,
)
from boxoffice.catalog.models import Category, Event, EventStatus, TicketType
from boxoffice.catalog.schemas import (
    AvailabilityChange,
    CategoryCreate,
    EventCreate,
    EventFields,
    EventPatch,
    TicketTypeCreate,
    TicketTypeUpdate,
)
from boxoffice.db import touch
from boxoffice.errors import ValidationFailed
from boxoffice.inventory import service as inventory
from boxoffice.validation import PageParams, validate

CATALOG = "catalog"  # the cache namespace of everything the public reads
MAX_TIERS = 20


async def create_category(
    session: AsyncSession, *, actor: User, data: CategoryCreate, now: datetime
) -> Category:
    if await session.scalar(select(Category.id).where(Category.slug == data.slug)):
        raise CategoryExists(f"The category {data.slug!r} exists already.")
    category = Category(slug=data.slug, name=data.name, created_at=now)
    session.add(category)
    try:
        await session.flush()
    except IntegrityError as exc:  # created concurrently
        raise CategoryExists(f"The category {data.slug!r} exists already.") from exc
    await _audit(
        session, actor, "category.created", "category", category.id, None, data.model_dump(), now
    )
    touch(session, CATALOG)
    return category


async def create_event(
    session: AsyncSession, *, organizer: User, data: EventCreate, now: datetime
) -> Event:
    event = Event(organizer_id=organizer.id, created_at=now, on_sale=True)
    await _apply_fields(session, event, data)
    event.updated_at = now
    session.add(event)
    await session.flush()
    for position, tier in enumerate(data.ticket_types):
        await _add_tier(session, event, tier, position=position, now=now)
    await _audit(
        session, organizer, "event.created", "event", event.id, None, _snapshot(event), now
    )
    touch(session, CATALOG)
    return event


async def get_managed_event(
    session: AsyncSession, *, event_id: uuid.UUID, manager: User, for_update: bool = False
) -> Event:
    """The event if the caller may manage it: its organizer, or an admin. Others: 404."""
    query = select(Event).where(Event.id == event_id)
    if manager.role != Role.ADMIN:
        query = query.where(Event.organizer_id == manager.id)
    if for_update:
        # FOR NO KEY UPDATE: it still queues other editors, but not the KEY SHARE lock that
        # a new hold's foreign key takes on the event, or a hold holding a shard would wait
        # for us while we wait for its shard (a deadlock).
        query = query.with_for_update(key_share=True)
    event = await session.scalar(query)
    if event is None:
        raise EventNotFound()
    return event


async def list_managed_events(
    session: AsyncSession, *, manager: User, page: PageParams, status: EventStatus | None = None
) -> tuple[Sequence[uuid.UUID], int]:
    query = select(Event.id)
    if manager.role != Role.ADMIN:
        query = query.where(Event.organizer_id == manager.id)
    if status is not None:
        query = query.where(Event.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    ids = await session.scalars(
        query.order_by(Event.starts_at.desc(), Event.id).offset(page.offset).limit(page.limit)
    )
    return ids.all(), total or 0


async def replace_event(
    session: AsyncSession, *, event_id: uuid.UUID, manager: User, data: EventFields, now: datetime
) -> Event:
    event = await _editable(session, event_id, manager)
    return await _change(session, event, manager, data, now)


async def patch_event(
    session: AsyncSession, *, event_id: uuid.UUID, manager: User, data: EventPatch, now: datetime
) -> Event:
    event = await _editable(session, event_id, manager)
    current = event_fields(event, await _category_slug(session, event))
    changes = data.model_dump(exclude_unset=True, mode="json")
    if changes.get("venue") is not None:  # an explicit null is refused by validate() below
        changes["venue"] = {**current["venue"], **changes["venue"]}
    merged = validate(EventFields, {**current, **changes})
    return await _change(session, event, manager, merged, now)


async def change_availability(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    manager: User,
    data: AvailabilityChange,
    now: datetime,
) -> Event:
    event = await _editable(session, event_id, manager)
    before = {"on_sale": event.on_sale, "capacities": {}}
    after: dict[str, Any] = {"on_sale": event.on_sale, "capacities": {}}
    tiers = {tier.id: tier for tier in await _tiers(session, event.id)}
    for change in sorted(data.ticket_types, key=lambda c: c.id):  # shard locks in id order
        tier = tiers.get(change.id)
        if tier is None:
            raise TicketTypeNotFound.of_event(change.id)
        before["capacities"][str(tier.id)] = tier.capacity
        await inventory.resize(session, ticket_type_id=tier.id, capacity=change.capacity)
        tier.capacity = change.capacity
        after["capacities"][str(tier.id)] = change.capacity
    if data.on_sale is not None:
        event.on_sale = after["on_sale"] = data.on_sale
    event.updated_at = now
    await _audit(
        session, manager, "event.availability_changed", "event", event.id, before, after, now
    )
    touch(session, CATALOG)
    return event


async def delete_event(
    session: AsyncSession, *, event_id: uuid.UUID, manager: User, now: datetime
) -> None:
    """Only an event that never sold a seat can go; any other is cancelled instead."""
    event = await get_managed_event(session, event_id=event_id, manager=manager, for_update=True)
    tiers = await _tiers(session, event.id)
    await inventory.lock_stock(session, [tier.id for tier in tiers])
    if await inventory.has_sold_or_held(session, [tier.id for tier in tiers]):
        raise EventHasSales("Seats of this event were sold or are held; cancel it instead.")
    snapshot = _snapshot(event)
    for tier in tiers:
        await session.delete(tier)
    await session.delete(event)
    await _audit(session, manager, "event.deleted", "event", event_id, snapshot, None, now)
    touch(session, CATALOG)


async def mark_cancelled(
    session: AsyncSession, *, event_id: uuid.UUID, manager: User, now: datetime
) -> tuple[Event, bool]:
    """Set the event cancelled (hidden from the public at once); False if it already was.
    Its bookings are the selling side's to settle (orders.service.cancel_event)."""
    event = await get_managed_event(session, event_id=event_id, manager=manager, for_update=True)
    if event.status == EventStatus.CANCELLED:
        return event, False
    before = _snapshot(event)
    event.status = EventStatus.CANCELLED
    event.updated_at = now
    await _audit(
        session, manager, "event.cancelled", "event", event.id, before, _snapshot(event), now
    )
    touch(session, CATALOG)
    return event, True


async def add_ticket_type(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    manager: User,
    data: TicketTypeCreate,
    now: datetime,
) -> TicketType:
    event = await _editable(session, event_id, manager)
    count = len(await _tiers(session, event.id))
    if count >= MAX_TIERS:
        raise ValidationFailed.field(
            "ticket_types", f"an event has at most {MAX_TIERS} ticket types"
        )
    _check_tier_window(event, data.sales_start, data.sales_end)
    tier = await _add_tier(session, event, data, position=count, now=now)
    event.updated_at = now
    await _audit(
        session,
        manager,
        "ticket_type.created",
        "ticket_type",
        tier.id,
        None,
        _tier_snapshot(tier),
        now,
    )
    touch(session, CATALOG)
    return tier


async def update_ticket_type(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    ticket_type_id: uuid.UUID,
    manager: User,
    data: TicketTypeUpdate,
    now: datetime,
) -> TicketType:
    event = await _editable(session, event_id, manager)
    tier = await _tier_of(session, event, ticket_type_id)
    before = _tier_snapshot(tier)
    changes = data.model_dump(exclude_unset=True)
    for field in ("name", "price", "capacity", "max_per_order", "shards", "sort_order"):
        if field in changes and changes[field] is None:
            raise ValidationFailed.field(field, "cannot be null")
    sales_start = changes.get("sales_start", tier.sales_start)
    sales_end = changes.get("sales_end", tier.sales_end)
    if sales_start and sales_end and sales_end <= sales_start:
        raise ValidationFailed.field("sales_end", "sales_end must be after sales_start")
    _check_tier_window(event, sales_start, sales_end)
    if "capacity" in changes:
        await inventory.resize(session, ticket_type_id=tier.id, capacity=changes["capacity"])
        tier.capacity = changes["capacity"]
    if "shards" in changes:
        await inventory.reshard(session, ticket_type_id=tier.id, shards=changes["shards"])
    if "price" in changes:
        tier.price_cents = changes["price"]
    for field in ("name", "max_per_order", "sales_start", "sales_end", "sort_order"):
        if field in changes:
            setattr(tier, field, changes[field])
    event.updated_at = now
    await _audit(
        session,
        manager,
        "ticket_type.updated",
        "ticket_type",
        tier.id,
        before,
        _tier_snapshot(tier),
        now,
    )
    touch(session, CATALOG)
    return tier


async def delete_ticket_type(
    session: AsyncSession,
    *,
    event_id: uuid.UUID,
    ticket_type_id: uuid.UUID,
    manager: User,
    now: datetime,
) -> None:
    event = await _editable(session, event_id, manager)
    tier = await _tier_of(session, event, ticket_type_id)
    await inventory.lock_stock(session, [tier.id])
    if await inventory.has_sold_or_held(session, [tier.id]):
        raise TicketTypeHasSales("Seats of this ticket type were sold or are held.")
    snapshot = _tier_snapshot(tier)
    await inventory.remove_stock(session, ticket_type_id=tier.id)
    await session.delete(tier)
    event.updated_at = now
    await _audit(
        session, manager, "ticket_type.deleted", "ticket_type", ticket_type_id, snapshot, None, now
    )
    touch(session, CATALOG)


async def tiers_of(session: AsyncSession, event_ids: Sequence[uuid.UUID]) -> list[TicketType]:
    if not event_ids:
        return []
    return list(await session.scalars(_TIERS_OF, {"ids": list(event_ids)}))


_TIERS_OF = (  # built once: a page of events reads it on every cache miss
    select(TicketType)
    .where(TicketType.event_id.in_(bindparam("ids", expanding=True)))
    .order_by(TicketType.sort_order, TicketType.created_at, TicketType.id)
)


# Helpers


async def _editable(session: AsyncSession, event_id: uuid.UUID, manager: User) -> Event:
    event = await get_managed_event(session, event_id=event_id, manager=manager, for_update=True)
    if event.status == EventStatus.CANCELLED:
        raise EventCancelled()
    return event


async def _change(
    session: AsyncSession, event: Event, manager: User, data: EventFields, now: datetime
) -> Event:
    before = _snapshot(event)
    if event.status == EventStatus.PUBLISHED and data.status == EventStatus.DRAFT:
        tiers = await _tiers(session, event.id)
        if await inventory.has_sold_or_held(session, [tier.id for tier in tiers]):
            raise EventHasSales("An event with sold or held seats cannot go back to draft.")
    await _apply_fields(session, event, data)
    for tier in await _tiers(session, event.id):
        _check_tier_window(event, tier.sales_start, tier.sales_end)
    event.updated_at = now
    await _audit(
        session, manager, "event.updated", "event", event.id, before, _snapshot(event), now
    )
    touch(session, CATALOG)
    return event


async def _apply_fields(session: AsyncSession, event: Event, data: EventFields) -> None:
    category = await _category(session, data.genre)
    event.title = data.title
    event.artists = list(data.artists)
    event.category_id = category.id if category else None
    event.description = data.description
    event.venue_name = data.venue.name
    event.venue_address = data.venue.address
    event.city = data.venue.city
    event.country = data.venue.country
    event.latitude = data.venue.lat
    event.longitude = data.venue.lng
    event.timezone = data.timezone or zones.default_timezone(data.venue.country)
    event.starts_at = data.starts_at
    assert data.ends_at is not None  # EventFields defaults it
    event.ends_at = data.ends_at
    event.sales_start = data.sales_start
    event.sales_end = data.sales_end
    event.status = data.status
    event.currency = data.currency
    event.image_url = str(data.image_url) if data.image_url else None
    event.max_tickets_per_user = data.max_tickets_per_user
    event.cancellation_deadline_hours = data.cancellation_deadline_hours
    search.index_fields(event, category)


async def _category(session: AsyncSession, slug: str | None) -> Category | None:
    if slug is None:
        return None
    category = await session.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise ValidationFailed.field("genre", f"no category {slug!r}; see GET /categories")
    return category


async def _category_slug(session: AsyncSession, event: Event) -> str | None:
    if event.category_id is None:
        return None
    return await session.scalar(select(Category.slug).where(Category.id == event.category_id))


async def _add_tier(
    session: AsyncSession, event: Event, data: TicketTypeCreate, *, position: int, now: datetime
) -> TicketType:
    tier = TicketType(
        event_id=event.id,
        name=data.name,
        price_cents=data.price,
        capacity=data.capacity,
        max_per_order=data.max_per_order,
        sales_start=data.sales_start,
        sales_end=data.sales_end,
        sort_order=position if data.sort_order is None else data.sort_order,
        created_at=now,
    )
    session.add(tier)
    await session.flush()
    inventory.add_stock(session, ticket_type_id=tier.id, capacity=data.capacity, shards=data.shards)
    return tier


def _check_tier_window(event: Event, start: datetime | None, end: datetime | None) -> None:
    if end is not None and end > event.ends_at:
        raise ValidationFailed.field("sales_end", "a tier's sales must end no later than the event")
    if start is not None and start >= event.ends_at:
        raise ValidationFailed.field(
            "sales_start", "a tier's sales must start before the event ends"
        )


async def _tiers(session: AsyncSession, event_id: uuid.UUID) -> list[TicketType]:
    return await tiers_of(session, [event_id])


async def _tier_of(session: AsyncSession, event: Event, ticket_type_id: uuid.UUID) -> TicketType:
    tier = await session.scalar(
        select(TicketType).where(TicketType.id == ticket_type_id, TicketType.event_id == event.id)
    )
    if tier is None:
        raise TicketTypeNotFound()
    return tier


def event_fields(event: Event, genre: str | None) -> dict[str, Any]:
    """The event's own fields, shaped as an EventFields body: a PATCH is merged onto it,
    the audit log and the API's EventRead are built from it."""
    return {
        "title": event.title,
        "artists": event.artists,
        "genre": genre,
        "description": event.description,
        "venue": {
            "name": event.venue_name,
            "address": event.venue_address,
            "city": event.city,
            "country": event.country,
            "lat": event.latitude,
            "lng": event.longitude,
        },
        "timezone": event.timezone,
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "sales_start": event.sales_start,
        "sales_end": event.sales_end,
        "status": event.status,
        "currency": event.currency,
        "image_url": event.image_url,
        "max_tickets_per_user": event.max_tickets_per_user,
        "cancellation_deadline_hours": event.cancellation_deadline_hours,
    }


def _snapshot(event: Event) -> dict[str, Any]:
    fields = event_fields(event, None)
    del fields["genre"]
    fields["category_id"] = str(event.category_id) if event.category_id else None
    fields["on_sale"] = event.on_sale
    return _jsonable(fields)


def _tier_snapshot(tier: TicketType) -> dict[str, Any]:
    return _jsonable(
        {
            "event_id": tier.event_id,
            "name": tier.name,
            "price_cents": tier.price_cents,
            "capacity": tier.capacity,
            "max_per_order": tier.max_per_order,
            "sales_start": tier.sales_start,
            "sales_end": tier.sales_end,
            "sort_order": tier.sort_order,
        }
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


async def _audit(
    session: AsyncSession,
    actor: User,
    action: str,
    target_type: str,
    target_id: uuid.UUID,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
) -> None:
    await audit.record(
        session,
        actor_id=actor.id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
        now=now,
    )
