"""Shared set-up for the selling tests: a free event, holding seats over HTTP."""

import uuid
from typing import Any

from httpx import AsyncClient

from boxoffice.accounts.models import Role
from boxoffice.catalog import service as catalog
from boxoffice.catalog.models import Event
from boxoffice.db import Database
from boxoffice.inventory import service as inventory
from tests.factories import create_user, make_event

API = "/api/v1"


async def free_event(
    db: Database, *, capacity: int = 50, tiers: int = 2, **overrides: Any
) -> tuple[Event, list[uuid.UUID]]:
    """A published event whose tiers cost nothing, and its tier ids in creation order."""
    organizer = await create_user(db, role=Role.ORGANIZER)
    overrides.setdefault(
        "ticket_types",
        [
            {"name": f"Tier {n}", "price": 0, "capacity": capacity, "max_per_order": 10}
            for n in range(tiers)
        ],
    )
    overrides.setdefault("max_tickets_per_user", 20)
    async with db.transaction() as session:
        event = await make_event(session, organizer=organizer, **overrides)
        ids = [tier.id for tier in await catalog.tiers_of(session, [event.id])]
    return event, ids


async def stock(db: Database, tier_id: uuid.UUID) -> inventory.Stock:
    """A tier's capacity, sold, held and available seats, summed over its shards."""
    async with db.read_transaction() as session:
        return (await inventory.stock_by_tier(session, [tier_id]))[tier_id]


async def hold(
    client: AsyncClient,
    headers: dict[str, str],
    event_id: uuid.UUID,
    quantities: dict[uuid.UUID, int],
    *,
    expect: int = 201,
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/holds",
        json={
            "event_id": str(event_id),
            "items": [
                {"ticket_type_id": str(tier), "quantity": quantity}
                for tier, quantity in quantities.items()
            ],
        },
        headers=headers,
    )
    assert response.status_code == expect, response.text
    return response.json()
