"""One Idempotency-Key and body sent twenty times at once (a client retrying through a
flaky network, ARCHITECTURE §5.7): the work is done once and every answer is the same
201, the first one's or its replay."""

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from boxoffice.app import create_app
from boxoffice.db import Database
from boxoffice.orders.models import Booking
from boxoffice.payments.models import Payment
from boxoffice.tickets.models import Ticket
from tests.concurrency.helpers import (
    API,
    active_holds,
    drifts,
    hold_body,
    signed_in_fans,
    signing_settings,
    stock_of,
)
from tests.concurrency.test_lifecycle_races import PHONE
from tests.conftest import make_client
from tests.orders.helpers import free_event
from tests.payments.fakes import PendingProvider, use_providers

RETRIES = 20
SEATS = 3


async def test_one_key_sent_twenty_times_at_once_holds_the_seats_once(
    database_url: str, tmp_path: Path, committing_db: Database
) -> None:
    event, (tier,) = await free_event(committing_db, capacity=50, tiers=1)
    settings = signing_settings(database_url, tmp_path)
    (fan,) = await signed_in_fans(committing_db, settings, 1)
    headers = {**fan, "Idempotency-Key": f"hold-{uuid.uuid4()}"}
    body = hold_body(event.id, {tier: SEATS})

    async with make_client(create_app(settings, db=committing_db)) as client:
        responses = await asyncio.gather(
            *(client.post(f"{API}/holds", json=body, headers=headers) for _ in range(RETRIES))
        )

    assert [r.status_code for r in responses] == [201] * RETRIES, [
        r.json() for r in responses if r.status_code != 201
    ][:3]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await stock_of(committing_db, tier) == (50, 0, SEATS, 1)
    assert [str(h.id) for h in await active_holds(committing_db, event.id)] == [
        responses[0].json()["id"]
    ]
    assert await drifts(committing_db) == []


@pytest.mark.parametrize("price", [0, 150_000], ids=["free", "paid"])
async def test_one_key_sent_twenty_times_at_once_books_once(
    database_url: str, tmp_path: Path, committing_db: Database, price: int
) -> None:
    event, (tier,) = await free_event(
        committing_db, ticket_types=[{"name": "Regular", "price": price, "capacity": 50}]
    )
    settings = signing_settings(database_url, tmp_path)
    (fan,) = await signed_in_fans(committing_db, settings, 1)
    app = create_app(settings, db=committing_db)
    provider = PendingProvider()
    use_providers(app, provider)

    async with make_client(app) as client:
        held = await client.post(
            f"{API}/holds", json=hold_body(event.id, {tier: SEATS}), headers=fan
        )
        assert held.status_code == 201, held.text
        body: dict[str, object] = {"hold_id": held.json()["id"]}
        if price:
            body["payment"] = {"method": "momo", "phone": PHONE}
        headers = {**fan, "Idempotency-Key": f"book-{uuid.uuid4()}"}
        responses = await asyncio.gather(
            *(client.post(f"{API}/bookings", json=body, headers=headers) for _ in range(RETRIES))
        )

    assert [r.status_code for r in responses] == [201] * RETRIES, [
        r.json() for r in responses if r.status_code != 201
    ][:3]
    (booking_id,) = {r.json()["id"] for r in responses}
    assert {r.json()["status"] for r in responses} == {"pending_payment" if price else "confirmed"}
    async with committing_db.read_transaction() as session:
        bookings = list(await session.scalars(select(Booking.id)))
        payments = list(await session.scalars(select(Payment.id)))
        tickets = await session.scalar(select(func.count(Ticket.id)))
    assert [str(b) for b in bookings] == [booking_id]
    assert len(payments) == 1
    assert tickets == (0 if price else SEATS)
    assert provider.started == (payments if price else [])
    assert await stock_of(committing_db, tier) == (
        (50, 0, SEATS, 1) if price else (50, SEATS, 0, 1)
    )
    assert await drifts(committing_db) == []
