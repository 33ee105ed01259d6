"""Engine and sessions, the declarative Base, and the column types every domain shares."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import DateTime, Enum, MetaData, Select, TypeDecorator, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import QueuePool

from boxoffice.errors import DomainError
from boxoffice.geo import distance_km

log = structlog.get_logger("boxoffice.db")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite (which stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


def str_enum(enum: type[StrEnum]) -> Enum:
    """A StrEnum stored as its lowercase value in a VARCHAR (no native enum to migrate)."""
    return Enum(
        enum,
        native_enum=False,
        length=max(len(member.value) for member in enum) + 8,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_engine(url: str, **options: Any) -> AsyncEngine:
    # A failed statement's parameters (e-mails, hashes, phones) stay out of logs and errors.
    options.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, **options)
    # A steady pool and no overflow: an overflow connection is opened for a burst and
    # closed when it is handed back, and under a stampede that churn (a new server process
    # each time, which then plans every statement afresh) cost more than the queries. A
    # request that finds every connection busy waits for one (pool_timeout) instead. No
    # request holds one connection while it asks for another.
    options.setdefault("pool_size", 20)
    options.setdefault("max_overflow", 0)
    # No ping before every checkout (on asyncpg it is a transaction of its own, a tenth of a
    # hold's cost): connections are recycled instead, and a connection that died with the
    # server fails one request, which the pool then replaces.
    options.setdefault("pool_pre_ping", False)
    options.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **options)


def _create_sqlite_engine(url: str, **options: Any) -> AsyncEngine:
    # sqlite3's own transaction handling defers BEGIN and cannot do savepoints; we take
    # over: writers begin IMMEDIATE so that they queue on the busy timeout instead of
    # failing with "database is locked" when they upgrade a read lock (ARCHITECTURE §5).
    options.setdefault("connect_args", {"timeout": 30})
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        dbapi_connection.create_function("bo_distance_km", 4, _sqlite_distance, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get("boxoffice_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _sqlite_distance(lat1: float, lng1: float, lat2: float, lng2: float) -> float | None:
    if None in (lat1, lng1, lat2, lng2):
        return None
    return distance_km(lat1, lng1, lat2, lng2)


def touch(session: AsyncSession, *namespaces: str) -> None:
    """Say that this transaction changes data cached under `namespaces`; the cache is
    invalidated once the transaction commits (never before: a reader could re-cache the
    old state in between)."""
    session.info.setdefault("touched", set()).update(namespaces)


OnCommit = Callable[[set[str]], Awaitable[None]]


class Database:
    """One engine and its session factories; built from settings, never at import."""

    def __init__(self, engine: AsyncEngine, bind: AsyncEngine | AsyncConnection | None = None):
        self.engine = engine
        self.on_commit: OnCommit | None = None  # told which namespaces a commit touched
        bind = bind if bind is not None else engine
        self._bind = bind
        # join_transaction_mode lets tests bind to a connection inside an outer transaction.
        common: dict[str, Any] = {
            "expire_on_commit": False,
            "join_transaction_mode": "create_savepoint",
        }
        self._sessions = async_sessionmaker(bind=bind, **common)
        # A connection given by a test is already inside a transaction: reads share it.
        read_bind = bind
        if bind is engine:
            read_bind = engine.execution_options(boxoffice_read_only=True)
            if engine.dialect.name == "postgresql":
                # Under READ COMMITTED every statement reads its own snapshot anyway, so a
                # read-only "transaction" adds nothing but the BEGIN and COMMIT round trips.
                read_bind = read_bind.execution_options(isolation_level="AUTOCOMMIT")
        self._read_sessions = async_sessionmaker(bind=read_bind, **common)
        # Turns for the pool's connections, first come first served (see _turn); a pool of
        # size 0 has no limit to queue for.
        self._turns: asyncio.Semaphore | None = None
        self._patience = 30.0
        pool = engine.pool
        gated = engine.dialect.name == "postgresql" and isinstance(pool, QueuePool)
        if bind is engine and gated and pool.size() > 0:
            self._turns, self._patience = asyncio.Semaphore(pool.size()), pool.timeout()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "Database":
        return cls(create_engine(url, **options))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction: committed on success, rolled back on error."""
        kept: DomainError | None = None
        async with self._turn(), self._sessions.begin() as session:
            try:
                yield session
            except DomainError as exc:
                if not exc.keeps_changes:
                    raise
                kept = exc  # commit what it recorded, then answer the error
        await self._committed(session)
        if kept is not None:
            raise kept

    @asynccontextmanager
    async def read_transaction(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction; on SQLite it does not queue behind writers."""
        async with self._turn(), self._read_sessions.begin() as session:
            yield session

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[Any]:
        """The driver's own connection, outside any transaction, so that a statement
        commits on its own: for a hot path that is one statement (a hold on PostgreSQL).
        Bound to a test's connection, the statement runs in a savepoint of its transaction
        instead, undone if it fails."""
        if self._bind is self.engine:
            async with self._turn(), self.engine.connect() as connection:
                yield (await connection.get_raw_connection()).driver_connection
            return
        async with self._bind.begin_nested():
            yield (await self._bind.get_raw_connection()).driver_connection

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Wait for one of the pool's connections in the order asked. The pool's own queue
        lets a newcomer take a connection handed back while earlier requests wait, and
        sends the waiter that lost that race to the back of the queue: under a stampede
        some requests waited many times as long as the rest (a hold's p99 at five times
        its p50). A fair semaphore of the pool's size queues them instead, and whoever
        holds a turn finds a connection free. Waiting is bounded by the pool's timeout, as
        it was in the pool."""
        if self._turns is None:
            yield
            return
        if self._turns.locked():
            try:
                async with asyncio.timeout(self._patience):
                    await self._turns.acquire()
            except TimeoutError:
                raise PoolTimeoutError("no database connection became free in time") from None
        else:
            await self._turns.acquire()
        try:
            yield
        finally:
            self._turns.release()

    async def _committed(self, session: AsyncSession) -> None:
        touched = session.info.pop("touched", None)
        if touched and self.on_commit is not None:
            try:
                await self.on_commit(touched)
            except Exception:  # committed is committed; stale entries expire with their TTL
                log.exception("db.on_commit_failed", namespaces=sorted(touched))

    async def dispose(self) -> None:
        await self.engine.dispose()


def like_pattern(value: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') matching `value` as a substring, literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def lock_rows(session: AsyncSession, query: Select[Any]) -> list[Any]:
    """SELECT … FOR UPDATE on PostgreSQL. On SQLite the statement takes no lock: the
    transaction began IMMEDIATE and so already holds the database's one write lock."""
    return list(await session.scalars(query.with_for_update()))


async def insert_missing(
    session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]
) -> None:
    """INSERT … ON CONFLICT DO NOTHING on either database."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(model).values(rows).on_conflict_do_nothing())
