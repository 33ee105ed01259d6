"""Reaching PostgreSQL and Redis from tests: a unique database per run, dropped after.

Without BOXOFFICE_REQUIRE_SERVICES=1 a missing service skips its tests; with it (CI), a
missing service fails them.
"""

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

POSTGRES_ADMIN_URLS = (
    os.environ.get("BOXOFFICE_TEST_POSTGRES_URL", ""),
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://root@127.0.0.1:5432/postgres",
)
REDIS_URL = os.environ.get("BOXOFFICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def services_required() -> bool:
    return os.environ.get("BOXOFFICE_REQUIRE_SERVICES") == "1"


def unavailable(what: str, why: object) -> None:
    message = f"{what} is not reachable ({why})"
    if services_required():
        pytest.fail(f"{message}; BOXOFFICE_REQUIRE_SERVICES=1 makes that a failure")
    pytest.skip(message)


async def _admin_connection() -> tuple[asyncpg.Connection, str]:
    last_error: object = "no URL tried"
    for url in filter(None, POSTGRES_ADMIN_URLS):
        try:
            return await asyncpg.connect(url, timeout=5), url
        except (OSError, asyncpg.PostgresError) as exc:
            last_error = exc
    raise ConnectionError(last_error)


class PostgresDatabases:
    """Creates uniquely named databases on demand and drops every one of them at the end."""

    def __init__(self) -> None:
        self.admin: asyncpg.Connection | None = None
        self.admin_url = ""
        self.created: list[str] = []

    async def create(self) -> str:
        if self.admin is None:
            try:
                self.admin, self.admin_url = await _admin_connection()
            except ConnectionError as exc:
                unavailable("PostgreSQL", exc.args[0])
        assert self.admin is not None
        name = f"boxoffice_test_{uuid.uuid4().hex[:12]}"
        await self.admin.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{name}"

    async def drop_all(self) -> None:
        if self.admin is None:
            return
        for name in self.created:
            await self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await self.admin.close()


async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    """(url, key prefix) unique to this run; its keys are deleted afterwards."""
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        await client.aclose()
        unavailable("Redis", exc)
    prefix = f"boxoffice-test-{uuid.uuid4().hex[:12]}:"
    try:
        yield REDIS_URL, prefix
    finally:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await client.aclose()
