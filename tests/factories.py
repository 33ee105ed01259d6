"""Small factories: make rows directly, or sign in over HTTP."""

import secrets
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts import passwords
from boxoffice.accounts.models import Role, User
from boxoffice.catalog import service as catalog
from boxoffice.catalog.models import Category, Event
from boxoffice.catalog.schemas import EventCreate
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


# Catalogue


async def make_category(
    session: AsyncSession, slug: str | None = None, name: str | None = None
) -> Category:
    slug = slug or f"genre-{secrets.token_hex(3)}"
    category = Category(slug=slug, name=name or slug.replace("-", " ").title(), created_at=utcnow())
    session.add(category)
    await session.flush()
    return category


def event_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /admin/events body, ten days ahead, published, with two tiers."""
    starts_at = utcnow() + timedelta(days=10)
    body: dict[str, Any] = {
        "title": "Sauti Sol Live",
        "artists": ["Sauti Sol"],
        "description": "An evening of afro-pop.",
        "venue": {
            "name": "KICC Grounds",
            "city": "Nairobi",
            "country": "KE",
            "lat": -1.2884,
            "lng": 36.8233,
        },
        "starts_at": starts_at.isoformat(),
        "currency": "KES",
        "status": "published",
        "ticket_types": [
            {"name": "Regular", "price": 150000, "capacity": 100},
            {"name": "VIP", "price": 500000, "capacity": 20},
        ],
    }
    body.update(overrides)
    return body


async def make_event(
    session: AsyncSession, *, organizer: User, now: datetime | None = None, **overrides: Any
) -> Event:
    """An event made through the catalogue service, so derived fields and stock are right."""
    data = EventCreate.model_validate(event_body(**overrides))
    return await catalog.create_event(session, organizer=organizer, data=data, now=now or utcnow())
