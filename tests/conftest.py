"""Shared fixtures. Tests that take `db`, `client` or `database_url` run once on SQLite and
once on PostgreSQL (ids `[sqlite]`, `[postgresql]`); everything else runs once."""

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice import migrations
from boxoffice.app import create_app
from boxoffice.config import Settings
from boxoffice.db import Database, create_engine
from boxoffice.models import metadata
from tests import services

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
async def postgres() -> AsyncIterator[services.PostgresDatabases]:
    databases = services.PostgresDatabases()
    yield databases
    await databases.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres: services.PostgresDatabases,
) -> AsyncIterator[str]:
    """A fresh database for this run, migrated to head."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'boxoffice.db'}"
    else:
        url = await postgres.create()
    await anyio.to_thread.run_sync(migrations.upgrade, url)
    return url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[Database]:
    """Every session of the test joins one outer transaction, rolled back at the end."""
    async with engine.connect() as connection:
        outer = await connection.begin()
        yield Database(engine, bind=connection)
        await outer.rollback()


@pytest.fixture
async def committing_db(engine: AsyncEngine) -> AsyncIterator[Database]:
    """Real commits on real connections (races, workers); the tables are emptied after."""
    yield Database(engine)
    await empty_tables(engine)


async def empty_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(delete(table))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


def make_settings(database_url: str, var_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "jwt_secret": "test-secret-" + "x" * 32,
        "var_dir": var_dir,
        "rate_limits": False,
        "in_process_worker": False,
        "log_json": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_client(app: object, *, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
def app(settings: Settings, db: Database):
    return create_app(settings, db=db)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as client:
        yield client


@pytest.fixture(scope="session")
async def redis_service() -> AsyncIterator[tuple[str, str]]:
    async for url_and_prefix in services.redis_prefix():
        yield url_and_prefix


def random_email() -> str:
    return f"fan-{secrets.token_hex(4)}@example.com"
