"""A flash sale over real HTTP: 220 fans at once on one tier of 50 seats, against a real
`boxoffice serve` process (ARCHITECTURE §5). Exactly the seats there are get sold, the
others hear sold_out, nobody gets a 5xx, and at no instant does a shard hold more than its
capacity."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from boxoffice.db import Database, utcnow
from boxoffice.inventory.models import Hold, HoldStatus
from boxoffice.orders import service as orders
from boxoffice.orders.schemas import HoldCreate
from tests.concurrency.helpers import (
    CAPACITY,
    STAMPEDE,
    StockWatch,
    active_holds,
    assert_sold_out_exactly,
    drifts,
    hold_body,
    one_tier,
    signed_in_fans,
    signing_settings,
    stampede,
    stock_of,
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
        async with committing_db.transaction() as session:
            hold = await orders.place_hold(
                session,
                user=owner,
                data=HoldCreate.model_validate(hold_body(event.id, {tier: 10})),
                ttl=timedelta(minutes=10),
                now=past,
            )
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
