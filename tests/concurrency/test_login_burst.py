"""A burst of logins larger than the connection pool: each login holds one connection at a
time, so none waits for a second one while holding the first (which timed out as 500s)."""

import asyncio

from boxoffice.app import create_app
from boxoffice.config import Settings
from boxoffice.db import Database
from tests.conftest import make_client
from tests.factories import PASSWORD, create_user

LOGINS = 40  # more than the pool's connections on either database


async def test_a_burst_of_logins_all_succeed(committing_db: Database, settings: Settings) -> None:
    users = [await create_user(committing_db) for _ in range(4)]
    app = create_app(settings, db=committing_db)
    async with make_client(app) as client:

        async def log_in(n: int) -> int:
            body = {"email": users[n % len(users)].email, "password": PASSWORD}
            return (await client.post("/api/v1/login", json=body)).status_code

        statuses = await asyncio.gather(*(log_in(n) for n in range(LOGINS)))
    assert statuses == [200] * LOGINS
