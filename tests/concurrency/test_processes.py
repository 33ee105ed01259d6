"""The stampede against two `boxoffice serve` processes sharing one PostgreSQL database
(ARCHITECTURE §5: "in one process or many"): no in-process lock can be what keeps the
count right, only the database."""

import asyncio
import uuid
from pathlib import Path
from typing import IO

import httpx
import pytest

from boxoffice.db import Database
from tests.concurrency.helpers import (
    API,
    CAPACITY,
    STAMPEDE,
    StockWatch,
    active_holds,
    assert_sold_out_exactly,
    drifts,
    hold_body,
    one_tier,
    server,
    signed_in_fans,
    signing_settings,
    stampede,
    stock_of,
)


@pytest.mark.parametrize("shards", [1, 8], ids=["one-shard", "8-shards"])
async def test_two_processes_hold_exactly_the_seats_of_the_tier(
    database_url: str,
    tmp_path: Path,
    committing_db: Database,
    process_output: IO[bytes],
    shards: int,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("one SQLite file is not shared by several servers in production")
    event, tier = await one_tier(committing_db, shards=shards)
    fans = await signed_in_fans(committing_db, signing_settings(database_url, tmp_path), STAMPEDE)
    # 10 + 5 overflow connections each: both processes and the tests fit the server's 100.
    pool = {"BOXOFFICE_DATABASE_POOL_SIZE": "10"}

    async with (
        server(database_url, tmp_path / "first", process_output, **pool) as first,
        server(database_url, tmp_path / "second", process_output, **pool) as second,
    ):
        # A hold is one quick statement: a process still opening its connections would see
        # the other sell out alone. Both are warmed up first, so that the race is theirs.
        await asyncio.gather(*(warm_up(url, fans[:10]) for url in (first, second)))
        outcome = await stampede(
            [first, second],
            fans,
            hold_body(event.id, {tier: 1}),
            StockWatch(committing_db, {tier: CAPACITY}),
        )

    assert_sold_out_exactly(outcome, tier_id=tier, capacity=CAPACITY, quantity=1)
    # Both processes sold: the fans were dealt alternately, and 220 arrive before 50 sell.
    served_by = {n % 2 for n, r in enumerate(outcome.responses) if r.status_code == 201}
    assert served_by == {0, 1}
    assert await stock_of(committing_db, tier) == (CAPACITY, 0, CAPACITY, shards)
    assert len(await active_holds(committing_db, event.id)) == CAPACITY
    assert await drifts(committing_db) == []


async def warm_up(base_url: str, fans: list[dict[str, str]]) -> None:
    """Holds on an unknown event, side by side: each opens a pooled connection (404)."""
    body = hold_body(uuid.uuid4(), {uuid.uuid4(): 1})
    async with httpx.AsyncClient(base_url=base_url) as client:
        answers = await asyncio.gather(
            *(client.post(f"{API}/holds", json=body, headers=headers) for headers in fans)
        )
    assert {answer.status_code for answer in answers} == {404}
