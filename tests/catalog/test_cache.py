"""The public catalogue cache: an organizer's change shows at once, in one process and
across processes sharing Redis; the TTL bounds what no invalidation covers (seats taken);
and MemoryCache's own guarantees."""

import uuid
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import ValidationError
from sqlalchemy import update

from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import Role
from boxoffice.app import create_app
from boxoffice.cache import MemoryCache, RedisCache
from boxoffice.config import Settings
from boxoffice.db import Database, utcnow
from boxoffice.inventory.models import TicketStock
from tests.conftest import make_client, make_settings
from tests.factories import create_user, event_body

API = "/api/v1"
NS = "catalog"


async def organizer_headers(db: Database, settings: Settings) -> dict[str, str]:
    """A new organizer's bearer header: the sign-in session POST /login would open."""
    user = await create_user(db, role=Role.ORGANIZER)
    async with db.transaction() as session:
        pair = await accounts.open_session(session, settings=settings, user=user, now=utcnow())
    return {"Authorization": f"Bearer {pair.access_token}"}


async def new_event(client: AsyncClient, headers: dict[str, str], **overrides: Any) -> dict:
    response = await client.post(
        f"{API}/admin/events", headers=headers, json=event_body(**overrides)
    )
    assert response.status_code == 201, response.text
    return response.json()


async def hold_behind_the_caches_back(db: Database, tier_id: str, seats: int) -> None:
    """Seats taken the way a sale takes them: no organizer change, so no invalidation."""
    async with db.transaction() as session:
        await session.execute(
            update(TicketStock)
            .where(TicketStock.ticket_type_id == uuid.UUID(tier_id))
            .values(held=TicketStock.held + seats)
        )


async def public(client: AsyncClient, path: str) -> Any:
    response = await client.get(f"{API}{path}")
    assert response.status_code == 200, response.text
    return response.json()


def titles(page: dict) -> list[str]:
    return [event["title"] for event in page["items"]]


@pytest.fixture
async def headers(db: Database, settings: Settings) -> dict[str, str]:
    return await organizer_headers(db, settings)


# In one process


async def test_public_reads_are_served_from_the_cache(
    client: AsyncClient, db: Database, headers: dict[str, str]
) -> None:
    event = await new_event(client, headers)
    page, listing = f"/events/{event['id']}", "/events"
    tiers = f"/events/{event['id']}/ticket-types"
    assert (await public(client, page))["available"] == 120
    assert (await public(client, listing))["items"][0]["available"] == 120
    assert (await public(client, tiers))[0]["available"] == 100
    await hold_behind_the_caches_back(db, event["ticket_types"][0]["id"], 5)
    assert (await public(client, page))["available"] == 120
    assert (await public(client, listing))["items"][0]["available"] == 120
    assert (await public(client, tiers))[0]["available"] == 100


async def test_an_edit_shows_at_once_on_the_event_page_and_in_the_list(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    event = await new_event(client, headers)
    assert (await public(client, f"/events/{event['id']}"))["title"] == "Sauti Sol Live"
    assert titles(await public(client, "/events?q=sauti")) == ["Sauti Sol Live"]
    response = await client.patch(
        f"{API}/admin/events/{event['id']}", headers=headers, json={"title": "Sauti Sol Unplugged"}
    )
    assert response.status_code == 200
    assert (await public(client, f"/events/{event['id']}"))["title"] == "Sauti Sol Unplugged"
    assert titles(await public(client, "/events?q=sauti")) == ["Sauti Sol Unplugged"]
    assert titles(await public(client, "/events?q=unplugged")) == ["Sauti Sol Unplugged"]


async def test_a_replacement_shows_at_once(client: AsyncClient, headers: dict[str, str]) -> None:
    event = await new_event(client, headers)
    await public(client, f"/events/{event['id']}")
    body = {**event_body(title="Moved"), "status": "published"}
    del body["ticket_types"]
    response = await client.put(f"{API}/admin/events/{event['id']}", headers=headers, json=body)
    assert response.status_code == 200, response.text
    assert (await public(client, f"/events/{event['id']}"))["title"] == "Moved"


async def test_unpublishing_and_deleting_hide_the_event_at_once(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    event = await new_event(client, headers)
    path = f"{API}/admin/events/{event['id']}"
    await public(client, f"/events/{event['id']}")
    assert len((await public(client, "/events"))["items"]) == 1
    await client.patch(path, headers=headers, json={"status": "draft"})
    assert (await client.get(f"{API}/events/{event['id']}")).status_code == 404
    assert (await public(client, "/events"))["items"] == []
    await client.patch(path, headers=headers, json={"status": "published"})
    assert (await public(client, f"/events/{event['id']}"))["status"] == "published"
    assert (await client.delete(path, headers=headers)).status_code == 204
    assert (await client.get(f"{API}/events/{event['id']}")).status_code == 404
    assert (await public(client, "/events"))["items"] == []


async def test_an_availability_change_shows_at_once(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    event = await new_event(client, headers)
    page, tiers = f"/events/{event['id']}", f"/events/{event['id']}/ticket-types"
    tier_id = event["ticket_types"][0]["id"]
    for path in (page, tiers, "/events"):
        await public(client, path)
    response = await client.patch(
        f"{API}/admin/events/{event['id']}/availability",
        headers=headers,
        json={"ticket_types": [{"id": tier_id, "capacity": 40}], "on_sale": False},
    )
    assert response.status_code == 200
    shown = await public(client, page)
    assert (shown["available"], shown["ticket_types"][0]["status"]) == (60, "paused")
    assert (await public(client, tiers))[0]["available"] == 40
    assert (await public(client, "/events"))["items"][0]["available"] == 60
    await client.patch(
        f"{API}/admin/events/{event['id']}/availability", headers=headers, json={"on_sale": True}
    )
    assert (await public(client, page))["ticket_types"][0]["status"] == "on_sale"


async def test_tier_changes_show_at_once(client: AsyncClient, headers: dict[str, str]) -> None:
    event = await new_event(client, headers)
    page, tiers = f"/events/{event['id']}", f"/events/{event['id']}/ticket-types"
    admin_tiers = f"{API}/admin/events/{event['id']}/ticket-types"
    await public(client, page)
    await public(client, tiers)

    added = await client.post(
        admin_tiers, headers=headers, json={"name": "Balcony", "price": 90000, "capacity": 10}
    )
    assert added.status_code == 201
    assert [t["name"] for t in await public(client, tiers)] == ["Regular", "VIP", "Balcony"]
    assert (await public(client, page))["available"] == 130

    balcony = added.json()["id"]
    await client.patch(f"{admin_tiers}/{balcony}", headers=headers, json={"price": 80000})
    assert (await public(client, tiers))[2]["price"]["amount"] == 80000
    assert (await public(client, page))["ticket_types"][2]["price"]["amount"] == 80000

    assert (await client.delete(f"{admin_tiers}/{balcony}", headers=headers)).status_code == 204
    assert [t["name"] for t in await public(client, tiers)] == ["Regular", "VIP"]
    assert (await public(client, page))["available"] == 120


async def test_a_new_category_shows_at_once(
    app: FastAPI, client: AsyncClient, db: Database
) -> None:
    admin = await create_user(db, role=Role.ADMIN)
    async with db.transaction() as session:
        pair = await accounts.open_session(
            session, settings=app.state.settings, user=admin, now=utcnow()
        )
    assert await public(client, "/categories") == []
    response = await client.post(
        f"{API}/admin/categories",
        headers={"Authorization": f"Bearer {pair.access_token}"},
        json={"slug": "gospel", "name": "Gospel"},
    )
    assert response.status_code == 201
    assert await public(client, "/categories") == [
        {"slug": "gospel", "name": "Gospel", "event_count": 0}
    ]


# Staleness is bounded by the TTL


async def test_a_change_no_one_announced_shows_once_the_ttl_has_passed(
    database_url: str, tmp_path, db: Database
) -> None:
    settings = make_settings(database_url, tmp_path, catalog_cache_ttl=0.5)
    async with make_client(create_app(settings, db=db)) as client:
        event = await new_event(client, await organizer_headers(db, settings))
        page = f"/events/{event['id']}"
        assert (await public(client, page))["available"] == 120
        await hold_behind_the_caches_back(db, event["ticket_types"][0]["id"], 5)
        assert (await public(client, page))["available"] == 120  # stale within the TTL
        await anyio.sleep(0.6)
        assert (await public(client, page))["available"] == 115


async def test_a_zero_ttl_turns_the_cache_off(database_url: str, tmp_path, db: Database) -> None:
    settings = make_settings(database_url, tmp_path, catalog_cache_ttl=0)
    async with make_client(create_app(settings, db=db)) as client:
        event = await new_event(client, await organizer_headers(db, settings))
        assert (await public(client, f"/events/{event['id']}"))["available"] == 120
        await hold_behind_the_caches_back(db, event["ticket_types"][0]["id"], 5)
        assert (await public(client, f"/events/{event['id']}"))["available"] == 115


def test_the_ttl_cannot_be_set_above_two_seconds(tmp_path) -> None:
    with pytest.raises(ValidationError, match="catalog_cache_ttl"):
        make_settings("sqlite+aiosqlite:///unused.db", tmp_path, catalog_cache_ttl=2.5)


# Across processes, through Redis


@pytest.mark.services
async def test_a_change_through_one_instance_shows_at_once_through_another(
    database_url: str, tmp_path, db: Database, redis_service: tuple[str, str]
) -> None:
    redis_url, prefix = redis_service
    settings = make_settings(
        database_url, tmp_path, redis_url=redis_url, redis_prefix=f"{prefix}{uuid.uuid4().hex[:6]}:"
    )
    reader = create_app(settings, db=db)
    writer = create_app(settings, db=db)
    # Both apps share the test's `db`, whose commits are announced to the app built last:
    # the writer invalidates through its own Redis client, as a separate process would.
    assert db.on_commit == writer.state.cache.invalidate
    headers = await organizer_headers(db, settings)
    try:
        async with make_client(reader) as at_b, make_client(writer) as at_a:
            event = await new_event(at_a, headers)
            page, tiers = f"/events/{event['id']}", f"/events/{event['id']}/ticket-types"
            assert (await public(at_b, page))["available"] == 120
            assert titles(await public(at_b, "/events")) == ["Sauti Sol Live"]
            await public(at_b, tiers)

            await hold_behind_the_caches_back(db, event["ticket_types"][0]["id"], 5)
            assert (await public(at_b, page))["available"] == 120  # cached by B …
            assert (await public(at_a, page))["available"] == 120  # … in Redis, shared with A

            admin = f"{API}/admin/events/{event['id']}"
            await at_a.patch(admin, headers=headers, json={"title": "Renamed through A"})
            shown = await public(at_b, page)
            assert (shown["title"], shown["available"]) == ("Renamed through A", 115)
            assert titles(await public(at_b, "/events")) == ["Renamed through A"]

            tier_id = event["ticket_types"][1]["id"]
            await at_a.patch(
                f"{admin}/availability",
                headers=headers,
                json={"ticket_types": [{"id": tier_id, "capacity": 50}]},
            )
            assert (await public(at_b, page))["ticket_types"][1]["available"] == 50

            await at_a.post(
                f"{admin}/ticket-types",
                headers=headers,
                json={"name": "Balcony", "price": 1000, "capacity": 5},
            )
            assert [t["name"] for t in await public(at_b, tiers)] == ["Regular", "VIP", "Balcony"]
    finally:
        for app in (reader, writer):
            await app.state.cache.close()


@pytest.mark.services
async def test_redis_never_serves_a_value_computed_before_an_invalidation(
    redis_service: tuple[str, str],
) -> None:
    redis_url, prefix = redis_service
    cache = RedisCache(redis_url, f"{prefix}{uuid.uuid4().hex[:6]}:")
    try:
        token, value = await cache.get(NS, "event:1")
        assert value is None
        await cache.invalidate({NS})
        await cache.set(NS, "event:1", token, b"before", ttl=60)
        assert (await cache.get(NS, "event:1"))[1] is None
        token, _ = await cache.get(NS, "event:1")
        await cache.set(NS, "event:1", token, b"after", ttl=60)
        assert (await cache.get(NS, "event:1"))[1] == b"after"
    finally:
        await cache.close()


# MemoryCache


async def test_a_stored_value_is_served_until_its_namespace_is_invalidated() -> None:
    cache = MemoryCache()
    token, value = await cache.get(NS, "k")
    assert value is None
    await cache.set(NS, "k", token, b"v", ttl=60)
    assert await cache.get(NS, "k") == (token, b"v")
    await cache.invalidate({NS})
    new_token, value = await cache.get(NS, "k")
    assert (value, new_token != token) == (None, True)


async def test_a_value_read_before_an_invalidation_is_never_served_after_it() -> None:
    cache = MemoryCache()
    token, _ = await cache.get(NS, "k")  # a reader starts computing…
    await cache.invalidate({NS})  # …an organizer's change commits…
    await cache.set(NS, "k", token, b"stale", ttl=60)  # …and the reader stores its result
    assert (await cache.get(NS, "k"))[1] is None


async def test_invalidating_one_namespace_leaves_the_others() -> None:
    cache = MemoryCache()
    for namespace in (NS, "other"):
        token, _ = await cache.get(namespace, "k")
        await cache.set(namespace, "k", token, namespace.encode(), ttl=60)
    await cache.invalidate({NS})
    assert (await cache.get(NS, "k"))[1] is None
    assert (await cache.get("other", "k"))[1] == b"other"


async def test_an_entry_expires_after_its_ttl() -> None:
    cache = MemoryCache()
    token, _ = await cache.get(NS, "short")
    await cache.set(NS, "short", token, b"v", ttl=0.05)
    await cache.set(NS, "long", token, b"v", ttl=60)
    assert (await cache.get(NS, "short"))[1] == b"v"
    await anyio.sleep(0.06)
    assert (await cache.get(NS, "short"))[1] is None
    assert (await cache.get(NS, "long"))[1] == b"v"


async def test_the_cache_holds_at_most_max_entries_dropping_the_oldest() -> None:
    cache = MemoryCache(max_entries=3)
    token, _ = await cache.get(NS, "k0")
    for n in range(5):
        await cache.set(NS, f"k{n}", token, b"v", ttl=60)
    served = [n for n in range(5) if (await cache.get(NS, f"k{n}"))[1] is not None]
    assert served == [2, 3, 4]


async def test_expired_entries_are_evicted_before_live_ones() -> None:
    cache = MemoryCache(max_entries=3)
    token, _ = await cache.get(NS, "k")
    await cache.set(NS, "old-live", token, b"v", ttl=60)
    await cache.set(NS, "expiring", token, b"v", ttl=0.01)
    await cache.set(NS, "live", token, b"v", ttl=60)
    await anyio.sleep(0.02)
    await cache.set(NS, "new", token, b"v", ttl=60)
    for key in ("old-live", "live", "new"):
        assert (await cache.get(NS, key))[1] == b"v", key
