"""Holds for two tiers at once, the items listed in opposite orders by different fans
(ARCHITECTURE §5.1: tiers are taken in id order, all or nothing). Nobody deadlocks (a
deadlock would answer 503 busy), and no hold keeps one tier without the other."""

import asyncio
import random
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from boxoffice.accounts.models import User
from boxoffice.app import create_app
from boxoffice.db import Database, utcnow
from boxoffice.inventory.models import HoldItem, TicketStock
from boxoffice.orders import service as orders
from boxoffice.orders.schemas import BookingCreate
from tests.concurrency.helpers import (
    API,
    StockWatch,
    active_holds,
    backend_pid,
    drifts,
    hold_body,
    hold_seats,
    lock_shard,
    signed_in_fans,
    signing_settings,
    stock_of,
    until_blocked_by,
)
from tests.conftest import make_client
from tests.factories import create_user
from tests.orders.helpers import free_event
from tests.payments.fakes import providers_with

FANS = 80
A_SEATS, B_SEATS = 30, 45  # each fan wants 1 A + 2 B: B runs out after 22 holds, A never
A_SHARDS, B_SHARDS = 1, 4


async def test_holds_over_two_tiers_in_opposite_orders_neither_deadlock_nor_half_hold(
    database_url: str, tmp_path: Path, committing_db: Database
) -> None:
    event, (a, b) = await free_event(
        committing_db,
        ticket_types=[
            {"name": "A", "price": 0, "capacity": A_SEATS, "shards": A_SHARDS},
            {"name": "B", "price": 0, "capacity": B_SEATS, "shards": B_SHARDS},
        ],
    )
    settings = signing_settings(database_url, tmp_path)
    fans = await signed_in_fans(committing_db, settings, FANS)
    a_first = hold_body(event.id, {a: 1, b: 2})
    b_first = hold_body(event.id, {b: 2, a: 1})
    assert a_first["items"] == b_first["items"][::-1]
    watch = StockWatch(committing_db, {a: A_SEATS, b: B_SEATS})

    async with make_client(create_app(settings, db=committing_db)) as client:

        async def fan(number: int, headers: dict[str, str]):
            body = a_first if number % 2 else b_first
            response = await client.post(f"{API}/holds", json=body, headers=headers)
            if response.status_code == 201:
                watch.granted.update({a: 1, b: 2})
            return response

        watching = asyncio.create_task(watch.run())
        try:
            responses = await asyncio.gather(*(fan(n, h) for n, h in enumerate(fans)))
        finally:
            watch.stop()
            await watching

    statuses = Counter(r.status_code for r in responses)
    winners = B_SEATS // 2
    assert statuses == {201: winners, 409: FANS - winners}, [
        r.json() for r in responses if r.status_code != 201
    ][:3]
    for response in responses:
        answer = response.json()
        if response.status_code == 201:
            quantities = {i["ticket_type_id"]: i["quantity"] for i in answer["items"]}
            assert quantities == {str(a): 1, str(b): 2}, answer
        else:  # B ran out; the A seat taken first was given back with the transaction
            assert answer["code"] == "sold_out", answer
            assert answer["ticket_type_id"] == str(b)
            assert answer["available"] == B_SEATS - 2 * winners
    # Both orders won and lost: the listing order made no difference.
    won = Counter(n % 2 for n, r in enumerate(responses) if r.status_code == 201)
    assert set(won) == {0, 1}, won

    assert watch.violations == []
    assert await stock_of(committing_db, a) == (A_SEATS, 0, winners, A_SHARDS)
    assert await stock_of(committing_db, b) == (B_SEATS, 0, 2 * winners, B_SHARDS)
    live = await active_holds(committing_db, event.id)
    assert len(live) == winners
    assert await _seats_per_hold(committing_db, [h.id for h in live]) == {
        hold.id: {a: 1, b: 2} for hold in live
    }
    assert await drifts(committing_db) == []


async def _seats_per_hold(
    db: Database, hold_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[uuid.UUID, int]]:
    seats: dict[uuid.UUID, Counter[uuid.UUID]] = {}
    async with db.read_transaction() as session:
        for item in await session.scalars(select(HoldItem).where(HoldItem.hold_id.in_(hold_ids))):
            seats.setdefault(item.hold_id, Counter())[item.ticket_type_id] += item.quantity
    return {hold: dict(counter) for hold, counter in seats.items()}


async def test_holds_and_releases_over_two_tiers_at_once_never_deadlock(
    database_url: str, tmp_path: Path, committing_db: Database
) -> None:
    """New holds (both orders) race with early releases of older holds over the same two
    tiers: releases lock the hold and then the shards, holds lock the shards in tier
    order; nothing may wait on itself (503), and every seat is counted once."""
    event, (a, b) = await free_event(
        committing_db,
        ticket_types=[
            {"name": "A", "price": 0, "capacity": A_SEATS, "shards": A_SHARDS},
            {"name": "B", "price": 0, "capacity": B_SEATS, "shards": B_SHARDS},
        ],
    )
    settings = signing_settings(database_url, tmp_path)
    owners = await signed_in_fans(committing_db, settings, 15)
    fans = await signed_in_fans(committing_db, settings, 50)
    app = create_app(settings, db=committing_db)
    bodies = [hold_body(event.id, {a: 1, b: 2}), hold_body(event.id, {b: 2, a: 1})]

    async with make_client(app) as client:
        older = [
            await client.post(f"{API}/holds", json=bodies[n % 2], headers=headers)
            for n, headers in enumerate(owners)
        ]
        assert {r.status_code for r in older} == {201}
        releases = [
            client.delete(f"{API}/holds/{r.json()['id']}", headers=headers)
            for r, headers in zip(older, owners, strict=True)
        ]
        holds = [
            client.post(f"{API}/holds", json=bodies[n % 2], headers=headers)
            for n, headers in enumerate(fans)
        ]
        tasks = [*holds, *releases]
        order = list(range(len(tasks)))
        random.shuffle(order)
        answers = await asyncio.gather(*(tasks[i] for i in order))
        responses = [answers[order.index(i)] for i in range(len(tasks))]

    released, placed = responses[len(holds) :], responses[: len(holds)]
    assert {r.status_code for r in released} == {204}, [r.text for r in released][:3]
    assert {r.status_code for r in placed} <= {201, 409}, Counter(r.status_code for r in placed)
    refused = [r.json() for r in placed if r.status_code == 409]
    assert {(p["code"], p["ticket_type_id"]) for p in refused} <= {("sold_out", str(b))}
    won = [r.json() for r in placed if r.status_code == 201]
    assert B_SEATS // 2 - len(owners) <= len(won) <= B_SEATS // 2
    for hold in won:
        assert {i["ticket_type_id"]: i["quantity"] for i in hold["items"]} == {
            str(a): 1,
            str(b): 2,
        }
    live = await active_holds(committing_db, event.id)
    assert sorted(str(h.id) for h in live) == sorted(h["id"] for h in won)
    assert await stock_of(committing_db, a) == (A_SEATS, 0, len(won), A_SHARDS)
    assert await stock_of(committing_db, b) == (B_SEATS, 0, 2 * len(won), B_SHARDS)
    assert await drifts(committing_db) == []


async def test_cancelling_an_event_locks_its_shards_in_the_order_holds_take_them(
    committing_db: Database,
) -> None:
    """The organizer cancels while a two-tier hold is in flight: it has the lower tier's
    shard and will go for the higher one (it cannot see the cancellation yet). The
    cancellation must wait for the lower shard first, holding none of the higher tier, or
    the two would deadlock. Releasing a live hold on the higher tier before cancelling a
    booking on the lower one used to lock them the other way round."""
    if committing_db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: no shard is ever locked by another")
    event, tiers = await free_event(
        committing_db,
        ticket_types=[
            {"name": name, "price": 0, "capacity": 10, "shards": 1} for name in ("X", "Y")
        ],
    )
    lower, higher = sorted(tiers)
    now = utcnow()
    fan, other_fan = await create_user(committing_db), await create_user(committing_db)
    for user, tier in ((fan, lower), (other_fan, higher)):
        hold = await hold_seats(committing_db, user, event.id, {tier: 2}, now=now)
        if tier == lower:  # a confirmed booking on the lower tier, a live hold on the higher
            async with committing_db.transaction() as session:
                await orders.book(
                    session,
                    user=user,
                    data=BookingCreate.model_validate({"hold_id": str(hold.id)}),
                    providers=providers_with(),
                    payment_window=timedelta(minutes=15),
                    now=now,
                )
    async with committing_db.transaction() as session:
        organizer = await session.get(User, event.organizer_id)
        shard = {
            tier_id: stock_id
            for stock_id, tier_id in await session.execute(
                select(TicketStock.id, TicketStock.ticket_type_id)
            )
        }

    async def cancel() -> None:
        async with committing_db.transaction() as session:
            await orders.cancel_event(session, event_id=event.id, manager=organizer, now=now)

    engine = committing_db.engine
    async with engine.connect() as two_tier_hold, engine.connect() as probe:
        await two_tier_hold.execute(lock_shard(shard[lower]))
        cancelling = asyncio.create_task(cancel())
        await until_blocked_by(probe, await backend_pid(two_tier_hold))
        await two_tier_hold.execute(lock_shard(shard[higher], nowait=True))  # free to take
        await two_tier_hold.rollback()
        await asyncio.wait_for(cancelling, 10)
    assert await stock_of(committing_db, lower) == (10, 0, 0, 1)
    assert await stock_of(committing_db, higher) == (10, 0, 0, 1)
    assert await drifts(committing_db) == []
