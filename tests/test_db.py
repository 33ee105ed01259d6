"""The database layer's own promises."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from boxoffice.db import Database


async def test_connections_are_handed_out_first_come_first_served(database_url: str) -> None:
    """Under a stampede the pool's own queue let a newcomer take a connection handed back
    while others waited, and sent the waiter that lost to the back of the queue: some
    requests waited many times as long as the rest. Here every visitor asks again the
    moment it hands its connection back, the surest way to jump the queue."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers queue on its one write lock, not on the pool")
    db = Database.from_url(database_url, pool_size=2)
    try:
        # Both connections opened first: a checkout then never waits for a connect.
        async with db.driver_connection() as first, db.driver_connection() as second:
            assert await first.fetchval("SELECT 1") == await second.fetchval("SELECT 1")
        asked: list[tuple[int, int]] = []
        served: list[tuple[int, int]] = []

        async def visitor(number: int) -> None:
            for visit in range(10):
                asked.append((number, visit))
                async with db.driver_connection() as connection:
                    served.append((number, visit))
                    await connection.fetchval("SELECT 1")

        await asyncio.gather(*(visitor(number) for number in range(10)))
        assert served == asked
    finally:
        await db.dispose()


async def test_waiting_for_a_connection_gives_up_after_the_pools_timeout(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers queue on its one write lock, not on the pool")
    db = Database.from_url(database_url, pool_size=1, pool_timeout=0.2)
    try:
        async with db.driver_connection():
            started = asyncio.get_running_loop().time()
            with pytest.raises(PoolTimeoutError):
                await one_query(db)
            assert asyncio.get_running_loop().time() - started >= 0.2
        assert await one_query(db) == 1  # the turn it gave up was not lost
    finally:
        await db.dispose()


async def one_query(db: Database) -> int:
    async with db.read_transaction() as session:
        return await session.scalar(text("SELECT 1"))
