"""The per-person ticket limit under concurrency (ARCHITECTURE §5.7, API.md POST /holds):
one fan firing many holds at once must not hold more than the event allows."""

import asyncio
from collections import Counter
from pathlib import Path

from boxoffice.app import create_app
from boxoffice.db import Database
from tests.concurrency.helpers import (
    API,
    active_holds,
    drifts,
    hold_body,
    signed_in_fans,
    signing_settings,
    stock_of,
)
from tests.conftest import make_client
from tests.orders.helpers import free_event

LIMIT = 10
EACH = 4  # two holds fit under the limit, a third does not
TABS = 20


async def test_one_fan_holding_from_many_tabs_at_once_stays_within_the_limit(
    database_url: str, tmp_path: Path, committing_db: Database
) -> None:
    event, (tier,) = await free_event(
        committing_db, capacity=100, tiers=1, max_tickets_per_user=LIMIT
    )
    settings = signing_settings(database_url, tmp_path)
    (fan,) = await signed_in_fans(committing_db, settings, 1)
    body = hold_body(event.id, {tier: EACH})

    async with make_client(create_app(settings, db=committing_db)) as client:
        responses = await asyncio.gather(
            *(client.post(f"{API}/holds", json=body, headers=fan) for _ in range(TABS))
        )

    statuses = Counter(r.status_code for r in responses)
    refused = {r.json()["code"] for r in responses if r.status_code != 201}
    assert refused <= {"ticket_limit_exceeded"}, refused
    held = sum(h.quantity for h in await active_holds(committing_db, event.id))
    assert held <= LIMIT, (statuses, f"{held} seats held by one fan; the limit is {LIMIT}")
    assert statuses == {201: LIMIT // EACH, 409: TABS - LIMIT // EACH}, statuses
    assert await stock_of(committing_db, tier) == (100, 0, EACH * (LIMIT // EACH), 1)
    assert await drifts(committing_db) == []
