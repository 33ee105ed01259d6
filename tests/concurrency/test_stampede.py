"""A flash sale over real HTTP: 220 fans at once on one tier of 50 seats, against a real
`boxoffice serve` process (ARCHITECTURE §5). Exactly the seats there are get sold, the
others hear sold_out, nobody gets a 5xx, and at no instant does a shard hold more than its
capacity."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from boxoffice.accounts.models import User
from boxoffice.db import Database, utcnow
from boxoffice.inventory.errors import SoldOut
from boxoffice.inventory.models import Hold, HoldStatus, TicketStock
from tests.concurrency.helpers import (
    CAPACITY,
    STAMPEDE,
    StockWatch,
    active_holds,
    assert_sold_out_exactly,
    backend_pid,
    drifts,
    hold_body,
    hold_seats,
    lock_shard,
    one_tier,
    signed_in_fans,
    signing_settings,
    stampede,
    stock_of,
    until_blocked_by,
)
from tests.factories import create_user

LATE = 40  # fans arriving after the overdue holds ran out: fewer than the seats


@pytest.mark.parametrize(
    ("shards", "quantity"),
    [
        pytest.param(1, 1, id="one-shard"),
        pytest.param(8, 1, id="8-shards"),
        # 50 seats as 7+7+6+6+6+6+6+6 and 3 per fan: the last holds must gather their seats
        # from several shards, and only the 2 seats that fit nobody may be left.
        pytest.param(8, 3, id="8-shards-3-each"),
    ],
)
async def test_a_stampede_holds_exactly_the_seats_of_the_tier(
    database_url: str,
    tmp_path: Path,
    committing_db: Database,
    served_url: str,
    shards: int,
    quantity: int,
) -> None:
    event, tier = await one_tier(committing_db, shards=shards)
    fans = await signed_in_fans(committing_db, signing_settings(database_url, tmp_path), STAMPEDE)

    outcome = await stampede(
        [served_url],
        fans,
        hold_body(event.id, {tier: quantity}),
        StockWatch(committing_db, {tier: CAPACITY}),
    )

    assert_sold_out_exactly(outcome, tier_id=tier, capacity=CAPACITY, quantity=quantity)
    winners = CAPACITY // quantity
    assert await stock_of(committing_db, tier) == (CAPACITY, 0, winners * quantity, shards)
    live = await active_holds(committing_db, event.id)
    assert sorted(str(h.id) for h in live) == sorted(h["id"] for h in outcome.with_status(201))
    assert await drifts(committing_db) == []


async def test_a_stampede_on_seats_kept_by_overdue_holds_turns_nobody_away(
    database_url: str,
    tmp_path: Path,
    committing_db: Database,
    served_url: str,
) -> None:
    """Every seat sits in a hold that ran out ten minutes ago and that no worker has swept
    yet; fewer fans than seats arrive at once. Each one's first try finds the tier full,
    the overdue holds are released, and every fan gets a seat (§5.4: an expired hold never
    turns a buyer away), whoever of them did the releasing."""
    event, tier = await one_tier(committing_db, shards=1)
    past = utcnow() - timedelta(minutes=20)
    overdue = []
    for _ in range(CAPACITY // 10):
        owner = await create_user(committing_db)
        hold = await hold_seats(committing_db, owner, event.id, {tier: 10}, now=past)
        overdue.append(hold.id)
    assert await stock_of(committing_db, tier) == (CAPACITY, 0, CAPACITY, 1)
    fans = await signed_in_fans(committing_db, signing_settings(database_url, tmp_path), LATE)

    outcome = await stampede(
        [served_url],
        fans,
        hold_body(event.id, {tier: 1}),
        StockWatch(committing_db, {tier: CAPACITY}),
    )

    refused = outcome.with_status(409)
    assert outcome.statuses == {201: LATE}, (outcome.statuses, refused[:3])
    assert outcome.watch.violations == []
    assert await stock_of(committing_db, tier) == (CAPACITY, 0, LATE, 1)
    async with committing_db.read_transaction() as session:
        ended = await session.scalars(select(Hold.status).where(Hold.id.in_(overdue)))
        assert set(ended) == {HoldStatus.EXPIRED}
    assert await drifts(committing_db) == []


async def test_a_hold_that_finds_the_shards_with_seats_locked_waits_for_one_holding_no_other(
    committing_db: Database,
) -> None:
    """More buyers at once than shards: every shard that has the seats is locked. The hold
    waits for one of them and holds no other shard meanwhile. (It used to lock the whole
    tier in order and gather, so every buyer behind it found all the shards locked too.)"""
    sale = await LockedShards.set_up(committing_db)
    async with sale.other_buyer_on_the_free_shard() as (other_buyer, probe):
        placing = asyncio.create_task(sale.hold_a_seat())
        await sale.until_the_hold_waits(probe)
        await probe.execute(lock_shard(sale.full, nowait=True))  # not held by the waiter
        await probe.rollback()
        await other_buyer.rollback()
        hold = await asyncio.wait_for(placing, 10)
    assert [(item.stock_id, item.quantity) for item in hold.items] == [(sale.free, 1)]
    assert await stock_of(committing_db, sale.tier) == (4, 0, 3, 2)


async def test_a_hold_whose_awaited_shard_sells_out_meanwhile_gathers_and_says_so(
    committing_db: Database,
) -> None:
    """The shard it waited for was emptied by the buyer ahead: the hold falls back to
    looking at every shard, answers sold_out with what is truly left, and takes nothing."""
    sale = await LockedShards.set_up(committing_db)
    async with sale.other_buyer_on_the_free_shard() as (other_buyer, probe):
        placing = asyncio.create_task(sale.hold_a_seat())
        await sale.until_the_hold_waits(probe)
        await other_buyer.execute(
            update(TicketStock).where(TicketStock.id == sale.free).values(held=2)
        )
        await other_buyer.commit()
        with pytest.raises(SoldOut) as refused:
            await asyncio.wait_for(placing, 10)
    assert (refused.value.ticket_type_id, refused.value.available) == (sale.tier, 0)
    assert await stock_of(committing_db, sale.tier) == (4, 0, 4, 2)


@dataclass
class LockedShards:
    """A tier of 4 seats in 2 shards whose lower shard is full: a gather would lock it
    first. PostgreSQL only: SQLite has one writer at a time and never locks a shard."""

    db: Database
    event_id: uuid.UUID
    tier: uuid.UUID
    full: uuid.UUID
    free: uuid.UUID
    fan: User
    other_buyer_pid: int = 0

    @classmethod
    async def set_up(cls, db: Database) -> "LockedShards":
        if db.dialect != "postgresql":
            pytest.skip("SQLite has one writer at a time: no buyer finds a shard locked")
        event, tier = await one_tier(db, shards=2, capacity=4)
        async with db.transaction() as session:
            full, free = await session.scalars(
                select(TicketStock.id)
                .where(TicketStock.ticket_type_id == tier)
                .order_by(TicketStock.id)
            )
            await session.execute(update(TicketStock).where(TicketStock.id == full).values(held=2))
        return cls(db, event.id, tier, full, free, await create_user(db))

    @contextlib.asynccontextmanager
    async def other_buyer_on_the_free_shard(
        self,
    ) -> AsyncIterator[tuple[AsyncConnection, AsyncConnection]]:
        """Another buyer's connection, mid-hold on the shard with seats, and a probe's."""
        engine = self.db.engine
        async with engine.connect() as other_buyer, engine.connect() as probe:
            self.other_buyer_pid = await backend_pid(other_buyer)
            await other_buyer.execute(lock_shard(self.free))
            yield other_buyer, probe

    async def until_the_hold_waits(self, probe: AsyncConnection) -> None:
        await until_blocked_by(probe, self.other_buyer_pid)

    async def hold_a_seat(self) -> Hold:
        return await hold_seats(self.db, self.fan, self.event_id, {self.tier: 1})
