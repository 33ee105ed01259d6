from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.migrations import include_object
from boxoffice.models import metadata


async def test_migrations_create_exactly_the_schema_the_models_describe(
    engine: AsyncEngine,
) -> None:
    def diff(connection):
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include_object}
        )
        return compare_metadata(context, metadata)

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []
