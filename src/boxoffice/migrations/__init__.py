"""Alembic migrations: the only way the schema changes, on SQLite and PostgreSQL alike."""

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).parent
# Made by hand in migrations, per database, outside the models: full-text search. Alembic's
# comparison of models and schema leaves them alone.
HAND_MADE = ("events_fts", "ix_events_search")


def include_object(
    _obj: object, name: str | None, _type: str, _reflected: bool, _other: object
) -> bool:
    return not (name or "").startswith(HAND_MADE)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("version_path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision`. Blocking: call it outside the event loop."""
    command.upgrade(alembic_config(database_url), revision)


def current_head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("")).get_current_head()
