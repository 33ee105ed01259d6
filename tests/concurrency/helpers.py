"""Shared set-up for the concurrency tests: many signed-in fans at once, a real server, a
stampede on one tier with a watcher of the stock rows, and the audit."""

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import User
from boxoffice.config import Settings
from boxoffice.db import Database, utcnow
from boxoffice.inventory import audit
from boxoffice.inventory.models import Hold, HoldStatus, TicketStock
from boxoffice.orders import service as orders
from boxoffice.orders.schemas import HoldCreate
from tests.conftest import make_settings
from tests.e2e.server import JWT_SECRET, boxoffice_env, served
from tests.factories import make_user
from tests.orders.helpers import free_event

API = "/api/v1"
STAMPEDE = 220  # fans at once
CAPACITY = 50  # seats in the stampeded tier
HTTP_TIMEOUT = 120  # seconds; a stampede on SQLite queues every writer
HOLD_TTL = timedelta(minutes=10)


async def one_tier(db: Database, *, shards: int, capacity: int = CAPACITY):
    """A published free event with one tier of `capacity` seats in `shards` stock rows."""
    tier = {"name": "Floor", "price": 0, "capacity": capacity, "shards": shards}
    event, (tier_id,) = await free_event(db, ticket_types=[tier])
    assert await stock_of(db, tier_id) == (capacity, 0, 0, shards)
    return event, tier_id


def signing_settings(database_url: str, var_dir: Path, **overrides: object) -> Settings:
    """Test settings with the JWT secret the served processes get too."""
    return make_settings(database_url, var_dir, jwt_secret=JWT_SECRET, **overrides)


async def signed_in_fans(db: Database, settings: Settings, count: int) -> list[dict[str, str]]:
    """`count` new users, each signed in (as POST /login would), as Authorization headers.

    Minted in one transaction: logging 220 people in over HTTP would time argon2, not us.
    """
    now = utcnow()
    headers = []
    async with db.transaction() as session:
        for _ in range(count):
            user = await make_user(session, now=now)
            pair = await accounts.open_session(session, settings=settings, user=user, now=now)
            headers.append({"Authorization": f"Bearer {pair.access_token}"})
    return headers


def server_env(database_url: str, var_dir: Path, **settings: str) -> dict[str, str]:
    """What a served `boxoffice serve` needs to share the test's database and tokens.

    Rate limits are off (boxoffice_env); the in-process worker too, so that nothing but
    the requests touches the holds.
    """
    values = {
        "BOXOFFICE_DATABASE_URL": database_url,
        "BOXOFFICE_JWT_SECRET": JWT_SECRET,
        "BOXOFFICE_IN_PROCESS_WORKER": "false",
        "BOXOFFICE_LOG_LEVEL": "WARNING",
    }
    values.update(settings)
    return boxoffice_env(var_dir, **values)


@contextlib.asynccontextmanager
async def server(
    database_url: str, var_dir: Path, output: IO[bytes], **settings: str
) -> AsyncIterator[str]:
    """A real `boxoffice serve` process on the test database; yields its base URL."""
    await anyio.Path(var_dir).mkdir(parents=True, exist_ok=True)
    async with served(server_env(database_url, var_dir, **settings), output, cwd=var_dir) as url:
        yield url


async def hold_seats(
    db: Database,
    user: User,
    event_id: uuid.UUID,
    quantities: dict[uuid.UUID, int],
    *,
    now: datetime | None = None,
) -> Hold:
    """`user` holds the seats in a transaction of their own, through the service (on
    PostgreSQL, boxoffice_place_hold())."""
    async with db.transaction() as session:
        return await orders.place_hold(
            session,
            user=user,
            data=HoldCreate.model_validate(hold_body(event_id, quantities)),
            ttl=HOLD_TTL,
            now=now or utcnow(),
        )


def hold_body(event_id: uuid.UUID, quantities: dict[uuid.UUID, int]) -> dict[str, Any]:
    return {
        "event_id": str(event_id),
        "items": [
            {"ticket_type_id": str(tier), "quantity": quantity}
            for tier, quantity in quantities.items()
        ],
    }


async def drifts(db: Database) -> list[str]:
    async with db.read_transaction() as session:
        return [str(drift) for drift in await audit.check(session)]


@dataclass
class StockWatch:
    """Reads every shard of some tiers over and over while a race runs.

    At every read: 0 ≤ sold, 0 ≤ held, sold + held ≤ capacity on each row, Σ over a tier
    ≤ the tier's capacity, and Σ held at least the seats already answered 201 before the
    read began (a granted hold is committed before its answer leaves the server).
    """

    db: Database
    capacities: dict[uuid.UUID, int]
    granted: Counter[uuid.UUID] = field(default_factory=Counter)
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self._stop.is_set():
            granted_before = Counter(self.granted)
            async with self.db.read_transaction() as session:
                rows = (
                    await session.execute(
                        select(
                            TicketStock.ticket_type_id,
                            TicketStock.id,
                            TicketStock.capacity,
                            TicketStock.sold,
                            TicketStock.held,
                        ).where(TicketStock.ticket_type_id.in_(list(self.capacities)))
                    )
                ).all()
            self.samples += 1
            taken: Counter[uuid.UUID] = Counter()
            held: Counter[uuid.UUID] = Counter()
            for tier, shard, capacity, sold, held_here in rows:
                if sold < 0 or held_here < 0 or sold + held_here > capacity:
                    self.violations.append(
                        f"sample {self.samples}: shard {shard} capacity {capacity}, "
                        f"sold {sold}, held {held_here}"
                    )
                taken[tier] += sold + held_here
                held[tier] += held_here
            for tier, capacity in self.capacities.items():
                if taken[tier] > capacity:
                    self.violations.append(
                        f"sample {self.samples}: tier {tier} has {taken[tier]} of {capacity} taken"
                    )
                if held[tier] < granted_before[tier]:
                    self.violations.append(
                        f"sample {self.samples}: tier {tier} holds {held[tier]} seats but "
                        f"{granted_before[tier]} were already granted"
                    )
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Outcome:
    responses: list[httpx.Response]
    watch: StockWatch

    @property
    def statuses(self) -> Counter[int]:
        return Counter(response.status_code for response in self.responses)

    def with_status(self, status: int) -> list[dict[str, Any]]:
        return [r.json() for r in self.responses if r.status_code == status]


async def stampede(
    base_urls: list[str],
    fans: list[dict[str, str]],
    body: dict[str, Any],
    watch: StockWatch,
) -> Outcome:
    """Every fan POSTs `body` to /holds at once, dealt to the servers in turn, each on its
    own connection; the watch reads the stock the whole time."""
    limits = httpx.Limits(max_connections=len(fans), max_keepalive_connections=0)
    clients = [
        httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT, limits=limits) for url in base_urls
    ]
    seats = {uuid.UUID(item["ticket_type_id"]): item["quantity"] for item in body["items"]}

    async def fan(number: int, headers: dict[str, str]) -> httpx.Response:
        client = clients[number % len(clients)]
        response = await client.post(f"{API}/holds", json=body, headers=headers)
        if response.status_code == 201:
            watch.granted.update(seats)
        return response

    watching = asyncio.create_task(watch.run())
    try:
        async with contextlib.AsyncExitStack() as stack:
            for client in clients:
                await stack.enter_async_context(client)
            responses = await asyncio.gather(*(fan(n, h) for n, h in enumerate(fans)))
    finally:
        watch.stop()
        await watching
    return Outcome(list(responses), watch)


async def stock_of(db: Database, tier_id: uuid.UUID) -> tuple[int, int, int, int]:
    """(capacity, sold, held, shards) of a tier, summed over its shards."""
    async with db.read_transaction() as session:
        row = (
            await session.execute(
                select(
                    func.sum(TicketStock.capacity),
                    func.sum(TicketStock.sold),
                    func.sum(TicketStock.held),
                    func.count(TicketStock.id),
                ).where(TicketStock.ticket_type_id == tier_id)
            )
        ).one()
    return tuple(int(value or 0) for value in row)  # type: ignore[return-value]


async def active_holds(db: Database, event_id: uuid.UUID) -> list[Hold]:
    async with db.read_transaction() as session:
        return list(
            await session.scalars(
                select(Hold).where(Hold.event_id == event_id, Hold.status == HoldStatus.ACTIVE)
            )
        )


def assert_sold_out_exactly(
    outcome: Outcome, *, tier_id: uuid.UUID, capacity: int, quantity: int
) -> None:
    """capacity // quantity fans got 201, every other one a 409 sold_out naming the tier and
    the seats that are really left; nobody got a 5xx; the watch saw nothing wrong."""
    winners, left = divmod(capacity, quantity)
    statuses = outcome.statuses
    assert all(status < 500 for status in statuses), statuses
    assert statuses == Counter({201: winners, 409: len(outcome.responses) - winners}), statuses

    granted = outcome.with_status(201)
    assert len({hold["id"] for hold in granted}) == winners
    for hold in granted:
        assert hold["status"] == "active"
        assert [(i["ticket_type_id"], i["quantity"]) for i in hold["items"]] == [
            (str(tier_id), quantity)
        ], hold
    refused = outcome.with_status(409)
    assert {problem["code"] for problem in refused} <= {"sold_out"}, refused[:3]
    assert {problem["ticket_type_id"] for problem in refused} <= {str(tier_id)}
    # Seats never come back during a stampede, so a sold_out answered while seats remained
    # would name more than what is left at the end.
    assert {problem["available"] for problem in refused} <= {left}, Counter(
        problem["available"] for problem in refused
    )

    assert outcome.watch.violations == []
    assert outcome.watch.samples >= 2, "the stock was not watched during the stampede"


def lock_shard(stock_id: uuid.UUID, *, nowait: bool = False) -> Select[Any]:
    """Lock one shard as a hold in flight does (PostgreSQL)."""
    return (
        select(TicketStock.id)
        .where(TicketStock.id == stock_id)
        .with_for_update(key_share=True, nowait=nowait)
    )


async def until_blocked_by(probe: AsyncConnection, pid: int) -> None:
    """Until some backend waits for a lock that backend `pid` holds (PostgreSQL)."""
    blocked = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    for _ in range(200):
        waiting = await probe.scalar(blocked, {"pid": pid})
        await probe.rollback()
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nobody waited for a lock that backend {pid} holds")


async def backend_pid(connection: AsyncConnection) -> int:
    return await connection.scalar(text("SELECT pg_backend_pid()"))
