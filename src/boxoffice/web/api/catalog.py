"""The public catalogue: events, their tiers, genres. Served from the cache (invalidated on
every organizer change, at most a couple of seconds stale on availability)."""

import uuid
from typing import Annotated

from fastapi import Query, Response

from boxoffice.analytics.models import InteractionKind
from boxoffice.catalog import queries
from boxoffice.catalog.schemas import CategoryCount, EventFilters, EventRead, TicketTypeRead
from boxoffice.catalog.service import CATALOG
from boxoffice.validation import Page
from boxoffice.web.api import api_router
from boxoffice.web.cache import cached_json
from boxoffice.web.deps import CacheDep, Clock, DbDep, RecorderDep, SettingsDep, ViewerId
from boxoffice.web.errors import problems

router = api_router("catalogue")


@router.get("/events", response_model=Page[EventRead])
async def list_events(
    filters: Annotated[EventFilters, Query()],
    db: DbDep,
    cache: CacheDep,
    settings: SettingsDep,
    recorder: RecorderDep,
    viewer: ViewerId,
    now: Clock,
) -> Response:
    async def produce() -> Page[EventRead]:
        async with db.read_transaction() as session:
            events, total = await queries.search_events(session, filters=filters, now=now)
        return Page(items=events, page=filters.page, limit=filters.limit, total=total)

    key = "events?" + filters.model_dump_json()
    response = await cached_json(cache, CATALOG, key, produce, ttl=settings.catalog_cache_ttl)
    used = filters.model_dump(mode="json", exclude_defaults=True)
    recorder.record(InteractionKind.SEARCH, user_id=viewer, data=used)
    return response


@router.get("/events/{event_id}", response_model=EventRead, responses=problems(404))
async def read_event(
    event_id: uuid.UUID,
    db: DbDep,
    cache: CacheDep,
    settings: SettingsDep,
    recorder: RecorderDep,
    viewer: ViewerId,
    now: Clock,
) -> Response:
    async def produce() -> EventRead:
        async with db.read_transaction() as session:
            return await queries.get_public_event(session, event_id=event_id, now=now)

    response = await cached_json(
        cache, CATALOG, f"event:{event_id}", produce, ttl=settings.catalog_cache_ttl
    )
    recorder.record(InteractionKind.VIEW, event_id=event_id, user_id=viewer)
    return response


@router.get(
    "/events/{event_id}/ticket-types",
    response_model=list[TicketTypeRead],
    responses=problems(404),
)
async def read_ticket_types(
    event_id: uuid.UUID, db: DbDep, cache: CacheDep, settings: SettingsDep, now: Clock
) -> Response:
    async def produce() -> list[TicketTypeRead]:
        async with db.read_transaction() as session:
            event = await queries.get_public_event(session, event_id=event_id, now=now)
        return event.ticket_types

    key = f"event:{event_id}:ticket-types"
    return await cached_json(cache, CATALOG, key, produce, ttl=settings.catalog_cache_ttl)


@router.get("/categories", response_model=list[CategoryCount])
async def list_categories(
    db: DbDep, cache: CacheDep, settings: SettingsDep, now: Clock
) -> Response:
    async def produce() -> list[CategoryCount]:
        async with db.read_transaction() as session:
            return await queries.category_counts(session, now=now)

    return await cached_json(cache, CATALOG, "categories", produce, ttl=settings.catalog_cache_ttl)
