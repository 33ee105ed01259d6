"""Concurrent requests on real connections: each race has exactly one winner and never a 500."""

import asyncio

from httpx import AsyncClient
from sqlalchemy import func, select

from boxoffice.accounts.models import Role, User
from boxoffice.app import create_app
from boxoffice.db import Database
from tests.conftest import make_client, make_settings, random_email
from tests.factories import auth_headers, create_user, log_in

API = "/api/v1"


def committing_client(database_url: str, tmp_path, db: Database) -> AsyncClient:
    return make_client(create_app(make_settings(database_url, tmp_path), db=db))


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    database_url: str,
    tmp_path,
    committing_db: Database,
) -> None:
    first = await create_user(committing_db, role=Role.ADMIN)
    second = await create_user(committing_db, role=Role.ADMIN)
    async with committing_client(database_url, tmp_path, committing_db) as client:
        first_headers = await auth_headers(client, first)
        second_headers = await auth_headers(client, second)
        responses = await asyncio.gather(
            client.patch(
                f"{API}/admin/users/{second.id}", headers=first_headers, json={"role": "attendee"}
            ),
            client.patch(
                f"{API}/admin/users/{first.id}", headers=second_headers, json={"role": "attendee"}
            ),
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200
    assert statuses[1] in (401, 409)  # the loser was demoted first, or found itself last
    async with committing_db.transaction() as session:
        admins = await session.scalar(select(func.count()).where(User.role == Role.ADMIN))
    assert admins == 1


async def test_one_refresh_token_used_twice_at_once_rotates_only_once(
    database_url: str,
    tmp_path,
    committing_db: Database,
) -> None:
    user = await create_user(committing_db)
    async with committing_client(database_url, tmp_path, committing_db) as client:
        tokens = await log_in(client, user.email)
        body = {"refresh_token": tokens["refresh_token"]}
        responses = await asyncio.gather(
            *(client.post(f"{API}/token/refresh", json=body) for _ in range(5))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 401, 401, 401, 401]


async def test_one_logout_sent_twice_at_once_answers_204_twice(
    database_url: str,
    tmp_path,
    committing_db: Database,
) -> None:
    user = await create_user(committing_db)
    async with committing_client(database_url, tmp_path, committing_db) as client:
        headers = await auth_headers(client, user)
        responses = await asyncio.gather(
            *(client.post(f"{API}/logout", headers=headers) for _ in range(4))
        )
    # Whoever authenticated before the first revocation committed gets 204, later ones 401.
    assert {r.status_code for r in responses} <= {204, 401}
    assert 204 in {r.status_code for r in responses}


async def test_one_email_registered_twice_at_once_gives_one_account(
    database_url: str,
    tmp_path,
    committing_db: Database,
) -> None:
    email = random_email()
    body = {"email": email, "password": "a-long-password", "name": "Twin"}
    async with committing_client(database_url, tmp_path, committing_db) as client:
        responses = await asyncio.gather(
            *(client.post(f"{API}/users", json=body) for _ in range(4))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409]
    async with committing_db.transaction() as session:
        assert await session.scalar(select(func.count()).where(User.email == email)) == 1
