"""Small factories: make rows directly, or sign in over HTTP."""

import secrets
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts import passwords
from boxoffice.accounts.models import Role, User
from boxoffice.db import Database, utcnow

PASSWORD = "correct horse battery"
_password_hash: str | None = None


async def make_user(
    session: AsyncSession, *, now: datetime | None = None, **overrides: object
) -> User:
    global _password_hash
    if _password_hash is None:  # one argon2 hash for every factory user: tests stay fast
        _password_hash = await passwords.hash_password(PASSWORD)
    now = now or utcnow()
    values: dict[str, object] = {
        "email": f"user-{secrets.token_hex(5)}@example.com",
        "name": "Test User",
        "role": Role.ATTENDEE,
        "password_hash": _password_hash,
        "preferred_genres": [],
        "preferred_artists": [],
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    user = User(**values)
    session.add(user)
    await session.flush()
    return user


async def create_user(db: Database, **overrides: object) -> User:
    async with db.transaction() as session:
        return await make_user(session, **overrides)


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = await client.post("/api/v1/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


async def auth_headers(
    client: httpx.AsyncClient, user: User, password: str = PASSWORD
) -> dict[str, str]:
    tokens = await log_in(client, user.email, password)
    return {"Authorization": f"Bearer {tokens['access_token']}"}
