import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from boxoffice.db import create_engine
from boxoffice.migrations import include_object
from boxoffice.models import metadata

# Any number: one migrator at a time when several `serve` processes start together.
MIGRATION_LOCK = 7_243_019


def _url() -> str:
    url = context.config.attributes.get("database_url")
    if not url:
        from boxoffice.config import Settings

        url = Settings().database_url
    return url


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
    if connection.dialect.name == "sqlite":
        # SQLite plans without statistics until someone runs ANALYZE (PostgreSQL's
        # autovacuum does it there); every start brings them up to date, cheaply.
        connection.exec_driver_sql("PRAGMA analysis_limit=1000")
        connection.exec_driver_sql("ANALYZE")


async def _run() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_migrate)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run())
