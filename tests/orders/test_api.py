"""Buying over HTTP against API.md "Buying": holds, bookings, tickets, the paid flow with
a fake provider, Idempotency-Key, pagination, and the signed ticket codes."""

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import insert, select, update

from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import AuthSession, RevokedAccessToken, Role, User
from boxoffice.accounts.tokens import read_access_token
from boxoffice.analytics.models import Interaction
from boxoffice.catalog.models import Event, EventStatus
from boxoffice.db import Database, utcnow
from boxoffice.inventory import audit
from boxoffice.inventory.models import Hold, HoldItem
from boxoffice.orders import service as orders
from boxoffice.orders.models import Booking, IdempotencyKey
from boxoffice.payments.models import Payment, Refund
from boxoffice.tickets import service as tickets_service
from boxoffice.tickets.codes import TicketSigner
from boxoffice.tickets.models import Ticket
from boxoffice.worker.models import Job
from boxoffice.worker.service import DEFAULT_MAX_ATTEMPTS
from tests.factories import create_user
from tests.orders.helpers import API, free_event, hold, stock
from tests.payments.fakes import PendingProvider, use_providers

CROCKFORD = "[0-9A-HJKMNP-TV-Z]"
NUMBER = re.compile(rf"^SAU-{CROCKFORD}{{4}}-{CROCKFORD}{{4}}-\d{{2}}$")  # "Sauti Sol Live"
TICKET_FIELDS = {
    "id",
    "booking_id",
    "event_id",
    "ticket_type",
    "holder_name",
    "number",
    "price",
    "status",
    "code",
    "checked_in_at",
}
BOOKING_FIELDS = {
    "id",
    "event",
    "items",
    "total",
    "status",
    "created_at",
    "confirmed_at",
    "expires_at",
    "payment",
    "tickets",
}
MOMO = {"method": "momo", "phone": "+256772123456"}

Headers = dict[str, str]
SignIn = Callable[..., Awaitable[tuple[User, Headers]]]
LogIn = Callable[[User], Awaitable[Headers]]


# Set-up


@pytest.fixture
def log_in(app, db: Database) -> LogIn:
    """Bearer headers for a user, from a sign-in session opened as POST /login does once
    the password checks out (no argon2: the file stays fast)."""

    async def log_in(user: User) -> Headers:
        async with db.transaction() as session:
            pair = await accounts.open_session(
                session, settings=app.state.settings, user=user, now=utcnow()
            )
        return {"Authorization": f"Bearer {pair.access_token}"}

    return log_in


@pytest.fixture
def sign_in(db: Database, log_in: LogIn) -> SignIn:
    async def sign_in(role: Role = Role.ATTENDEE, **overrides: Any) -> tuple[User, Headers]:
        user = await create_user(db, role=role, **overrides)
        return user, await log_in(user)

    return sign_in


async def priced_event(
    db: Database, *, price: int = 150000, capacity: int = 10, **overrides: Any
) -> tuple[Event, list[uuid.UUID]]:
    tiers = [
        {"name": "Regular", "price": price, "capacity": capacity, "max_per_order": 10},
        {"name": "VIP", "price": price * 3, "capacity": capacity, "max_per_order": 10},
    ]
    return await free_event(db, ticket_types=tiers, **overrides)


async def organizer_of(db: Database, event: Event) -> User:
    async with db.read_transaction() as session:
        return await session.get_one(User, event.organizer_id)


async def book(
    client: AsyncClient,
    headers: Headers,
    hold_id: str,
    *,
    payment: dict[str, str] | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    body: dict[str, Any] = {"hold_id": hold_id}
    if payment is not None:
        body["payment"] = payment
    response = await client.post(f"{API}/bookings", json=body, headers=headers)
    assert response.status_code == expect, response.text
    return response.json()


async def bought(
    client: AsyncClient, headers: Headers, event: Event, quantities: dict[uuid.UUID, int]
) -> dict[str, Any]:
    """A confirmed free booking."""
    booking = await book(client, headers, (await hold(client, headers, event.id, quantities))["id"])
    assert booking["status"] == "confirmed"
    return booking


async def assert_audit_clean(db: Database) -> None:
    async with db.read_transaction() as session:
        assert await audit.check(session) == []


async def set_hold(db: Database, hold_id: str, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(update(Hold).where(Hold.id == uuid.UUID(hold_id)).values(**values))


async def set_event(db: Database, event_id: uuid.UUID, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(update(Event).where(Event.id == event_id).values(**values))


def hold_body(event_id: Any, quantities: dict[Any, Any]) -> dict[str, Any]:
    return {
        "event_id": str(event_id),
        "items": [{"ticket_type_id": str(t), "quantity": q} for t, q in quantities.items()],
    }


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["status"], problem["code"]) == (status, code), problem
    assert {"type", "title", "detail"} <= problem.keys()
    return problem


def error_fields(response: Response) -> set[str]:
    problem = assert_problem(response, 422, "validation_error")
    assert all(error["message"] for error in problem["errors"])
    return {error["field"] for error in problem["errors"]}


def when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text  # ISO 8601 with offset, in UTC
    return moment


def near(moment: datetime, expected: datetime, slack: float = 10) -> bool:
    return abs((moment - expected).total_seconds()) <= slack


@pytest.fixture
def momo(app) -> PendingProvider:
    provider = PendingProvider()
    use_providers(app, provider)
    return provider


async def confirm(db: Database, payment_id: str, *, now: datetime | None = None):
    async with db.transaction() as session:
        return await orders.confirm_payment(session, uuid.UUID(payment_id), now=now or utcnow())


async def refunds_of(db: Database, payment_id: str) -> list[Refund]:
    async with db.read_transaction() as session:
        return list(
            await session.scalars(select(Refund).where(Refund.payment_id == uuid.UUID(payment_id)))
        )


async def refund_jobs(db: Database) -> set[str]:
    async with db.read_transaction() as session:
        jobs = await session.scalars(select(Job).where(Job.kind == "payments.refund"))
        return {job.payload["refund_id"] for job in jobs}


# Holds: the happy path


async def test_a_hold_takes_the_seats_and_reads_back_as_api_md_says(
    client: AsyncClient, db: Database, sign_in: SignIn, app
) -> None:
    event, (regular, vip) = await priced_event(db)
    _, headers = await sign_in()
    before = utcnow()
    response = await client.post(
        f"{API}/holds", json=hold_body(event.id, {regular: 2, vip: 1}), headers=headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert {"id", "event_id", "items", "total", "expires_at", "status"} <= created.keys()
    assert created["event_id"] == str(event.id)
    assert created["status"] == "active"
    assert created["total"] == {"amount": 2 * 150000 + 450000, "currency": "KES"}
    assert sorted(
        (i["ticket_type_id"], i["name"], i["quantity"], i["unit_price"]) for i in created["items"]
    ) == sorted(
        [
            (str(regular), "Regular", 2, {"amount": 150000, "currency": "KES"}),
            (str(vip), "VIP", 1, {"amount": 450000, "currency": "KES"}),
        ]
    )
    ttl = timedelta(seconds=app.state.settings.hold_ttl)
    assert near(when(created["expires_at"]), before + ttl)
    assert created.get("booking_id") is None
    uuid.UUID(created["id"])

    read = await client.get(f"{API}/holds/{created['id']}", headers=headers)
    assert read.status_code == 200, read.text
    assert read.json() == created
    assert (await stock(db, regular)).held == 2
    assert (await stock(db, vip)).held == 1
    await assert_audit_clean(db)


async def test_releasing_a_hold_gives_the_seats_back_at_once_and_twice_is_harmless(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db, capacity=3)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 3})
    assert (await stock(db, tier)).available == 0

    for _ in range(2):
        released = await client.delete(f"{API}/holds/{created['id']}", headers=headers)
        assert released.status_code == 204, released.text
        assert released.content == b""
    assert (await stock(db, tier)).held == 0
    read = await client.get(f"{API}/holds/{created['id']}", headers=headers)
    assert read.json()["status"] == "released"
    await hold(client, headers, event.id, {tier: 3})  # the seats are there again
    await assert_audit_clean(db)


async def test_releasing_an_overdue_hold_expires_it(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db, capacity=3)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 2})
    await set_hold(db, created["id"], expires_at=utcnow() - timedelta(seconds=1))
    response = await client.delete(f"{API}/holds/{created['id']}", headers=headers)
    assert response.status_code == 204, response.text
    assert (await client.get(f"{API}/holds/{created['id']}", headers=headers)).json()[
        "status"
    ] == "expired"
    assert (await stock(db, tier)).held == 0


async def test_an_overdue_hold_reads_as_expired_before_the_sweep(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db, capacity=3)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 2})
    await set_hold(db, created["id"], expires_at=utcnow() - timedelta(seconds=1))

    read = await client.get(f"{API}/holds/{created['id']}", headers=headers)

    assert read.json()["status"] == "expired"
    assert (await stock(db, tier)).held == 2  # nothing moved: the sweep returns the seats


async def test_a_booked_hold_cannot_be_released_on_its_own(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 2})
    booking = await book(client, headers, created["id"])
    response = await client.delete(f"{API}/holds/{created['id']}", headers=headers)
    assert_problem(response, 409, "hold_not_active")
    read = (await client.get(f"{API}/holds/{created['id']}", headers=headers)).json()
    assert (read["status"], read["booking_id"]) == ("converted", booking["id"])
    assert (await stock(db, tier)).sold == 2


# Bad input: each table is one test, every case checked in turn (the file stays fast)

TIER = str(uuid.uuid4())
EVENT = str(uuid.uuid4())
ITEM = {"ticket_type_id": TIER, "quantity": 1}
SQL = "1' OR '1'='1'; DROP TABLE holds; --"
HUGE = "\U0001f4a3é漢" * 20000


def quantity(value: Any) -> dict[str, Any]:
    return {"event_id": EVENT, "items": [{"ticket_type_id": TIER, "quantity": value}]}


BAD_HOLDS: list[tuple[str, Any, set[str]]] = [
    ("empty", {}, {"event_id", "items"}),
    ("no items field", {"event_id": EVENT}, {"items"}),
    ("no event", {"items": [ITEM]}, {"event_id"}),
    (
        "no quantity",
        {"event_id": EVENT, "items": [{"ticket_type_id": TIER}]},
        {"items[0].quantity"},
    ),
    ("no tier", {"event_id": EVENT, "items": [{"quantity": 1}]}, {"items[0].ticket_type_id"}),
    ("quantity 0", quantity(0), {"items[0].quantity"}),
    ("quantity 101", quantity(101), {"items[0].quantity"}),
    ("quantity -1", quantity(-1), {"items[0].quantity"}),
    ("quantity text", quantity("two"), {"items[0].quantity"}),
    ("quantity fraction", quantity(1.5), {"items[0].quantity"}),
    ("quantity null", quantity(None), {"items[0].quantity"}),
    (
        "second item bad",
        {"event_id": EVENT, "items": [ITEM, {"ticket_type_id": str(uuid.uuid4()), "quantity": 0}]},
        {"items[1].quantity"},
    ),
    ("0 items", {"event_id": EVENT, "items": []}, {"items"}),
    (
        "21 items",
        {
            "event_id": EVENT,
            "items": [{"ticket_type_id": str(uuid.uuid4()), "quantity": 1} for _ in range(21)],
        },
        {"items"},
    ),
    ("items text", {"event_id": EVENT, "items": "lots"}, {"items"}),
    ("items object", {"event_id": EVENT, "items": ITEM}, {"items"}),
    ("unknown field", {"event_id": EVENT, "items": [ITEM], "coupon": "X"}, {"coupon"}),
    (
        "unknown field in item",
        {"event_id": EVENT, "items": [{**ITEM, "seat": "A1"}]},
        {"items[0].seat"},
    ),
    ("event not uuid", {"event_id": "not-a-uuid", "items": [ITEM]}, {"event_id"}),
    ("event null", {"event_id": None, "items": [ITEM]}, {"event_id"}),
    ("event number", {"event_id": 42, "items": [ITEM]}, {"event_id"}),
    ("event sql", {"event_id": SQL, "items": [ITEM]}, {"event_id"}),
    ("event huge unicode", {"event_id": HUGE, "items": [ITEM]}, {"event_id"}),
    (
        "tier sql",
        {"event_id": EVENT, "items": [{"ticket_type_id": SQL, "quantity": 1}]},
        {"items[0].ticket_type_id"},
    ),
    (
        "tier huge unicode",
        {"event_id": EVENT, "items": [{"ticket_type_id": HUGE, "quantity": 1}]},
        {"items[0].ticket_type_id"},
    ),
]


async def test_bad_hold_requests_are_422_naming_the_field(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    for case, body, fields in BAD_HOLDS:
        response = await client.post(f"{API}/holds", json=body, headers=headers)
        assert response.status_code == 422, (case, response.text)
        assert error_fields(response) == fields, case
    body_not_object = await client.post(f"{API}/holds", json=[ITEM], headers=headers)
    assert_problem(body_not_object, 422, "validation_error")
    no_body = await client.post(f"{API}/holds", headers=headers)
    assert_problem(no_body, 422, "validation_error")


async def test_the_same_tier_twice_is_refused_naming_the_items(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    body = {"event_id": EVENT, "items": [ITEM, {"ticket_type_id": TIER, "quantity": 2}]}
    response = await client.post(f"{API}/holds", json=body, headers=headers)
    fields = error_fields(response)
    # API.md: errors[].field names the field at fault; "body" names none.
    assert fields, response.text
    assert fields <= {"items", "items[1].ticket_type_id"}, fields


BAD_BOOKINGS: list[tuple[str, Any, set[str]]] = [
    ("empty", {}, {"hold_id"}),
    ("not uuid", {"hold_id": "hold-1"}, {"hold_id"}),
    ("sql", {"hold_id": SQL}, {"hold_id"}),
    ("huge unicode", {"hold_id": HUGE}, {"hold_id"}),
    ("list", {"hold_id": [EVENT]}, {"hold_id"}),
    ("null", {"hold_id": None}, {"hold_id"}),
    ("unknown field", {"hold_id": EVENT, "coupon": "FREE"}, {"coupon"}),
    (
        "unknown method",
        {"hold_id": EVENT, "payment": {"method": "paypal", "phone": MOMO["phone"]}},
        {"payment.method"},
    ),
    ("no phone", {"hold_id": EVENT, "payment": {"method": "momo"}}, {"payment.phone"}),
    ("no method", {"hold_id": EVENT, "payment": {"phone": MOMO["phone"]}}, {"payment.method"}),
    (
        "local phone",
        {"hold_id": EVENT, "payment": {"method": "momo", "phone": "0772123456"}},
        {"payment.phone"},
    ),
    (
        "short phone",
        {"hold_id": EVENT, "payment": {"method": "momo", "phone": "+2567"}},
        {"payment.phone"},
    ),
    (
        "phone sql",
        {"hold_id": EVENT, "payment": {"method": "momo", "phone": SQL}},
        {"payment.phone"},
    ),
    (
        "unknown field in payment",
        {"hold_id": EVENT, "payment": {**MOMO, "pin": "1234"}},
        {"payment.pin"},
    ),
    ("payment text", {"hold_id": EVENT, "payment": "momo"}, {"payment"}),
]


async def test_bad_booking_requests_are_422_naming_the_field(
    client: AsyncClient, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    for case, body, fields in BAD_BOOKINGS:
        response = await client.post(f"{API}/bookings", json=body, headers=headers)
        assert response.status_code == 422, (case, response.text)
        assert error_fields(response) == fields, case


async def test_malformed_json_is_a_400(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    json_headers = {**headers, "Content-Type": "application/json"}
    for path in ("/holds", "/bookings"):
        for content in (b'{"event_id": ', b"{'hold_id': 1}", b"\xff\xfe", b'{"items": [1,]}'):
            response = await client.post(f"{API}{path}", content=content, headers=json_headers)
            assert response.status_code == 400, (path, content, response.text)
            assert_problem(response, 400, "malformed_json")


async def test_idempotency_keys_are_at_most_255_characters(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db)
    _, headers = await sign_in()
    body = hold_body(event.id, {tier: 1})
    too_long = {**headers, "Idempotency-Key": "k" * 256}
    response = await client.post(f"{API}/holds", json=body, headers=too_long)
    assert error_fields(response) == {"Idempotency-Key"}
    response = await client.post(f"{API}/bookings", json={"hold_id": EVENT}, headers=too_long)
    assert error_fields(response) == {"Idempotency-Key"}
    assert (await stock(db, tier)).held == 0
    longest = {**headers, "Idempotency-Key": "k" * 255}
    response = await client.post(f"{API}/holds", json=body, headers=longest)
    assert response.status_code == 201, response.text


PATHS_WITH_IDS = [
    ("GET", "/holds/{}", "hold_id"),
    ("DELETE", "/holds/{}", "hold_id"),
    ("GET", "/bookings/{}", "booking_id"),
    ("POST", "/bookings/{}/cancel", "booking_id"),
    ("GET", "/tickets/{}", "ticket_id"),
    ("DELETE", "/tickets/{}", "ticket_id"),
]


async def test_ids_in_paths_must_be_uuids(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    for method, path, field in PATHS_WITH_IDS:
        for value in ("42", "not-a-uuid", SQL, "\U0001f4a3" * 3000, EVENT + "0"):
            response = await client.request(method, API + path.format(value), headers=headers)
            assert response.status_code == 422, (method, path, value[:20], response.text)
            assert error_fields(response) == {field}


BAD_LIST_QUERIES = [
    ("/bookings", "limit=0", "limit"),
    ("/bookings", "limit=101", "limit"),
    ("/bookings", "page=0", "page"),
    ("/bookings", "limit=ten", "limit"),
    ("/tickets", "limit=0", "limit"),
    ("/tickets", "limit=101", "limit"),
    ("/tickets", "page=-1", "page"),
    ("/tickets", "status=lost", "status"),
    ("/tickets", "status=VALID%27%20OR%201%3D1", "status"),
    ("/tickets", "event_id=not-a-uuid", "event_id"),
    ("/tickets", f"event_id={EVENT}%27--", "event_id"),
]


async def test_bad_list_parameters_are_422(client: AsyncClient, sign_in: SignIn) -> None:
    _, headers = await sign_in()
    for path, query, field in BAD_LIST_QUERIES:
        response = await client.get(f"{API}{path}?{query}", headers=headers)
        assert response.status_code == 422, (path, query, response.text)
        assert error_fields(response) == {field}


# Auth


async def test_every_buying_endpoint_needs_a_token(client: AsyncClient, db: Database) -> None:
    event, (tier, _) = await free_event(db)
    some = uuid.uuid4()
    calls = [
        ("POST", "/holds", hold_body(event.id, {tier: 1})),
        ("GET", f"/holds/{some}", None),
        ("DELETE", f"/holds/{some}", None),
        ("POST", "/bookings", {"hold_id": str(some)}),
        ("GET", "/bookings", None),
        ("GET", f"/bookings/{some}", None),
        ("POST", f"/bookings/{some}/cancel", None),
        ("GET", "/tickets", None),
        ("GET", f"/tickets/{some}", None),
        ("DELETE", f"/tickets/{some}", None),
    ]
    for method, path, body in calls:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
            response = await client.request(method, API + path, json=body, headers=headers)
            assert_problem(response, 401, "unauthenticated")
    assert (await stock(db, tier)).held == 0


@pytest.mark.parametrize("key", [None, "retry-1"], ids=["one statement", "idempotent"])
async def test_a_revoked_token_or_deleted_account_cannot_hold(
    client: AsyncClient, db: Database, sign_in: SignIn, key: str | None
) -> None:
    """A hold checks the token against the database on both of its paths: the single
    statement (PostgreSQL, no Idempotency-Key) and the transaction."""
    event, (tier, _) = await free_event(db)
    body = hold_body(event.id, {tier: 1})
    extra = {"Idempotency-Key": key} if key else {}

    _, headers = await sign_in()
    if key:  # a key used before the logout: its retry is refused, not replayed
        await hold(client, headers | extra, event.id, {tier: 1})
    assert (await client.post(f"{API}/logout", headers=headers)).status_code == 204
    response = await client.post(f"{API}/holds", json=body, headers=headers | extra)
    assert assert_problem(response, 401, "unauthenticated")["detail"] == accounts.REVOKED_ACCESS

    gone, headers = await sign_in()
    async with db.transaction() as session:
        await session.execute(update(User).where(User.id == gone.id).values(deleted_at=utcnow()))
    response = await client.post(f"{API}/holds", json=body, headers=headers | extra)
    assert_problem(response, 401, "unauthenticated")
    assert (await stock(db, tier)).held == (1 if key else 0)


async def test_another_users_hold_is_not_found(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db)
    _, owner = await sign_in()
    _, other = await sign_in()
    _, admin = await sign_in(Role.ADMIN)
    created = await hold(client, owner, event.id, {tier: 2})
    for headers in (other, admin):
        assert_problem(
            await client.get(f"{API}/holds/{created['id']}", headers=headers), 404, "not_found"
        )
        assert_problem(
            await client.delete(f"{API}/holds/{created['id']}", headers=headers), 404, "not_found"
        )
        assert_problem(
            await client.post(f"{API}/bookings", json={"hold_id": created["id"]}, headers=headers),
            404,
            "not_found",
        )
    unknown = await client.get(f"{API}/holds/{uuid.uuid4()}", headers=owner)
    assert_problem(unknown, 404, "not_found")
    assert (await client.get(f"{API}/holds/{created['id']}", headers=owner)).json()[
        "status"
    ] == "active"
    assert (await stock(db, tier)).held == 2


async def test_who_may_read_and_cancel_a_booking(
    client: AsyncClient, db: Database, sign_in: SignIn, log_in: LogIn
) -> None:
    event, (tier, _) = await free_event(db)
    _, owner = await sign_in(name="Amani Fan")
    booking = await bought(client, owner, event, {tier: 2})
    organizer = await log_in(await organizer_of(db, event))
    _, admin = await sign_in(Role.ADMIN)
    _, stranger = await sign_in()
    _, other_organizer = await sign_in(Role.ORGANIZER)

    mine = await client.get(f"{API}/bookings/{booking['id']}", headers=owner)
    assert mine.status_code == 200
    assert all(ticket["code"] for ticket in mine.json()["tickets"])
    for headers in (organizer, admin):
        read = await client.get(f"{API}/bookings/{booking['id']}", headers=headers)
        assert read.status_code == 200, read.text
        assert read.json()["id"] == booking["id"]
        assert len(read.json()["tickets"]) == 2
        assert all(ticket["code"] is None for ticket in read.json()["tickets"])  # owner only
    for headers in (stranger, other_organizer):
        read = await client.get(f"{API}/bookings/{booking['id']}", headers=headers)
        assert_problem(read, 404, "not_found")
    for headers in (stranger, other_organizer, organizer):
        cancel = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=headers)
        assert_problem(cancel, 404, "not_found")
    assert_problem(
        await client.get(f"{API}/bookings/{uuid.uuid4()}", headers=admin), 404, "not_found"
    )
    assert_problem(
        await client.post(f"{API}/bookings/{uuid.uuid4()}/cancel", headers=owner), 404, "not_found"
    )
    # A stranger's list holds none of it.
    assert (await client.get(f"{API}/bookings", headers=stranger)).json()["total"] == 0
    still = await client.get(f"{API}/bookings/{booking['id']}", headers=owner)
    assert still.json()["status"] == "confirmed"


async def test_who_may_read_and_cancel_a_ticket(
    client: AsyncClient, db: Database, sign_in: SignIn, log_in: LogIn
) -> None:
    event, (tier, _) = await free_event(db)
    _, owner = await sign_in()
    ticket = (await bought(client, owner, event, {tier: 1}))["tickets"][0]
    organizer = await log_in(await organizer_of(db, event))
    _, admin = await sign_in(Role.ADMIN)
    _, stranger = await sign_in()

    read = await client.get(f"{API}/tickets/{ticket['id']}", headers=admin)
    assert read.status_code == 200, read.text
    assert read.json() == {**ticket, "code": None}
    for headers in (stranger, organizer):
        assert_problem(
            await client.get(f"{API}/tickets/{ticket['id']}", headers=headers), 404, "not_found"
        )
    for headers in (stranger, organizer, admin):
        assert_problem(
            await client.delete(f"{API}/tickets/{ticket['id']}", headers=headers), 404, "not_found"
        )
    assert (await client.get(f"{API}/tickets", headers=stranger)).json()["total"] == 0
    assert (await client.get(f"{API}/tickets/{ticket['id']}", headers=owner)).json() == ticket
    assert_problem(
        await client.get(f"{API}/tickets/{uuid.uuid4()}", headers=admin), 404, "not_found"
    )


async def test_the_owner_downloads_a_ticket_as_a_pdf(
    client: AsyncClient, db: Database, sign_in: SignIn, log_in: LogIn, app
) -> None:
    event, (tier, _) = await free_event(db, title="Fête de la Musique — Ségou")
    fan, owner = await sign_in(name="Aïcha Ǹdiaye 李")
    ticket = (await bought(client, owner, event, {tier: 1}))["tickets"][0]
    organizer = await log_in(await organizer_of(db, event))
    _, admin = await sign_in(Role.ADMIN)
    _, stranger = await sign_in()
    path = f"{API}/tickets/{ticket['id']}/pdf"

    got = await client.get(path, headers=owner)

    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"] == f'inline; filename="{ticket["number"]}.pdf"'
    assert got.content.startswith(b"%PDF-")
    assert got.content.rstrip().endswith(b"%%EOF")
    async with db.read_transaction() as session:  # what the page shows
        sheet = await tickets_service.sheet(
            session, ticket_id=uuid.UUID(ticket["id"]), owner_id=fan.id, signer=app.state.signer
        )
    assert sheet.code == ticket["code"]
    assert app.state.signer.verify(sheet.code) == uuid.UUID(ticket["id"])
    assert (sheet.number, sheet.holder, sheet.event_title) == (
        ticket["number"],
        "Aïcha Ǹdiaye 李",
        "Fête de la Musique — Ségou",
    )
    for headers in (stranger, organizer, admin):  # the code is the owner's alone
        assert_problem(await client.get(path, headers=headers), 404, "not_found")
    assert_problem(await client.get(path), 401, "unauthenticated")
    assert_problem(
        await client.get(f"{API}/tickets/{uuid.uuid4()}/pdf", headers=owner), 404, "not_found"
    )
    assert (await client.get(f"{API}/tickets/not-a-uuid/pdf", headers=owner)).status_code == 422
    assert (await client.delete(f"{API}/tickets/{ticket['id']}", headers=owner)).status_code == 204
    assert_problem(await client.get(path, headers=owner), 409, "ticket_cancelled")


# Holds: business errors


async def test_holds_on_events_the_public_cannot_see_are_404(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    draft, (draft_tier, _) = await free_event(db, status="draft")
    cancelled, (cancelled_tier, _) = await free_event(db)
    await set_event(db, cancelled.id, status=EventStatus.CANCELLED)
    event, (tier, _) = await free_event(db)
    _, (other_tier, _) = await free_event(db)

    cases = [
        (draft.id, {draft_tier: 1}),
        (cancelled.id, {cancelled_tier: 1}),
        (uuid.uuid4(), {tier: 1}),
        (uuid.uuid4(), {uuid.uuid4(): 1}),
        (event.id, {uuid.uuid4(): 1}),
        (event.id, {other_tier: 1}),  # a tier of another event
        (event.id, {tier: 1, other_tier: 1}),
    ]
    for event_id, quantities in cases:
        response = await client.post(
            f"{API}/holds", json=hold_body(event_id, quantities), headers=headers
        )
        assert_problem(response, 404, "not_found")
    for tier_id in (draft_tier, cancelled_tier, tier, other_tier):
        assert (await stock(db, tier_id)).held == 0


async def test_paused_sales_are_not_on_sale_until_resumed(
    client: AsyncClient, db: Database, sign_in: SignIn, log_in: LogIn
) -> None:
    event, (tier, _) = await free_event(db)
    organizer = await log_in(await organizer_of(db, event))
    _, headers = await sign_in()
    availability = f"{API}/admin/events/{event.id}/availability"
    paused = await client.patch(availability, json={"on_sale": False}, headers=organizer)
    assert paused.status_code == 200, paused.text

    response = await client.post(
        f"{API}/holds", json=hold_body(event.id, {tier: 1}), headers=headers
    )
    assert_problem(response, 409, "not_on_sale")
    assert (await stock(db, tier)).held == 0

    resumed = await client.patch(availability, json={"on_sale": True}, headers=organizer)
    assert resumed.status_code == 200, resumed.text
    await hold(client, headers, event.id, {tier: 1})


async def test_outside_the_sales_window_is_not_on_sale(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    _, headers = await sign_in()
    now = utcnow()
    not_yet, (not_yet_tier, _) = await free_event(
        db, sales_start=(now + timedelta(days=1)).isoformat()
    )
    ended, (ended_tier, _) = await free_event(
        db,
        sales_start=(now - timedelta(days=2)).isoformat(),
        sales_end=(now - timedelta(days=1)).isoformat(),
    )
    tier_later, (open_tier, later_tier) = await free_event(
        db,
        ticket_types=[
            {"name": "Early", "price": 0, "capacity": 5},
            {
                "name": "Late",
                "price": 0,
                "capacity": 5,
                "sales_start": (now + timedelta(hours=1)).isoformat(),
            },
        ],
    )
    started, (started_tier, _) = await free_event(db)
    await set_event(
        db, started.id, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=3)
    )

    for event_id, quantities in [
        (not_yet.id, {not_yet_tier: 1}),
        (ended.id, {ended_tier: 1}),
        (tier_later.id, {later_tier: 1}),
        (tier_later.id, {open_tier: 1, later_tier: 1}),
        (started.id, {started_tier: 1}),
    ]:
        response = await client.post(
            f"{API}/holds", json=hold_body(event_id, quantities), headers=headers
        )
        assert_problem(response, 409, "not_on_sale")
    assert (await stock(db, open_tier)).held == 0
    await hold(client, headers, tier_later.id, {open_tier: 1})  # its own window is open


async def test_more_than_the_tiers_max_per_order_is_over_the_limit(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (small, big) = await free_event(
        db,
        ticket_types=[
            {"name": "Backstage", "price": 0, "capacity": 50, "max_per_order": 2},
            {"name": "Floor", "price": 0, "capacity": 50, "max_per_order": 10},
        ],
    )
    _, headers = await sign_in()
    for quantities in ({small: 3}, {small: 3, big: 1}):
        response = await client.post(
            f"{API}/holds", json=hold_body(event.id, quantities), headers=headers
        )
        assert_problem(response, 409, "ticket_limit_exceeded")
    assert (await stock(db, big)).held == 0
    await hold(client, headers, event.id, {small: 2, big: 10})


async def test_the_per_user_limit_counts_live_holds_and_tickets_only(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, other_tier) = await free_event(db, max_tickets_per_user=4)
    _, headers = await sign_in()
    _, neighbour = await sign_in()

    async def try_hold(quantities: dict[uuid.UUID, int]) -> Response:
        return await client.post(
            f"{API}/holds", json=hold_body(event.id, quantities), headers=headers
        )

    assert_problem(await try_hold({tier: 3, other_tier: 2}), 409, "ticket_limit_exceeded")
    booking = await bought(client, headers, event, {tier: 2})  # 2 tickets
    live = await hold(client, headers, event.id, {other_tier: 2})  # + 2 held
    problem = assert_problem(await try_hold({tier: 1}), 409, "ticket_limit_exceeded")
    assert problem["detail"]
    await hold(client, neighbour, event.id, {tier: 4})  # the limit is per user

    await client.delete(f"{API}/holds/{live['id']}", headers=headers)  # released: not counted
    expiring = await hold(client, headers, event.id, {other_tier: 2})
    assert_problem(await try_hold({tier: 1}), 409, "ticket_limit_exceeded")
    await set_hold(db, expiring["id"], expires_at=utcnow() - timedelta(seconds=1))
    await hold(client, headers, event.id, {tier: 2})  # expired, even before the sweep
    assert_problem(await try_hold({tier: 1}), 409, "ticket_limit_exceeded")

    ticket = booking["tickets"][0]  # a cancelled ticket no longer counts
    assert (
        await client.delete(f"{API}/tickets/{ticket['id']}", headers=headers)
    ).status_code == 204
    await hold(client, headers, event.id, {tier: 1})
    assert_problem(await try_hold({tier: 1}), 409, "ticket_limit_exceeded")


async def test_a_pending_booking_counts_towards_the_per_user_limit(
    client: AsyncClient, db: Database, sign_in: SignIn, momo: PendingProvider
) -> None:
    event, (tier, _) = await priced_event(db, max_tickets_per_user=3)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 2})
    assert (await book(client, headers, created["id"], payment=MOMO))["status"] == "pending_payment"
    response = await client.post(
        f"{API}/holds", json=hold_body(event.id, {tier: 2}), headers=headers
    )
    assert_problem(response, 409, "ticket_limit_exceeded")
    await hold(client, headers, event.id, {tier: 1})


async def test_sold_out_names_the_tier_and_what_is_left_and_takes_nothing(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (roomy, scarce) = await free_event(
        db,
        ticket_types=[
            {"name": "Floor", "price": 0, "capacity": 50},
            {"name": "Box", "price": 0, "capacity": 3},
        ],
    )
    _, headers = await sign_in()
    await hold(client, headers, event.id, {scarce: 2})
    response = await client.post(
        f"{API}/holds", json=hold_body(event.id, {roomy: 5, scarce: 2}), headers=headers
    )
    problem = assert_problem(response, 409, "sold_out")
    assert (problem["ticket_type_id"], problem["available"]) == (str(scarce), 1)
    assert (await stock(db, roomy)).held == 0  # all or nothing
    await hold(client, headers, event.id, {roomy: 5, scarce: 1})
    response = await client.post(
        f"{API}/holds", json=hold_body(event.id, {scarce: 1}), headers=headers
    )
    assert assert_problem(response, 409, "sold_out")["available"] == 0
    await assert_audit_clean(db)


async def test_seats_of_an_overdue_hold_go_to_the_next_buyer_before_the_sweep(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db, capacity=3)
    _, early = await sign_in()
    _, late = await sign_in()
    overdue = await hold(client, early, event.id, {tier: 2})
    await hold(client, late, event.id, {tier: 1})
    response = await client.post(f"{API}/holds", json=hold_body(event.id, {tier: 3}), headers=late)
    assert assert_problem(response, 409, "sold_out")["available"] == 0  # nothing overdue yet
    await set_hold(db, overdue["id"], expires_at=utcnow() - timedelta(seconds=1))

    response = await client.post(f"{API}/holds", json=hold_body(event.id, {tier: 3}), headers=late)
    assert assert_problem(response, 409, "sold_out")["available"] == 2  # the freed seats
    await hold(client, late, event.id, {tier: 2})
    read = (await client.get(f"{API}/holds/{overdue['id']}", headers=early)).json()
    assert read["status"] == "expired"
    assert (await stock(db, tier)).held == 3
    await assert_audit_clean(db)


async def test_not_on_sale_is_answered_before_limits_and_sold_out(
    client: AsyncClient, db: Database, sign_in: SignIn, log_in: LogIn
) -> None:
    event, (tier, roomy) = await free_event(
        db,
        max_tickets_per_user=5,
        ticket_types=[
            {"name": "Box", "price": 0, "capacity": 1, "max_per_order": 2},
            {"name": "Floor", "price": 0, "capacity": 50, "max_per_order": 10},
        ],
    )
    organizer = await log_in(await organizer_of(db, event))
    _, headers = await sign_in()
    availability = f"{API}/admin/events/{event.id}/availability"
    await client.patch(availability, json={"on_sale": False}, headers=organizer)
    for quantities in (
        {tier: 3},  # also over max_per_order, and sold out
        {roomy: 6},  # also over the per-user limit
        {tier: 2, roomy: 4},  # also over the per-user limit, and sold out
    ):
        response = await client.post(
            f"{API}/holds", json=hold_body(event.id, quantities), headers=headers
        )
        assert_problem(response, 409, "not_on_sale")


async def test_limits_are_answered_before_sold_out(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, roomy) = await free_event(
        db,
        max_tickets_per_user=5,
        ticket_types=[
            {"name": "Box", "price": 0, "capacity": 1, "max_per_order": 2},
            {"name": "Floor", "price": 0, "capacity": 50, "max_per_order": 10},
        ],
    )
    _, headers = await sign_in()

    async def answer(quantities: dict[uuid.UUID, int]) -> str:
        response = await client.post(
            f"{API}/holds", json=hold_body(event.id, quantities), headers=headers
        )
        assert response.status_code == 409, response.text
        return response.json()["code"]

    assert await answer({tier: 3}) == "ticket_limit_exceeded"  # max_per_order; sold out
    assert await answer({tier: 2, roomy: 4}) == "ticket_limit_exceeded"  # per user; sold out
    assert await answer({tier: 2}) == "sold_out"
    assert (await stock(db, roomy)).held == 0


# Bookings


async def test_a_free_booking_is_confirmed_with_its_tickets(
    client: AsyncClient, db: Database, sign_in: SignIn, app
) -> None:
    event, (floor, box) = await free_event(db)
    _, headers = await sign_in(name="Amani Fan")
    created = await hold(client, headers, event.id, {floor: 2, box: 1})
    before = utcnow()
    response = await client.post(
        f"{API}/bookings", json={"hold_id": created["id"]}, headers=headers
    )
    assert response.status_code == 201, response.text
    booking = response.json()

    assert booking.keys() >= BOOKING_FIELDS
    assert booking["status"] == "confirmed"
    assert booking["event"]["id"] == str(event.id)
    assert booking["event"]["title"] == "Sauti Sol Live"
    assert when(booking["event"]["starts_at"]) == event.starts_at
    assert {"name": "KICC Grounds", "city": "Nairobi"}.items() <= booking["event"]["venue"].items()
    assert sorted(
        (i["ticket_type_id"], i["name"], i["quantity"]) for i in booking["items"]
    ) == sorted([(str(floor), "Tier 0", 2), (str(box), "Tier 1", 1)])
    assert all(i["unit_price"] == {"amount": 0, "currency": "KES"} for i in booking["items"])
    assert booking["total"] == {"amount": 0, "currency": "KES"}
    assert near(when(booking["created_at"]), before)
    assert near(when(booking["confirmed_at"]), before)
    assert booking["expires_at"] is None
    assert booking["payment"]["provider"] == "free"
    assert booking["payment"]["status"] == "successful"

    tickets = booking["tickets"]
    assert len(tickets) == 3
    signer = TicketSigner(app.state.settings.signing_secret)
    for ticket in tickets:
        assert ticket.keys() >= TICKET_FIELDS
        assert (ticket["booking_id"], ticket["event_id"]) == (booking["id"], str(event.id))
        assert ticket["holder_name"] == "Amani Fan"
        assert ticket["status"] == "valid"
        assert ticket["checked_in_at"] is None
        assert ticket["price"] == {"amount": 0, "currency": "KES"}
        assert NUMBER.match(ticket["number"]), ticket["number"]
        assert signer.verify(ticket["code"]) == uuid.UUID(ticket["id"])
    assert sorted(t["ticket_type"]["name"] for t in tickets) == ["Tier 0", "Tier 0", "Tier 1"]
    assert {t["ticket_type"]["id"] for t in tickets} == {str(floor), str(box)}
    numbers = sorted(t["number"] for t in tickets)
    assert len({n[:-3] for n in numbers}) == 1  # one booking reference
    assert [n[-2:] for n in numbers] == ["01", "02", "03"]

    read = await client.get(f"{API}/bookings/{booking['id']}", headers=headers)
    assert read.json() == booking
    held = (await client.get(f"{API}/holds/{created['id']}", headers=headers)).json()
    assert (held["status"], held["booking_id"]) == ("converted", booking["id"])
    assert ((await stock(db, floor)).sold, (await stock(db, floor)).held) == (2, 0)
    await assert_audit_clean(db)


@pytest.mark.parametrize("key", [None, "book-1"], ids=["one statement", "idempotent"])
async def test_a_free_booking_writes_the_same_rows_on_either_path(
    client: AsyncClient, db: Database, sign_in: SignIn, key: str | None
) -> None:
    """On PostgreSQL a free booking without an Idempotency-Key is one statement
    (boxoffice_book_free); with a key it takes the Python steps, as on SQLite. Both leave
    the same rows behind: here for 13 seats, 12 of them gathered from several shards."""
    spread = {"name": "Spread", "price": 0, "capacity": 40, "shards": 4, "max_per_order": 12}
    single = {"name": "Single", "price": 0, "capacity": 10, "max_per_order": 10}
    event, (wide, narrow) = await free_event(
        db, title="Ölçek Ñandú Live", ticket_types=[spread, single]
    )
    fan, headers = await sign_in(name="Zoë Ñandú")
    created = await hold(client, headers, event.id, {wide: 12, narrow: 1})
    extra = {"Idempotency-Key": key} if key else {}
    response = await client.post(
        f"{API}/bookings", json={"hold_id": created["id"]}, headers=headers | extra
    )
    assert response.status_code == 201, response.text
    booking_id = uuid.UUID(response.json()["id"])
    reference = response.json()["reference"]

    async with db.read_transaction() as session:
        booking = await session.get_one(Booking, booking_id)
        (payment,) = (await session.scalars(select(Payment))).all()
        jobs = (
            await session.scalars(select(Job).where(Job.kind == "orders.booking_confirmed"))
        ).all()
        purchases = (
            await session.scalars(select(Interaction).where(Interaction.kind == "purchase"))
        ).all()
        issued = (await session.scalars(select(Ticket).order_by(Ticket.number))).all()
        held = await session.get_one(Hold, uuid.UUID(created["id"]))
        shards = set(
            await session.scalars(select(HoldItem.stock_id).where(HoldItem.ticket_type_id == wide))
        )
    at = booking.created_at
    assert (booking.status, booking.user_id, booking.event_id, booking.hold_id) == (
        "confirmed",
        fan.id,
        event.id,
        held.id,
    )
    assert (booking.total_cents, booking.currency, booking.failure_reason) == (0, "KES", None)
    assert booking.confirmed_at == booking.updated_at == at
    assert (booking.cancelled_at, booking.reference) == (None, reference)
    assert (payment.booking_id, payment.user_id, payment.provider) == (booking_id, fan.id, "free")
    assert (payment.status, payment.amount_cents, payment.currency) == ("successful", 0, "KES")
    assert (payment.provider_reference, payment.provider_transaction_id) == (None, None)
    assert (payment.payer_phone, payment.callback_token_hash, payment.instructions) == (
        None,
        None,
        None,
    )
    assert payment.created_at == payment.updated_at == at
    assert [(j.payload, j.status, j.attempts, j.max_attempts) for j in jobs] == [
        ({"booking_id": str(booking_id)}, "pending", 0, DEFAULT_MAX_ATTEMPTS)
    ]
    assert jobs[0].run_after == jobs[0].created_at == at
    assert [(p.user_id, p.event_id, p.quantity, p.data, p.created_at) for p in purchases] == [
        (fan.id, event.id, 13, {"booking_id": str(booking_id)}, at)
    ]
    # Numbered from the title's first three ASCII letters, in tier order, past place 9.
    assert len(shards) >= 2
    assert [t.number for t in issued] == [
        f"LEK-{reference[:4]}-{reference[4:]}-{place:02d}" for place in range(1, 14)
    ]
    assert [t.ticket_type_id for t in issued] == sorted(t.ticket_type_id for t in issued)
    assert {
        (t.holder_name, t.user_id, t.event_id, t.status, t.price_cents, t.currency, t.created_at)
        for t in issued
    } == {("Zoë Ñandú", fan.id, event.id, "valid", 0, "KES", at)}
    assert (held.status, held.booking_id, held.ended_at) == ("converted", booking_id, at)
    assert ((await stock(db, wide)).sold, (await stock(db, narrow)).sold) == (12, 1)
    read = await client.get(f"{API}/bookings/{booking_id}", headers=headers)
    assert read.json() == response.json()
    await assert_audit_clean(db)


@pytest.mark.parametrize("key", [None, "book-1"], ids=["one statement", "idempotent"])
async def test_a_revoked_token_or_session_or_a_deleted_account_cannot_book(
    client: AsyncClient, db: Database, sign_in: SignIn, log_in: LogIn, app, key: str | None
) -> None:
    event, (tier, _) = await free_event(db)
    extra = {"Idempotency-Key": key} if key else {}
    fan, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 1})
    body = {"hold_id": created["id"]}

    async def revoked(change: Any) -> None:
        async with db.transaction() as session:
            await session.execute(change)
        response = await client.post(f"{API}/bookings", json=body, headers=headers | extra)
        assert_problem(response, 401, "unauthenticated")

    claims = read_access_token(
        headers["Authorization"].removeprefix("Bearer "),
        secret=app.state.settings.signing_secret,
        now=utcnow(),
    )
    assert claims is not None
    await revoked(  # the access token alone
        insert(RevokedAccessToken).values(jti=claims.token_id, expires_at=claims.expires_at)
    )
    headers = await log_in(fan)
    await revoked(  # the session alone: every session of the fan
        update(AuthSession).where(AuthSession.user_id == fan.id).values(revoked_at=utcnow())
    )
    headers = await log_in(fan)
    await revoked(update(User).where(User.id == fan.id).values(deleted_at=utcnow()))
    assert ((await stock(db, tier)).held, (await stock(db, tier)).sold) == (1, 0)


async def test_an_expired_hold_cannot_be_booked(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 1})
    await set_hold(db, created["id"], expires_at=utcnow() - timedelta(seconds=1))
    response = await client.post(
        f"{API}/bookings", json={"hold_id": created["id"]}, headers=headers
    )
    assert_problem(response, 409, "hold_expired")
    async with db.transaction() as session:  # swept: still expired
        await orders.expire_overdue(session, now=utcnow())
    response = await client.post(
        f"{API}/bookings", json={"hold_id": created["id"]}, headers=headers
    )
    assert_problem(response, 409, "hold_expired")
    assert (await client.get(f"{API}/bookings", headers=headers)).json()["total"] == 0


async def test_a_released_or_booked_hold_is_not_active(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db)
    _, headers = await sign_in()
    released = await hold(client, headers, event.id, {tier: 1})
    await client.delete(f"{API}/holds/{released['id']}", headers=headers)
    response = await client.post(
        f"{API}/bookings", json={"hold_id": released["id"]}, headers=headers
    )
    assert_problem(response, 409, "hold_not_active")

    booked = await hold(client, headers, event.id, {tier: 2})
    first = await book(client, headers, booked["id"])
    again = await client.post(f"{API}/bookings", json={"hold_id": booked["id"]}, headers=headers)
    assert_problem(again, 409, "hold_not_active")
    page = (await client.get(f"{API}/bookings", headers=headers)).json()
    assert [b["id"] for b in page["items"]] == [first["id"]]
    assert (await stock(db, tier)).sold == 2


async def test_a_priced_hold_needs_a_payment(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await priced_event(db)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 1})
    response = await client.post(
        f"{API}/bookings", json={"hold_id": created["id"]}, headers=headers
    )
    assert_problem(response, 422, "payment_required")
    held = (await client.get(f"{API}/holds/{created['id']}", headers=headers)).json()
    assert (held["status"], held.get("booking_id")) == ("active", None)


@pytest.mark.parametrize(
    "payment",
    [MOMO, {"method": "mpesa", "phone": "+254708374149"}],
    ids=["momo", "mpesa"],
)
async def test_remote_payment_methods_are_unsupported_until_registered(
    client: AsyncClient, db: Database, sign_in: SignIn, payment: dict[str, str]
) -> None:
    event, (tier, _) = await priced_event(db)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 1})
    response = await client.post(
        f"{API}/bookings", json={"hold_id": created["id"], "payment": payment}, headers=headers
    )
    assert_problem(response, 422, "unsupported_payment_method")
    assert (await client.get(f"{API}/bookings", headers=headers)).json()["total"] == 0
    assert (await stock(db, tier)).held == 1


# Cancelling


async def test_cancelling_a_booking_returns_its_seats_and_twice_is_harmless(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db, capacity=3)
    _, headers = await sign_in()
    booking = await bought(client, headers, event, {tier: 3})
    assert (await stock(db, tier)).available == 0

    cancelled = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    data = cancelled.json()
    assert data.keys() >= BOOKING_FIELDS
    assert (data["id"], data["status"]) == (booking["id"], "cancelled")
    assert {t["status"] for t in data["tickets"]} == {"cancelled"}
    assert (await stock(db, tier)).available == 3

    again = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "cancelled"
    assert (await stock(db, tier)).available == 3
    mine = (await client.get(f"{API}/tickets?status=valid", headers=headers)).json()
    assert mine["total"] == 0
    await assert_audit_clean(db)


async def test_past_the_deadline_cancelling_is_closed(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    # Starts in ten days; cancellations close eleven days before: closed already.
    event, (tier, _) = await free_event(db, cancellation_deadline_hours=24 * 11)
    _, headers = await sign_in()
    booking = await bought(client, headers, event, {tier: 2})
    response = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=headers)
    assert_problem(response, 409, "cancellation_closed")
    ticket = booking["tickets"][0]
    assert_problem(
        await client.delete(f"{API}/tickets/{ticket['id']}", headers=headers),
        409,
        "cancellation_closed",
    )
    read = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()
    assert read["status"] == "confirmed"
    assert {t["status"] for t in read["tickets"]} == {"valid"}
    assert (await stock(db, tier)).sold == 2


async def test_cancelling_tickets_one_by_one(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db, capacity=2)
    _, headers = await sign_in()
    booking = await bought(client, headers, event, {tier: 2})
    first, second = booking["tickets"]

    for _ in range(2):  # the second DELETE is harmless
        response = await client.delete(f"{API}/tickets/{first['id']}", headers=headers)
        assert response.status_code == 204, response.text
        assert response.content == b""
    assert (await stock(db, tier)).available == 1
    read = (await client.get(f"{API}/tickets/{first['id']}", headers=headers)).json()
    assert read["status"] == "cancelled"
    assert (await client.get(f"{API}/tickets/{second['id']}", headers=headers)).json()[
        "status"
    ] == "valid"
    assert (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()[
        "status"
    ] == "confirmed"

    assert (
        await client.delete(f"{API}/tickets/{second['id']}", headers=headers)
    ).status_code == 204
    after = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()
    assert after["status"] == "cancelled"
    assert {t["status"] for t in after["tickets"]} == {"cancelled"}
    assert (await stock(db, tier)).available == 2
    await assert_audit_clean(db)


# Lists


async def test_the_purchase_history_is_paged_newest_first(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, other_tier) = await free_event(db)
    _, headers = await sign_in()
    made = [(await bought(client, headers, event, {tier: 1}))["id"] for _ in range(3)]
    made.append((await bought(client, headers, event, {other_tier: 2}))["id"])
    _, stranger = await sign_in()
    await bought(client, stranger, event, {tier: 1})

    everything = await client.get(f"{API}/bookings", headers=headers)
    assert everything.status_code == 200, everything.text
    page = everything.json()
    assert (page["page"], page["limit"], page["total"]) == (1, 20, 4)
    assert [b["id"] for b in page["items"]] == made[::-1]
    newest = page["items"][0]
    assert newest.keys() >= BOOKING_FIELDS
    assert newest["event"]["title"] == "Sauti Sol Live"
    assert {"name", "city"} <= newest["event"]["venue"].keys()
    assert newest["items"][0]["quantity"] == 2
    assert len(newest["tickets"]) == 2
    assert all(t["code"] for t in newest["tickets"])

    first = (await client.get(f"{API}/bookings?limit=3", headers=headers)).json()
    second = (await client.get(f"{API}/bookings?limit=3&page=2", headers=headers)).json()
    beyond = (await client.get(f"{API}/bookings?limit=3&page=3", headers=headers)).json()
    assert (first["limit"], first["total"], len(first["items"])) == (3, 4, 3)
    assert (second["page"], second["total"], len(second["items"])) == (2, 4, 1)
    assert (beyond["items"], beyond["total"]) == ([], 4)
    assert [b["id"] for b in first["items"] + second["items"]] == made[::-1]
    full = await client.get(f"{API}/bookings?limit=100", headers=headers)
    assert full.status_code == 200
    assert full.json()["limit"] == 100


async def test_own_tickets_are_paged_and_filtered(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db)
    other, (other_tier, _) = await free_event(db)
    _, headers = await sign_in()
    here = await bought(client, headers, event, {tier: 3})
    there = await bought(client, headers, other, {other_tier: 2})
    _, stranger = await sign_in()
    await bought(client, stranger, event, {tier: 1})
    await client.delete(f"{API}/tickets/{here['tickets'][0]['id']}", headers=headers)

    everything = (await client.get(f"{API}/tickets", headers=headers)).json()
    assert (everything["page"], everything["limit"], everything["total"]) == (1, 20, 5)
    assert all(t.keys() >= TICKET_FIELDS and t["code"] for t in everything["items"])
    ids = {t["id"] for t in here["tickets"] + there["tickets"]}
    assert {t["id"] for t in everything["items"]} == ids

    pages = [
        (await client.get(f"{API}/tickets?limit=2&page={n}", headers=headers)).json()
        for n in (1, 2, 3)
    ]
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert all(p["total"] == 5 for p in pages)
    assert {t["id"] for p in pages for t in p["items"]} == ids

    by_event = (await client.get(f"{API}/tickets?event_id={other.id}", headers=headers)).json()
    assert {t["id"] for t in by_event["items"]} == {t["id"] for t in there["tickets"]}
    assert by_event["total"] == 2
    cancelled = (await client.get(f"{API}/tickets?status=cancelled", headers=headers)).json()
    assert [t["id"] for t in cancelled["items"]] == [here["tickets"][0]["id"]]
    both = (
        await client.get(f"{API}/tickets?event_id={event.id}&status=valid", headers=headers)
    ).json()
    assert both["total"] == 2
    assert all(t["status"] == "valid" and t["event_id"] == str(event.id) for t in both["items"])
    nothing = (await client.get(f"{API}/tickets?event_id={uuid.uuid4()}", headers=headers)).json()
    assert (nothing["items"], nothing["total"]) == ([], 0)
    assert (await client.get(f"{API}/tickets?status=used", headers=headers)).json()["total"] == 0


# Ticket codes


async def test_ticket_codes_are_signed_and_tamper_evident(
    client: AsyncClient, db: Database, sign_in: SignIn, app
) -> None:
    event, (tier, _) = await free_event(db)
    _, headers = await sign_in()
    ticket = (await bought(client, headers, event, {tier: 1}))["tickets"][0]
    code = ticket["code"]
    signer = TicketSigner(app.state.settings.signing_secret)
    assert signer.verify(code) == uuid.UUID(ticket["id"])
    assert (await client.get(f"{API}/tickets/{ticket['id']}", headers=headers)).json()[
        "code"
    ] == code

    payload, signature = code.split(".")
    for position in (2, len(payload) // 2, len(payload) + 1 + len(signature) // 2, len(code) - 5):
        changed = "A" if code[position] != "A" else "B"
        forged = code[:position] + changed + code[position + 1 :]
        assert signer.verify(forged) is None, position
    for garbled in (
        code[:-10],
        code[: len(code) // 2],
        payload,
        payload + ".",
        "",
        "." * 3,
        "x" * 500,
    ):
        assert signer.verify(garbled) is None, garbled
    other_ticket = uuid.uuid4()
    swapped = signer.sign(other_ticket).split(".")[0] + "." + signature  # someone else's id
    assert signer.verify(swapped) is None
    assert TicketSigner("another-secret-" + "y" * 32).verify(code) is None
    assert (
        signer.verify(TicketSigner("another-secret-" + "y" * 32).sign(uuid.UUID(ticket["id"])))
        is None
    )


# The paid flow, with a fake remote provider


async def test_a_paid_booking_waits_for_the_money_then_is_confirmed_once(
    client: AsyncClient, db: Database, sign_in: SignIn, momo: PendingProvider, app
) -> None:
    event, (tier, vip) = await priced_event(db, capacity=5)
    _, headers = await sign_in(name="Paying Fan")
    created = await hold(client, headers, event.id, {tier: 2, vip: 1})
    before = utcnow()
    booking = await book(client, headers, created["id"], payment=MOMO)

    assert booking["status"] == "pending_payment"
    assert booking["total"] == {"amount": 750000, "currency": "KES"}
    payment = booking["payment"]
    assert {"id", "status", "provider", "instructions"} <= payment.keys()
    assert (payment["status"], payment["provider"]) == ("pending", "momo")
    assert payment["instructions"] == "Approve the payment on your phone (*165#)."
    assert booking["tickets"] == []
    assert booking["confirmed_at"] is None
    assert momo.started == [uuid.UUID(payment["id"])]
    window = timedelta(seconds=app.state.settings.payment_window)
    assert near(when(booking["expires_at"]), before + window)
    held = (await client.get(f"{API}/holds/{created['id']}", headers=headers)).json()
    assert (held["status"], held["booking_id"]) == ("active", booking["id"])
    assert near(when(held["expires_at"]), before + window)
    assert ((await stock(db, tier)).held, (await stock(db, tier)).sold) == (2, 0)
    again = await client.post(f"{API}/bookings", json={"hold_id": created["id"]}, headers=headers)
    assert_problem(again, 409, "hold_not_active")  # booked, waiting for its money
    release = await client.delete(f"{API}/holds/{created['id']}", headers=headers)
    assert_problem(release, 409, "hold_not_active")
    async with db.read_transaction() as session:
        row = await session.get_one(Payment, uuid.UUID(payment["id"]))
        assert (row.provider_reference, row.payer_phone) == (f"momo-{payment['id']}", MOMO["phone"])

    confirmed = await confirm(db, payment["id"])
    assert confirmed is not None
    assert confirmed.status == "confirmed"
    read = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()
    assert read["status"] == "confirmed"
    assert read["confirmed_at"] is not None
    assert read["expires_at"] is None
    assert read["payment"]["status"] == "successful"
    assert len(read["tickets"]) == 3
    assert sorted(t["price"]["amount"] for t in read["tickets"]) == [150000, 150000, 450000]
    assert all(t["holder_name"] == "Paying Fan" and t["code"] for t in read["tickets"])
    assert all(NUMBER.match(t["number"]) for t in read["tickets"])

    assert await confirm(db, payment["id"]) is None  # a duplicate callback
    again = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()
    assert again["tickets"] == read["tickets"]
    assert (await client.get(f"{API}/tickets", headers=headers)).json()["total"] == 3
    assert await refunds_of(db, payment["id"]) == []
    assert ((await stock(db, tier)).held, (await stock(db, tier)).sold) == (0, 2)
    await assert_audit_clean(db)


async def test_cancelling_paid_tickets_refunds_them(
    client: AsyncClient, db: Database, sign_in: SignIn, momo: PendingProvider
) -> None:
    event, (tier, _) = await priced_event(db)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 3})
    booking = await book(client, headers, created["id"], payment=MOMO)
    await confirm(db, booking["payment"]["id"])
    tickets = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()[
        "tickets"
    ]
    assert (
        await client.delete(f"{API}/tickets/{tickets[0]['id']}", headers=headers)
    ).status_code == 204
    refunds = await refunds_of(db, booking["payment"]["id"])
    assert [(r.amount_cents, r.reason) for r in refunds] == [(150000, "cancelled")]
    cancelled = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    refunds = await refunds_of(db, booking["payment"]["id"])
    assert sorted(r.amount_cents for r in refunds) == [150000, 300000]
    assert {str(r.id) for r in refunds} <= await refund_jobs(db)
    assert (await stock(db, tier)).available == 10
    await assert_audit_clean(db)


async def test_a_failed_attempt_leaves_the_booking_pending_with_its_seats(
    client: AsyncClient, db: Database, sign_in: SignIn, momo: PendingProvider, app
) -> None:
    event, (tier, _) = await priced_event(db, capacity=2)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 2})
    booking = await book(client, headers, created["id"], payment=MOMO)
    ttl = timedelta(seconds=app.state.settings.hold_ttl)
    async with db.transaction() as session:
        assert await orders.fail_payment(
            session,
            uuid.UUID(booking["payment"]["id"]),
            reason="APPROVAL_REJECTED",
            hold_ttl=ttl,
            now=utcnow(),
        )
    read = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()
    assert read["status"] == "pending_payment"
    assert read["payment"]["status"] == "failed"
    assert read["payment"]["failure_reason"] == "APPROVAL_REJECTED"
    assert read["tickets"] == []
    assert (await stock(db, tier)).held == 2
    held = (await client.get(f"{API}/holds/{created['id']}", headers=headers)).json()
    assert held["status"] == "active"


async def test_late_money_retakes_the_seats_when_they_are_still_there(
    client: AsyncClient, db: Database, sign_in: SignIn, momo: PendingProvider, app
) -> None:
    event, (tier, _) = await priced_event(db, capacity=2)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 2})
    booking = await book(client, headers, created["id"], payment=MOMO)
    later = utcnow() + timedelta(seconds=app.state.settings.payment_window + 60)
    async with db.transaction() as session:
        assert await orders.expire_overdue(session, now=later) >= 1
    read = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()
    assert read["status"] == "expired"
    assert (await stock(db, tier)).available == 2

    await confirm(db, booking["payment"]["id"], now=later)
    read = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()
    assert read["status"] == "confirmed"
    assert len(read["tickets"]) == 2
    assert ((await stock(db, tier)).sold, (await stock(db, tier)).held) == (2, 0)
    assert await refunds_of(db, booking["payment"]["id"]) == []
    await assert_audit_clean(db)


async def test_late_money_for_seats_sold_meanwhile_fails_and_is_refunded(
    client: AsyncClient, db: Database, sign_in: SignIn, momo: PendingProvider, app
) -> None:
    event, (tier, _) = await priced_event(db, capacity=2)
    _, headers = await sign_in()
    _, rival = await sign_in()
    created = await hold(client, headers, event.id, {tier: 2})
    booking = await book(client, headers, created["id"], payment=MOMO)
    later = utcnow() + timedelta(seconds=app.state.settings.payment_window + 60)
    async with db.transaction() as session:
        await orders.expire_overdue(session, now=later)
    await hold(client, rival, event.id, {tier: 2})  # the seats go to someone else

    await confirm(db, booking["payment"]["id"], now=later)
    read = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()
    assert read["status"] == "failed"
    assert read["failure_reason"] == "seats_gone"
    assert read["tickets"] == []
    assert read["payment"]["status"] == "successful"
    (refund,) = await refunds_of(db, booking["payment"]["id"])
    assert (refund.amount_cents, refund.reason, refund.status) == (300000, "seats_gone", "pending")
    assert str(refund.id) in await refund_jobs(db)
    assert ((await stock(db, tier)).sold, (await stock(db, tier)).held) == (0, 2)
    assert await confirm(db, booking["payment"]["id"], now=later) is None
    assert len(await refunds_of(db, booking["payment"]["id"])) == 1
    await assert_audit_clean(db)


async def test_cancelling_a_pending_booking_frees_the_seats_and_late_money_is_refunded(
    client: AsyncClient, db: Database, sign_in: SignIn, momo: PendingProvider
) -> None:
    event, (tier, _) = await priced_event(db, capacity=2)
    _, headers = await sign_in()
    created = await hold(client, headers, event.id, {tier: 2})
    booking = await book(client, headers, created["id"], payment=MOMO)
    cancelled = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert (await stock(db, tier)).available == 2  # at once
    held = (await client.get(f"{API}/holds/{created['id']}", headers=headers)).json()
    assert held["status"] == "released"

    await confirm(db, booking["payment"]["id"])
    read = (await client.get(f"{API}/bookings/{booking['id']}", headers=headers)).json()
    assert read["status"] == "cancelled"
    assert read["tickets"] == []
    (refund,) = await refunds_of(db, booking["payment"]["id"])
    assert (refund.amount_cents, refund.reason) == (300000, "cancelled")
    assert str(refund.id) in await refund_jobs(db)
    assert (await stock(db, tier)).available == 2
    await assert_audit_clean(db)


# Idempotency-Key


async def test_a_retried_hold_is_answered_again_and_takes_the_seats_once(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, other_tier) = await free_event(db)
    _, headers = await sign_in()
    keyed = {**headers, "Idempotency-Key": "hold-7f3a"}
    body = hold_body(event.id, {tier: 3})
    first = await client.post(f"{API}/holds", json=body, headers=keyed)
    second = await client.post(f"{API}/holds", json=body, headers=keyed)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert second.json() == first.json()
    assert (await stock(db, tier)).held == 3

    reused = await client.post(
        f"{API}/holds", json=hold_body(event.id, {other_tier: 3}), headers=keyed
    )
    assert_problem(reused, 422, "idempotency_key_reused")
    assert (await stock(db, other_tier)).held == 0
    fresh = await client.post(
        f"{API}/holds", json=body, headers={**headers, "Idempotency-Key": "k2"}
    )
    assert fresh.json()["id"] != first.json()["id"]
    assert (await stock(db, tier)).held == 6
    unkeyed = await hold(client, headers, event.id, {tier: 1})
    assert unkeyed["id"] not in {first.json()["id"], fresh.json()["id"]}


async def test_users_have_their_own_idempotency_keys(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db)
    _, alice = await sign_in()
    _, bob = await sign_in()
    body = hold_body(event.id, {tier: 2})
    key = {"Idempotency-Key": "same-key"}
    a = await client.post(f"{API}/holds", json=body, headers={**alice, **key})
    b = await client.post(f"{API}/holds", json=body, headers={**bob, **key})
    assert (a.status_code, b.status_code) == (201, 201), b.text
    assert a.json()["id"] != b.json()["id"]
    assert (await stock(db, tier)).held == 4
    assert (await client.get(f"{API}/holds/{b.json()['id']}", headers=bob)).status_code == 200
    other_body = await client.post(
        f"{API}/holds", json=hold_body(event.id, {tier: 1}), headers={**bob, "Idempotency-Key": "x"}
    )
    assert other_body.status_code == 201  # another key of bob's: no clash with alice's


async def test_an_idempotency_key_older_than_a_day_no_longer_replays(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db)
    user, headers = await sign_in()
    keyed = {**headers, "Idempotency-Key": "yesterday"}
    body = hold_body(event.id, {tier: 1})
    first = (await client.post(f"{API}/holds", json=body, headers=keyed)).json()
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.user_id == user.id)
            .values(created_at=now - timedelta(hours=25), expires_at=now - timedelta(hours=1))
        )
    second = await client.post(f"{API}/holds", json=body, headers=keyed)
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first["id"]
    assert (await stock(db, tier)).held == 2
    replay = await client.post(f"{API}/holds", json=body, headers=keyed)
    assert replay.json()["id"] == second.json()["id"]  # the new answer is remembered


async def test_a_retried_booking_is_answered_again_with_the_same_tickets(
    client: AsyncClient, db: Database, sign_in: SignIn
) -> None:
    event, (tier, _) = await free_event(db)
    _, headers = await sign_in()
    keyed = {**headers, "Idempotency-Key": "book-1"}
    created = await hold(client, headers, event.id, {tier: 2})
    first = await client.post(f"{API}/bookings", json={"hold_id": created["id"]}, headers=keyed)
    second = await client.post(f"{API}/bookings", json={"hold_id": created["id"]}, headers=keyed)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert second.json()["id"] == first.json()["id"]
    assert [t["id"] for t in second.json()["tickets"]] == [t["id"] for t in first.json()["tickets"]]
    assert (await client.get(f"{API}/tickets", headers=headers)).json()["total"] == 2
    assert (await stock(db, tier)).sold == 2

    other = await hold(client, headers, event.id, {tier: 1})
    reused = await client.post(f"{API}/bookings", json={"hold_id": other["id"]}, headers=keyed)
    assert_problem(reused, 422, "idempotency_key_reused")
    held = (await client.get(f"{API}/holds/{other['id']}", headers=headers)).json()
    assert held["status"] == "active"
    # The same key on another endpoint is another key.
    same_key_hold = await client.post(
        f"{API}/holds", json=hold_body(event.id, {tier: 1}), headers=keyed
    )
    assert same_key_hold.status_code == 201, same_key_hold.text


async def test_a_retried_paid_booking_starts_one_payment(
    client: AsyncClient, db: Database, sign_in: SignIn, momo: PendingProvider
) -> None:
    event, (tier, _) = await priced_event(db)
    _, headers = await sign_in()
    keyed = {**headers, "Idempotency-Key": "pay-once"}
    created = await hold(client, headers, event.id, {tier: 1})
    body = {"hold_id": created["id"], "payment": MOMO}
    first = await client.post(f"{API}/bookings", json=body, headers=keyed)
    second = await client.post(f"{API}/bookings", json=body, headers=keyed)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["payment"]["id"] == first.json()["payment"]["id"]
    assert len(momo.started) == 1
    async with db.read_transaction() as session:
        payments = await session.scalars(
            select(Payment).where(Payment.booking_id == uuid.UUID(first.json()["id"]))
        )
        assert len(list(payments)) == 1


async def test_a_retried_paid_booking_gets_the_first_answer_again(
    client: AsyncClient, db: Database, sign_in: SignIn, momo: PendingProvider
) -> None:
    """API.md: the same key and body "returns the first response again". A fan whose
    connection dropped retries to learn how to approve the payment: the instructions
    belong to that answer."""
    event, (tier, _) = await priced_event(db)
    _, headers = await sign_in()
    keyed = {**headers, "Idempotency-Key": "lost-connection"}
    created = await hold(client, headers, event.id, {tier: 1})
    body = {"hold_id": created["id"], "payment": MOMO}
    first = await client.post(f"{API}/bookings", json=body, headers=keyed)
    assert first.json()["payment"]["instructions"]
    second = await client.post(f"{API}/bookings", json=body, headers=keyed)
    assert second.status_code == first.status_code
    assert second.json()["payment"] == first.json()["payment"]
    assert second.json() == first.json()
