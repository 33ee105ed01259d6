"""Organizer and admin catalogue endpoints over HTTP: events, tiers, availability,
categories, ownership, audit, and the interactions public reads record."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, update

from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import Role, User
from boxoffice.analytics.models import Interaction, InteractionKind
from boxoffice.audit.models import AuditEntry
from boxoffice.catalog.models import Event, EventStatus
from boxoffice.db import Database, utcnow
from boxoffice.inventory import service as inventory
from boxoffice.inventory.models import TicketStock
from tests.factories import auth_headers, create_user, event_body, make_category

API = "/api/v1"
START = (utcnow() + timedelta(days=10)).replace(microsecond=0)


def at(hours: float) -> str:
    """An ISO time `hours` after START, the start of every event built with `body()`."""
    return (START + timedelta(hours=hours)).isoformat()


def body(**overrides: Any) -> dict[str, Any]:
    return event_body(**{"starts_at": at(0), **overrides})


def venue(**changes: Any) -> dict[str, Any]:
    return {**event_body()["venue"], **changes}


def tier(**overrides: Any) -> dict[str, Any]:
    return {"name": "Regular", "price": 150000, "capacity": 100, **overrides}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    return problem


def error_fields(response) -> set[str]:
    return {error["field"] for error in assert_problem(response, 422, "validation_error")["errors"]}


SignIn = Callable[..., Awaitable[tuple[User, dict[str, str]]]]


@pytest.fixture
def sign_in(app, db: Database) -> SignIn:
    """A new user of the role and their bearer header. It opens the sign-in session as
    POST /login does once the password checks out, skipping argon2 (tests stay fast)."""

    async def sign_in(role: Role = Role.ORGANIZER) -> tuple[User, dict[str, str]]:
        user = await create_user(db, role=role)
        async with db.transaction() as session:
            pair = await accounts.open_session(
                session, settings=app.state.settings, user=user, now=utcnow()
            )
        return user, {"Authorization": f"Bearer {pair.access_token}"}

    return sign_in


async def create_event(client: AsyncClient, headers: dict[str, str], **overrides: Any) -> dict:
    response = await client.post(f"{API}/admin/events", headers=headers, json=body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


async def set_stock(db: Database, tier_id: str, *, sold: int = 0, held: int = 0) -> None:
    """Seats sold or held, set straight on the tier's shards (selling is another issue)."""
    async with db.transaction() as session:
        await session.execute(
            update(TicketStock)
            .where(TicketStock.ticket_type_id == uuid.UUID(tier_id))
            .values(sold=sold, held=held)
        )


async def shards(db: Database, tier_id: str) -> list[TicketStock]:
    async with db.read_transaction() as session:
        return list(
            await session.scalars(
                select(TicketStock)
                .where(TicketStock.ticket_type_id == uuid.UUID(tier_id))
                .order_by(TicketStock.shard)
            )
        )


async def cancel_in_db(db: Database, event_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Event)
            .where(Event.id == uuid.UUID(event_id))
            .values(status=EventStatus.CANCELLED)
        )


# Creating


async def test_an_organizer_creates_an_event_with_its_tiers(
    client: AsyncClient, db: Database
) -> None:
    organizer = await create_user(db, role=Role.ORGANIZER)
    headers = await auth_headers(client, organizer)  # a real POST /login, once
    event = await create_event(client, headers)
    assert event["organizer_id"] == str(organizer.id)
    assert (event["status"], event["timezone"], event["currency"]) == (
        "published",
        "Africa/Nairobi",
        "KES",
    )
    assert [
        (t["name"], t["price"], t["capacity"], t["sold"], t["held"], t["available"], t["status"])
        for t in event["ticket_types"]
    ] == [
        ("Regular", {"amount": 150000, "currency": "KES"}, 100, 0, 0, 100, "on_sale"),
        ("VIP", {"amount": 500000, "currency": "KES"}, 20, 0, 0, 20, "on_sale"),
    ]
    assert (event["available"], event["sold_out"], event["capacity"]) == (120, False, 120)
    assert event["max_tickets_per_user"] == 10
    assert event["cancellation_deadline_hours"] == 48
    read = await client.get(f"{API}/admin/events/{event['id']}", headers=headers)
    assert read.json() == event


async def test_an_admin_creates_events_too(client: AsyncClient, sign_in: SignIn) -> None:
    admin, headers = await sign_in(Role.ADMIN)
    event = await create_event(client, headers, status="draft")
    assert (event["organizer_id"], event["status"]) == (str(admin.id), "draft")


@pytest.mark.parametrize(
    ("country", "currency", "timezone"),
    [("UG", "UGX", "Africa/Kampala"), ("US", "USD", "UTC"), ("ug", "UGX", "Africa/Kampala")],
)
async def test_the_timezone_defaults_from_the_country_when_it_has_one_zone(
    client: AsyncClient, country: str, currency: str, timezone: str, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(
        client, headers, venue=venue(city="Somewhere", country=country), currency=currency
    )
    assert (event["timezone"], event["venue"]["country"]) == (timezone, country.upper())


async def test_an_explicit_timezone_is_kept(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    event = await create_event(
        client, headers, venue=venue(country="US"), currency="USD", timezone="America/Chicago"
    )
    assert event["timezone"] == "America/Chicago"


async def test_ends_at_defaults_to_four_hours_after_the_start(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    assert datetime.fromisoformat(event["ends_at"]) == START + timedelta(hours=4)


async def test_a_lowercase_currency_code_is_accepted_in_upper_case(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers, currency="ugx")
    assert event["currency"] == "UGX"
    assert event["ticket_types"][0]["price"]["currency"] == "UGX"


async def test_the_genre_must_be_an_existing_category(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    async with db.transaction() as session:
        await make_category(session, "afro-pop", "Afro-pop")
    _, headers = await sign_in()
    event = await create_event(client, headers, genre="afro-pop")
    assert event["genre"] == {"slug": "afro-pop", "name": "Afro-pop"}
    unknown = await client.post(f"{API}/admin/events", headers=headers, json=body(genre="polka"))
    assert error_fields(unknown) == {"genre"}


async def test_attendees_cannot_create_events_and_strangers_must_sign_in(
    client: AsyncClient, db: Database
) -> None:
    headers = await auth_headers(client, await create_user(db, role=Role.ATTENDEE))
    assert_problem(
        await client.post(f"{API}/admin/events", headers=headers, json=body()), 403, "forbidden"
    )
    assert_problem(await client.post(f"{API}/admin/events", json=body()), 401, "unauthenticated")
    assert_problem(await client.get(f"{API}/admin/events", headers=headers), 403, "forbidden")


# Validation


INVALID_EVENTS = [
    ("ends_at_equal_to_start", {"ends_at": at(0)}, "ends_at"),
    ("ends_at_before_start", {"ends_at": at(-1)}, "ends_at"),
    ("sales_end_after_the_event", {"sales_end": at(5)}, "sales_end"),
    ("sales_end_at_sales_start", {"sales_start": at(-48), "sales_end": at(-48)}, "sales_end"),
    ("tier_sales_end_after_the_event", {"ticket_types": [tier(sales_end=at(5))]},
     "ticket_types[0].sales_end"),
    ("tier_sales_end_before_start",
     {"ticket_types": [tier(sales_start=at(-2), sales_end=at(-3))]}, "ticket_types[0].sales_end"),
    ("negative_price", {"ticket_types": [tier(price=-1)]}, "ticket_types[0].price"),
    ("fractional_price", {"ticket_types": [tier(price=1.5)]}, "ticket_types[0].price"),
    ("text_price", {"ticket_types": [tier(price="abc")]}, "ticket_types[0].price"),
    ("zero_capacity", {"ticket_types": [tier(capacity=0)]}, "ticket_types[0].capacity"),
    ("huge_capacity", {"ticket_types": [tier(capacity=1_000_001)]}, "ticket_types[0].capacity"),
    ("max_per_order_zero", {"ticket_types": [tier(max_per_order=0)]},
     "ticket_types[0].max_per_order"),
    ("unknown_currency", {"currency": "XYZ"}, "currency"),
    ("unknown_country", {"venue": venue(country="XX")}, "venue.country"),
    ("unknown_timezone", {"timezone": "Mars/Olympus"}, "timezone"),
    ("empty_title", {"title": ""}, "title"),
    ("blank_title", {"title": "   "}, "title"),
    ("long_title", {"title": "x" * 201}, "title"),
    ("numeric_title", {"title": 123}, "title"),
    ("long_description", {"description": "x" * 5001}, "description"),
    ("too_many_artists", {"artists": ["Artist"] * 21}, "artists"),
    ("latitude_out_of_range", {"venue": venue(lat=91)}, "venue.lat"),
    ("longitude_out_of_range", {"venue": venue(lng=-181)}, "venue.lng"),
    ("latitude_without_longitude", {"venue": venue(lng=None)}, "venue"),
    ("naive_start", {"starts_at": START.replace(tzinfo=None).isoformat()}, "starts_at"),
    ("javascript_image_url", {"image_url": "javascript:alert(1)"}, "image_url"),
    ("max_tickets_per_user_zero", {"max_tickets_per_user": 0}, "max_tickets_per_user"),
    ("max_tickets_per_user_101", {"max_tickets_per_user": 101}, "max_tickets_per_user"),
    ("twenty_one_tiers", {"ticket_types": [tier(name=f"T{n}") for n in range(21)]},
     "ticket_types"),
    ("status_cancelled", {"status": "cancelled"}, "status"),
    ("genre_not_a_slug", {"genre": "Hip Hop"}, "genre"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "field"),
    [case[1:] for case in INVALID_EVENTS],
    ids=[case[0] for case in INVALID_EVENTS],
)
async def test_creating_an_event_that_breaks_a_rule_names_the_field(
    client: AsyncClient, overrides: dict[str, Any], field: str, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    response = await client.post(f"{API}/admin/events", headers=headers, json=body(**overrides))
    assert error_fields(response) == {field}


async def test_creating_an_event_with_nothing_lists_every_required_field(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    response = await client.post(f"{API}/admin/events", headers=headers, json={})
    assert error_fields(response) == {"title", "starts_at", "venue", "currency"}


async def test_malformed_json_is_a_400(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    response = await client.post(
        f"{API}/admin/events",
        headers={**headers, "Content-Type": "application/json"},
        content=b'{"title": ',
    )
    assert_problem(response, 400, "malformed_json")


# Ownership


async def test_another_organizers_event_is_not_found_whatever_is_tried(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, owner = await sign_in()
    _, other = await sign_in()
    event = await create_event(client, owner)
    path, tier_id = f"{API}/admin/events/{event['id']}", event["ticket_types"][0]["id"]
    attempts = [
        client.get(path, headers=other),
        client.put(path, headers=other, json=body(title="Mine now")),
        client.patch(path, headers=other, json={"title": "Mine now"}),
        client.patch(
            f"{path}/availability",
            headers=other,
            json={"ticket_types": [{"id": tier_id, "capacity": 1}], "on_sale": False},
        ),
        client.post(f"{path}/ticket-types", headers=other, json=tier(name="Extra")),
        client.patch(f"{path}/ticket-types/{tier_id}", headers=other, json={"price": 0}),
        client.delete(f"{path}/ticket-types/{tier_id}", headers=other),
        client.delete(path, headers=other),
    ]
    for attempt in attempts:
        assert_problem(await attempt, 404, "not_found")
    assert (await client.get(path, headers=owner)).json() == event


async def test_an_admin_manages_any_organizers_event(client: AsyncClient, sign_in: SignIn) -> None:
    _, owner = await sign_in()
    _, admin = await sign_in(Role.ADMIN)
    event = await create_event(client, owner)
    path, tier_id = f"{API}/admin/events/{event['id']}", event["ticket_types"][0]["id"]
    assert (await client.get(path, headers=admin)).status_code == 200
    patched = await client.patch(path, headers=admin, json={"title": "Renamed by admin"})
    assert patched.json()["title"] == "Renamed by admin"
    availability = await client.patch(
        f"{path}/availability",
        headers=admin,
        json={"ticket_types": [{"id": tier_id, "capacity": 7}]},
    )
    assert availability.json()["ticket_types"][0]["capacity"] == 7
    added = await client.post(f"{path}/ticket-types", headers=admin, json=tier(name="Extra"))
    assert added.status_code == 201
    updated = await client.patch(f"{path}/ticket-types/{tier_id}", headers=admin, json={"price": 1})
    assert updated.json()["price"]["amount"] == 1
    assert (await client.delete(f"{path}/ticket-types/{tier_id}", headers=admin)).status_code == 204
    assert (await client.delete(path, headers=admin)).status_code == 204
    assert_problem(await client.get(path, headers=owner), 404, "not_found")


async def test_the_admin_list_holds_the_callers_events_drafts_included(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, mine = await sign_in()
    _, theirs = await sign_in()
    _, admin = await sign_in(Role.ADMIN)
    draft = await create_event(client, mine, status="draft", starts_at=at(48))
    published = await create_event(client, mine, starts_at=at(24))
    other = await create_event(client, theirs)

    listed = (await client.get(f"{API}/admin/events", headers=mine)).json()
    assert [e["id"] for e in listed["items"]] == [draft["id"], published["id"]]  # latest first
    assert (listed["page"], listed["limit"], listed["total"]) == (1, 20, 2)
    assert listed["items"][0]["ticket_types"][0]["sold"] == 0

    everything = (await client.get(f"{API}/admin/events", headers=admin)).json()
    assert {e["id"] for e in everything["items"]} == {draft["id"], published["id"], other["id"]}


async def test_the_admin_list_pages_and_filters_by_status(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    events = [
        await create_event(client, headers, status=status, starts_at=at(hours))
        for status, hours in (("draft", 3), ("published", 2), ("draft", 1))
    ]
    second = (await client.get(f"{API}/admin/events?limit=2&page=2", headers=headers)).json()
    assert ([e["id"] for e in second["items"]], second["total"]) == ([events[2]["id"]], 3)
    drafts = (await client.get(f"{API}/admin/events?status=draft", headers=headers)).json()
    assert [e["id"] for e in drafts["items"]] == [events[0]["id"], events[2]["id"]]
    assert drafts["total"] == 2
    for query in ("status=sold", "limit=0", "limit=101", "page=0"):
        response = await client.get(f"{API}/admin/events?{query}", headers=headers)
        assert error_fields(response) == {query.split("=")[0]}


# Updating


async def test_put_replaces_the_event_and_resets_what_it_leaves_out(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    async with db.transaction() as session:
        await make_category(session, "afro-pop")
    _, headers = await sign_in()
    event = await create_event(
        client,
        headers,
        genre="afro-pop",
        image_url="https://img.example.com/poster.png",
        max_tickets_per_user=4,
        cancellation_deadline_hours=12,
        timezone="Africa/Lagos",
        ends_at=at(6),
    )
    replacement = {
        "title": "Replaced",
        "starts_at": at(24),
        "venue": {"name": "Lugogo", "city": "Kampala", "country": "UG"},
        "currency": "UGX",
    }
    response = await client.put(
        f"{API}/admin/events/{event['id']}", headers=headers, json=replacement
    )
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert replaced["title"] == "Replaced"
    assert replaced["venue"] == {
        "name": "Lugogo",
        "address": None,
        "city": "Kampala",
        "country": "UG",
        "lat": None,
        "lng": None,
    }
    assert (replaced["artists"], replaced["description"], replaced["genre"]) == ([], "", None)
    assert (replaced["image_url"], replaced["max_tickets_per_user"]) == (None, 10)
    assert (replaced["cancellation_deadline_hours"], replaced["status"]) == (48, "draft")
    assert replaced["timezone"] == "Africa/Kampala"  # defaulted from the new country
    assert datetime.fromisoformat(replaced["ends_at"]) == START + timedelta(hours=28)
    assert [t["id"] for t in replaced["ticket_types"]] == [t["id"] for t in event["ticket_types"]]


async def test_put_needs_the_whole_event(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    response = await client.put(
        f"{API}/admin/events/{event['id']}", headers=headers, json={"title": "Only this"}
    )
    assert error_fields(response) == {"starts_at", "venue", "currency"}


async def test_patch_changes_only_what_is_sent(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    response = await client.patch(
        f"{API}/admin/events/{event['id']}", headers=headers, json={"venue": {"city": "Mombasa"}}
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["venue"] == {**event["venue"], "city": "Mombasa"}
    unchanged = {"venue", "updated_at"}
    assert {k: v for k, v in patched.items() if k not in unchanged} == {
        k: v for k, v in event.items() if k not in unchanged
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends_at": at(-1)}, "ends_at"),
        ({"starts_at": at(10)}, "ends_at"),  # past the stored ends_at
        ({"title": None}, "title"),
        ({"title": 123}, "title"),
        ({"status": "cancelled"}, "status"),
        ({"venue": {"lat": 95}}, "venue.lat"),
        ({"venue": {"lng": None}}, "venue"),  # the stored lat is left without its lng
        ({"venue": None}, "venue"),
        ({"venue": {"name": None}}, "venue.name"),
        ({"currency": "XYZ"}, "currency"),
    ],
)
async def test_patch_validates_the_event_it_results_in(
    client: AsyncClient, change: dict[str, Any], field: str, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    response = await client.patch(f"{API}/admin/events/{event['id']}", headers=headers, json=change)
    assert error_fields(response) == {field}


async def test_publishing_a_draft_makes_it_public(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers, status="draft")
    public = f"{API}/events/{event['id']}"
    assert_problem(await client.get(public), 404, "not_found")
    response = await client.patch(
        f"{API}/admin/events/{event['id']}", headers=headers, json={"status": "published"}
    )
    assert response.json()["status"] == "published"
    shown = await client.get(public)
    assert shown.status_code == 200
    assert shown.json()["title"] == event["title"]
    assert "sold" not in shown.json()["ticket_types"][0]


async def test_a_published_event_without_sales_can_go_back_to_draft(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    response = await client.patch(
        f"{API}/admin/events/{event['id']}", headers=headers, json={"status": "draft"}
    )
    assert response.json()["status"] == "draft"
    assert_problem(await client.get(f"{API}/events/{event['id']}"), 404, "not_found")


@pytest.mark.parametrize("taken", ["sold", "held"])
async def test_a_published_event_with_sold_or_held_seats_stays_published(
    client: AsyncClient, db: Database, taken: str, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    await set_stock(db, event["ticket_types"][1]["id"], **{taken: 1})
    response = await client.patch(
        f"{API}/admin/events/{event['id']}", headers=headers, json={"status": "draft"}
    )
    assert_problem(response, 409, "event_has_sales")
    assert (await client.get(f"{API}/events/{event['id']}")).status_code == 200


async def test_a_cancelled_event_cannot_be_changed(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    await cancel_in_db(db, event["id"])
    path, tier_id = f"{API}/admin/events/{event['id']}", event["ticket_types"][0]["id"]
    attempts = [
        client.put(path, headers=headers, json=body(title="Back again")),
        client.patch(path, headers=headers, json={"status": "published"}),
        client.patch(f"{path}/availability", headers=headers, json={"on_sale": True}),
        client.post(f"{path}/ticket-types", headers=headers, json=tier(name="Extra")),
        client.patch(f"{path}/ticket-types/{tier_id}", headers=headers, json={"price": 0}),
        client.delete(f"{path}/ticket-types/{tier_id}", headers=headers),
    ]
    for attempt in attempts:
        assert_problem(await attempt, 409, "event_cancelled")
    assert (await client.get(path, headers=headers)).json()["status"] == "cancelled"
    assert_problem(await client.get(f"{API}/events/{event['id']}"), 404, "not_found")


# Availability


async def test_capacity_goes_up_and_down(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    path, tier_id = f"{API}/admin/events/{event['id']}/availability", event["ticket_types"][0]["id"]
    for capacity in (150, 10):
        response = await client.patch(
            path, headers=headers, json={"ticket_types": [{"id": tier_id, "capacity": capacity}]}
        )
        assert response.status_code == 200, response.text
        changed = response.json()["ticket_types"][0]
        assert (changed["capacity"], changed["available"]) == (capacity, capacity)
        assert response.json()["capacity"] == capacity + 20
        assert sum(s.capacity for s in await shards(db, tier_id)) == capacity


async def test_capacity_never_goes_below_what_is_sold_and_held(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    path, tier_id = f"{API}/admin/events/{event['id']}/availability", event["ticket_types"][0]["id"]
    await set_stock(db, tier_id, sold=3, held=2)
    below = await client.patch(
        path, headers=headers, json={"ticket_types": [{"id": tier_id, "capacity": 4}]}
    )
    assert_problem(below, 409, "capacity_below_sold")
    assert sum(s.capacity for s in await shards(db, tier_id)) == 100
    exact = await client.patch(
        path, headers=headers, json={"ticket_types": [{"id": tier_id, "capacity": 5}]}
    )
    changed = exact.json()["ticket_types"][0]
    assert (changed["capacity"], changed["sold"], changed["held"], changed["available"]) == (
        5,
        3,
        2,
        0,
    )
    assert changed["status"] == "sold_out"


async def test_resizing_keeps_the_shards_summing_to_the_tier_capacity(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    tier_id = event["ticket_types"][0]["id"]
    async with db.transaction() as session:  # a hot tier spread over three shards
        await inventory.remove_stock(session, ticket_type_id=uuid.UUID(tier_id))
        inventory.add_stock(session, ticket_type_id=uuid.UUID(tier_id), capacity=100, shards=3)
        await session.flush()
        await session.execute(
            update(TicketStock)
            .where(TicketStock.ticket_type_id == uuid.UUID(tier_id), TicketStock.shard == 0)
            .values(sold=30)
        )
        await session.execute(
            update(TicketStock)
            .where(TicketStock.ticket_type_id == uuid.UUID(tier_id), TicketStock.shard == 1)
            .values(held=5)
        )
    path = f"{API}/admin/events/{event['id']}/availability"
    for capacity in (40, 35, 100, 36):
        response = await client.patch(
            path, headers=headers, json={"ticket_types": [{"id": tier_id, "capacity": capacity}]}
        )
        assert response.json()["ticket_types"][0]["available"] == capacity - 35
        stock = await shards(db, tier_id)
        assert sum(s.capacity for s in stock) == capacity
        assert [(s.sold, s.held) for s in stock] == [(30, 0), (0, 5), (0, 0)]
        assert all(s.sold + s.held <= s.capacity for s in stock)


async def test_an_unknown_tier_in_an_availability_change_is_not_found(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    other = await create_event(client, headers)
    for tier_id in (str(uuid.uuid4()), other["ticket_types"][0]["id"]):
        response = await client.patch(
            f"{API}/admin/events/{event['id']}/availability",
            headers=headers,
            json={"ticket_types": [{"id": tier_id, "capacity": 5}]},
        )
        assert_problem(response, 404, "not_found")


@pytest.mark.parametrize(
    "change",
    [
        {"ticket_types": [{"id": "not-a-uuid", "capacity": 5}]},
        {"ticket_types": [{"id": str(uuid.uuid4()), "capacity": 0}]},
        {"on_sale": "sometimes"},
    ],
)
async def test_a_malformed_availability_change_is_a_validation_error(
    client: AsyncClient, change: dict[str, Any], sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    response = await client.patch(
        f"{API}/admin/events/{event['id']}/availability", headers=headers, json=change
    )
    assert_problem(response, 422, "validation_error")


async def test_pausing_sales_shows_paused_tiers_until_resumed(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    path, public = f"{API}/admin/events/{event['id']}/availability", f"{API}/events/{event['id']}"
    paused = await client.patch(path, headers=headers, json={"on_sale": False})
    assert paused.json()["on_sale"] is False
    assert {t["status"] for t in (await client.get(public)).json()["ticket_types"]} == {"paused"}
    await client.patch(path, headers=headers, json={"on_sale": True})
    assert {t["status"] for t in (await client.get(public)).json()["ticket_types"]} == {"on_sale"}


# Deleting


async def test_an_event_without_sales_is_deleted(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    response = await client.delete(f"{API}/admin/events/{event['id']}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(
        await client.get(f"{API}/admin/events/{event['id']}", headers=headers), 404, "not_found"
    )
    assert_problem(await client.get(f"{API}/events/{event['id']}"), 404, "not_found")
    assert await shards(db, event["ticket_types"][0]["id"]) == []


@pytest.mark.parametrize("taken", ["sold", "held"])
async def test_an_event_with_sold_or_held_seats_is_not_deleted(
    client: AsyncClient, db: Database, taken: str, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    await set_stock(db, event["ticket_types"][1]["id"], **{taken: 2})
    response = await client.delete(f"{API}/admin/events/{event['id']}", headers=headers)
    assert_problem(response, 409, "event_has_sales")
    assert (
        await client.get(f"{API}/admin/events/{event['id']}", headers=headers)
    ).status_code == 200


# Tiers


async def test_a_tier_is_added_later(client: AsyncClient, db: Database, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers, ticket_types=[])
    assert event["ticket_types"] == []
    page = (await client.get(f"{API}/events/{event['id']}")).json()  # a row with no tier
    assert (page["ticket_types"], page["available"], page["sold_out"]) == ([], 0, True)
    response = await client.post(
        f"{API}/admin/events/{event['id']}/ticket-types",
        headers=headers,
        json=tier(name="Early bird", price=50000, capacity=30, max_per_order=4, sales_end=at(-24)),
    )
    assert response.status_code == 201, response.text
    added = response.json()
    assert (added["name"], added["price"], added["capacity"], added["max_per_order"]) == (
        "Early bird",
        {"amount": 50000, "currency": "KES"},
        30,
        4,
    )
    assert (added["sold"], added["held"], added["available"], added["status"]) == (
        0,
        0,
        30,
        "on_sale",
    )
    assert sum(s.capacity for s in await shards(db, added["id"])) == 30
    public = (await client.get(f"{API}/events/{event['id']}/ticket-types")).json()
    assert [t["id"] for t in public] == [added["id"]]


@pytest.mark.parametrize(
    ("new_tier", "field"),
    [
        (tier(sales_end=at(5)), "sales_end"),
        (tier(sales_start=at(4)), "sales_start"),
        (tier(sales_start=at(-2), sales_end=at(-3)), "sales_end"),
        (tier(price=-1), "price"),
        (tier(capacity=1_000_001), "capacity"),
        ({"name": "No price", "capacity": 5}, "price"),
    ],
)
async def test_adding_a_tier_that_breaks_a_rule_names_the_field(
    client: AsyncClient, new_tier: dict[str, Any], field: str, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    response = await client.post(
        f"{API}/admin/events/{event['id']}/ticket-types", headers=headers, json=new_tier
    )
    assert error_fields(response) == {field}


async def test_an_event_has_at_most_twenty_tiers(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    event = await create_event(
        client, headers, ticket_types=[tier(name=f"T{n}") for n in range(20)]
    )
    response = await client.post(
        f"{API}/admin/events/{event['id']}/ticket-types", headers=headers, json=tier(name="T20")
    )
    assert error_fields(response) == {"ticket_types"}


async def test_a_tier_is_updated(client: AsyncClient, db: Database, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    tier_id = event["ticket_types"][0]["id"]
    response = await client.patch(
        f"{API}/admin/events/{event['id']}/ticket-types/{tier_id}",
        headers=headers,
        json={
            "name": "Standing",
            "price": 120000,
            "capacity": 80,
            "sales_start": at(-24 * 11),  # a day ago
            "sales_end": at(-1),
        },
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["name"], updated["price"]["amount"], updated["capacity"]) == (
        "Standing",
        120000,
        80,
    )
    assert datetime.fromisoformat(updated["sales_start"]) == START - timedelta(days=11)
    assert datetime.fromisoformat(updated["sales_end"]) == START - timedelta(hours=1)
    assert updated["status"] == "on_sale"
    assert sum(s.capacity for s in await shards(db, tier_id)) == 80
    later = await client.patch(
        f"{API}/admin/events/{event['id']}/ticket-types/{tier_id}",
        headers=headers,
        json={"sales_start": at(-2)},
    )
    assert later.json()["status"] == "not_yet_on_sale"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sales_end": at(5)}, "sales_end"),
        ({"sales_start": at(-1), "sales_end": at(-2)}, "sales_end"),
        ({"name": None}, "name"),
        ({"price": 1.5}, "price"),
        ({"capacity": 0}, "capacity"),
    ],
)
async def test_updating_a_tier_that_breaks_a_rule_names_the_field(
    client: AsyncClient, change: dict[str, Any], field: str, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    response = await client.patch(
        f"{API}/admin/events/{event['id']}/ticket-types/{event['ticket_types'][0]['id']}",
        headers=headers,
        json=change,
    )
    assert error_fields(response) == {field}


async def test_a_tier_capacity_never_goes_below_what_is_sold_and_held(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    tier_id = event["ticket_types"][0]["id"]
    await set_stock(db, tier_id, sold=6, held=4)
    response = await client.patch(
        f"{API}/admin/events/{event['id']}/ticket-types/{tier_id}",
        headers=headers,
        json={"capacity": 9, "name": "Renamed"},
    )
    assert_problem(response, 409, "capacity_below_sold")
    read = (await client.get(f"{API}/admin/events/{event['id']}", headers=headers)).json()
    assert (read["ticket_types"][0]["name"], read["ticket_types"][0]["capacity"]) == (
        "Regular",
        100,
    )


async def test_a_tier_without_sales_is_deleted(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    tier_id = event["ticket_types"][0]["id"]
    response = await client.delete(
        f"{API}/admin/events/{event['id']}/ticket-types/{tier_id}", headers=headers
    )
    assert response.status_code == 204
    read = (await client.get(f"{API}/admin/events/{event['id']}", headers=headers)).json()
    assert [t["name"] for t in read["ticket_types"]] == ["VIP"]
    assert await shards(db, tier_id) == []


@pytest.mark.parametrize("taken", ["sold", "held"])
async def test_a_tier_with_sold_or_held_seats_is_not_deleted(
    client: AsyncClient, db: Database, taken: str, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    tier_id = event["ticket_types"][0]["id"]
    await set_stock(db, tier_id, **{taken: 1})
    response = await client.delete(
        f"{API}/admin/events/{event['id']}/ticket-types/{tier_id}", headers=headers
    )
    assert_problem(response, 409, "ticket_type_has_sales")
    assert len(await shards(db, tier_id)) == 1


async def test_an_unknown_tier_is_not_found(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers)
    other = await create_event(client, headers)
    path = f"{API}/admin/events/{event['id']}/ticket-types"
    for tier_id in (uuid.uuid4(), other["ticket_types"][0]["id"]):
        assert_problem(
            await client.patch(f"{path}/{tier_id}", headers=headers, json={"price": 1}),
            404,
            "not_found",
        )
        assert_problem(await client.delete(f"{path}/{tier_id}", headers=headers), 404, "not_found")


async def test_an_unknown_event_is_not_found(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in(Role.ADMIN)
    path = f"{API}/admin/events/{uuid.uuid4()}"
    assert_problem(await client.get(path, headers=headers), 404, "not_found")
    assert_problem(await client.delete(path, headers=headers), 404, "not_found")
    response = await client.post(f"{path}/ticket-types", headers=headers, json=tier())
    assert_problem(response, 404, "not_found")


# Categories


async def test_an_admin_creates_a_category(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in(Role.ADMIN)
    category = {"slug": "hip-hop", "name": "Hip hop"}
    response = await client.post(f"{API}/admin/categories", headers=headers, json=category)
    assert (response.status_code, response.json()) == (201, category)
    again = await client.post(
        f"{API}/admin/categories", headers=headers, json={"slug": "hip-hop", "name": "Rap"}
    )
    assert_problem(again, 409, "category_exists")


async def test_only_admins_create_categories(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    response = await client.post(
        f"{API}/admin/categories", headers=headers, json={"slug": "jazz", "name": "Jazz"}
    )
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize(
    ("category", "field"),
    [
        ({"slug": "Hip Hop", "name": "Hip hop"}, "slug"),
        ({"slug": "-x", "name": "X"}, "slug"),
        ({"slug": "x-", "name": "X"}, "slug"),
        ({"slug": "a--b", "name": "X"}, "slug"),
        ({"slug": "x" * 41, "name": "X"}, "slug"),
        ({"slug": "", "name": "X"}, "slug"),
        ({"slug": "jazz", "name": ""}, "name"),
        ({"slug": "jazz", "name": "x" * 81}, "name"),
    ],
)
async def test_a_bad_category_names_the_field(
    client: AsyncClient, category: dict[str, str], field: str, sign_in: SignIn
) -> None:
    _, headers = await sign_in(Role.ADMIN)
    response = await client.post(f"{API}/admin/categories", headers=headers, json=category)
    assert error_fields(response) == {field}


async def test_categories_count_their_published_upcoming_events(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    async with db.transaction() as session:
        await make_category(session, "afro-pop", "Afro-pop")
        await make_category(session, "jazz", "Jazz")
    _, headers = await sign_in()
    await create_event(client, headers, genre="afro-pop")
    await create_event(client, headers, genre="afro-pop")
    await create_event(client, headers, genre="afro-pop", status="draft")
    cancelled = await create_event(client, headers, genre="jazz")
    await cancel_in_db(db, cancelled["id"])
    response = await client.get(f"{API}/categories")
    assert response.json() == [
        {"slug": "afro-pop", "name": "Afro-pop", "event_count": 2},
        {"slug": "jazz", "name": "Jazz", "event_count": 0},
    ]


# Audit


async def audit_entries(db: Database, actor: User) -> list[AuditEntry]:
    async with db.read_transaction() as session:
        return list(
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.actor_id == actor.id)
                .order_by(AuditEntry.created_at)
            )
        )


async def test_every_catalogue_change_is_audited(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    organizer, headers = await sign_in()
    event = await create_event(client, headers)
    path, first_tier = f"{API}/admin/events/{event['id']}", event["ticket_types"][0]["id"]
    await client.patch(path, headers=headers, json={"title": "Renamed"})
    await client.patch(
        f"{path}/availability",
        headers=headers,
        json={"ticket_types": [{"id": first_tier, "capacity": 90}], "on_sale": False},
    )
    added = (
        await client.post(f"{path}/ticket-types", headers=headers, json=tier(name="Extra"))
    ).json()
    await client.patch(f"{path}/ticket-types/{added['id']}", headers=headers, json={"price": 1})
    await client.delete(f"{path}/ticket-types/{added['id']}", headers=headers)
    assert (await client.delete(path, headers=headers)).status_code == 204

    entries = await audit_entries(db, organizer)
    assert [(e.action, e.target_type, str(e.target_id)) for e in entries] == [
        ("event.created", "event", event["id"]),
        ("event.updated", "event", event["id"]),
        ("event.availability_changed", "event", event["id"]),
        ("ticket_type.created", "ticket_type", added["id"]),
        ("ticket_type.updated", "ticket_type", added["id"]),
        ("ticket_type.deleted", "ticket_type", added["id"]),
        ("event.deleted", "event", event["id"]),
    ]
    created, updated, availability, tier_created, tier_updated, tier_deleted, deleted = entries
    assert (created.before, created.after["title"]) == (None, "Sauti Sol Live")
    assert (updated.before["title"], updated.after["title"]) == ("Sauti Sol Live", "Renamed")
    assert availability.before == {"on_sale": True, "capacities": {first_tier: 100}}
    assert availability.after == {"on_sale": False, "capacities": {first_tier: 90}}
    assert (tier_created.before, tier_created.after["name"]) == (None, "Extra")
    assert (tier_updated.before["price_cents"], tier_updated.after["price_cents"]) == (150000, 1)
    assert (tier_deleted.before["price_cents"], tier_deleted.after) == (1, None)
    assert (deleted.before["title"], deleted.after) == ("Renamed", None)
    assert all(e.created_at is not None for e in entries)


async def test_creating_a_category_is_audited(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    admin, headers = await sign_in(Role.ADMIN)
    await client.post(
        f"{API}/admin/categories", headers=headers, json={"slug": "gospel", "name": "Gospel"}
    )
    (entry,) = await audit_entries(db, admin)
    assert (entry.action, entry.target_type, entry.before) == ("category.created", "category", None)
    assert entry.after == {"slug": "gospel", "name": "Gospel"}


async def test_a_refused_change_leaves_no_audit_entry(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    organizer, headers = await sign_in()
    event = await create_event(client, headers)
    await set_stock(db, event["ticket_types"][0]["id"], sold=1)
    assert (
        await client.delete(f"{API}/admin/events/{event['id']}", headers=headers)
    ).status_code == 409
    assert [e.action for e in await audit_entries(db, organizer)] == ["event.created"]


# Interactions


async def interactions(app, db: Database, kind: InteractionKind) -> list[Interaction]:
    await app.state.interactions.flush()
    async with db.read_transaction() as session:
        return list(
            await session.scalars(
                select(Interaction).where(Interaction.kind == kind).order_by(Interaction.created_at)
            )
        )


async def test_a_search_records_the_filters_used(
    app, client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    fan, headers = await sign_in(Role.ATTENDEE)
    anonymous = await client.get(f"{API}/events?city=Nairobi&price_max=200000&limit=5")
    assert anonymous.status_code == 200
    signed_in = await client.get(f"{API}/events?q=sauti", headers=headers)
    assert signed_in.status_code == 200
    searches = await interactions(app, db, InteractionKind.SEARCH)
    assert [(s.user_id, s.event_id, s.data) for s in searches] == [
        (None, None, {"city": "Nairobi", "price_max": 200000, "limit": 5}),
        (fan.id, None, {"q": "sauti"}),
    ]


async def test_viewing_an_event_records_each_view_cached_or_not(
    app, client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    fan, fan_headers = await sign_in(Role.ATTENDEE)
    _, headers = await sign_in()
    event = await create_event(client, headers)
    first = await client.get(f"{API}/events/{event['id']}", headers=fan_headers)
    second = await client.get(f"{API}/events/{event['id']}")  # served from the cache
    assert first.json() == second.json()
    bad_token = await client.get(
        f"{API}/events/{event['id']}", headers={"Authorization": "Bearer forged"}
    )
    assert bad_token.status_code == 200
    views = await interactions(app, db, InteractionKind.VIEW)
    assert [(v.event_id, v.user_id) for v in views] == [
        (uuid.UUID(event["id"]), fan.id),
        (uuid.UUID(event["id"]), None),
        (uuid.UUID(event["id"]), None),
    ]


async def test_a_repeated_search_is_recorded_each_time(
    app, client: AsyncClient, db: Database
) -> None:
    for _ in range(2):
        assert (await client.get(f"{API}/events?genre=jazz")).status_code == 200
    searches = await interactions(app, db, InteractionKind.SEARCH)
    assert [s.data for s in searches] == [{"genre": "jazz"}, {"genre": "jazz"}]


async def test_viewing_a_draft_records_nothing(
    app, client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    event = await create_event(client, headers, status="draft")
    assert (await client.get(f"{API}/events/{event['id']}")).status_code == 404
    assert await interactions(app, db, InteractionKind.VIEW) == []
    async with db.read_transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Interaction)) == 0
