"""Which index a hold's queries can read, whatever the planner's statistics say.

At the start of a sale the statistics say there are hardly any live holds, and PostgreSQL
then read a fan's per-event limit through the expiry index: every live hold of every fan,
1.5 ms a hold at 8,000 of them. Since migration 0008 boxoffice_place_hold's limit check
cannot use that index. On PostgreSQL the test drops the fan's own index inside the test's
transaction (rolled back after) and forbids table scans, so that the expiry index would be
the planner's pick if it could take it at all.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.db import Database, utcnow
from boxoffice.inventory import holds
from boxoffice.orders.service import _SEATS_OF_USER
from tests.factories import auth_headers, create_user
from tests.orders.helpers import free_event, hold

EXPIRY_INDEX = "ix_holds_active_expires_at"


async def without_the_fans_index(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("DROP INDEX ix_holds_active_user_id_event_id"))
        await session.execute(text("SET LOCAL enable_seqscan = off"))


async def expiry_index_scans(session: AsyncSession) -> int:
    """How often this transaction has read the expiry index (PostgreSQL)."""
    return await session.scalar(
        text(f"SELECT pg_stat_get_xact_numscans('{EXPIRY_INDEX}'::regclass)")
    )


@contextlib.asynccontextmanager
async def sqlite_plans(session: AsyncSession) -> AsyncIterator[list[str]]:
    """SQLite's plans for the queries the block runs, filled in when it ends."""
    sent: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    engine = session.get_bind().engine
    event.listen(engine, "before_cursor_execute", record)
    plans: list[str] = []
    try:
        yield plans
    finally:
        event.remove(engine, "before_cursor_execute", record)
    connection = await session.connection()
    for statement, parameters in sent:
        rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        plans.append(" / ".join(str(row[-1]) for row in rows))


async def test_a_fans_limit_check_cannot_read_the_expiry_index(
    db: Database, client: httpx.AsyncClient
) -> None:
    event_, tiers = await free_event(db, tiers=1)
    fan = await create_user(db)
    headers = await auth_headers(client, fan)
    await hold(client, headers, event_.id, {tiers[0]: 1})
    if db.dialect == "sqlite":  # its index stays: SQLite reads the fan's own one anyway
        limit = {"user_id": fan.id, "event_id": event_.id, "now": utcnow()}
        async with db.read_transaction() as session, sqlite_plans(session) as plans:
            await session.execute(_SEATS_OF_USER, limit)
            await holds.overdue(session, now=utcnow())
        limit_plan, sweep_plan = plans
        assert "ix_holds_active_user_id_event_id" in limit_plan
        assert EXPIRY_INDEX not in limit_plan
        assert EXPIRY_INDEX in sweep_plan
        return

    await without_the_fans_index(db)
    async with db.read_transaction() as session:
        before = await expiry_index_scans(session)
    await hold(client, headers, event_.id, {tiers[0]: 1})  # boxoffice_place_hold() alone
    keyed = {**headers, "Idempotency-Key": "in the key's transaction"}
    await hold(client, keyed, event_.id, {tiers[0]: 1})
    async with db.read_transaction() as session:
        assert await expiry_index_scans(session) == before
        await holds.overdue(session, now=utcnow())
        assert await expiry_index_scans(session) == before + 1  # the sweep still reads it
