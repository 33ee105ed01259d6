"""The worker against real commits, on SQLite and PostgreSQL: jobs run once, failures retry
and die, lost leases are taken over, schedules fire once per interval, and stop stops."""

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.db import Database
from boxoffice.worker import service as jobs
from boxoffice.worker.models import Job, JobStatus
from boxoffice.worker.registry import job
from boxoffice.worker.runner import Worker
from boxoffice.worker.schedule import Periodic

# What the test handlers did, keyed by the payload's "tag" (or the kind, for ticks).
RUNS: Counter[str] = Counter()
IN_FLIGHT: Counter[str] = Counter()
PEAK_IN_FLIGHT: list[int] = [0]
OVERLAPPED: list[str] = []


@job("test.worker.record")
async def record(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    RUNS[payload["tag"]] += 1


@job("test.worker.fail")
async def fail(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    RUNS[payload["tag"]] += 1
    raise RuntimeError(f"provider said no on run {RUNS[payload['tag']]}")


@job("test.worker.slow")
async def slow(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    tag = payload["tag"]
    if IN_FLIGHT[tag]:
        OVERLAPPED.append(tag)
    IN_FLIGHT[tag] += 1
    PEAK_IN_FLIGHT[0] = max(PEAK_IN_FLIGHT[0], IN_FLIGHT.total())
    try:
        await asyncio.sleep(0.02)
        RUNS[tag] += 1
    finally:
        IN_FLIGHT[tag] -= 1


@job("test.worker.tick")
async def tick(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    RUNS["tick"] += 1


TICK_EVERY = timedelta(seconds=10)
LEASE_SECONDS = 30


class Abandoned(Exception):
    """Raised inside a transaction to roll it back."""


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(autouse=True)
def _forget_runs() -> None:
    RUNS.clear()
    IN_FLIGHT.clear()
    PEAK_IN_FLIGHT[0] = 0
    OVERLAPPED.clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_worker(db: Database, clock: FakeClock, **overrides: Any) -> Worker:
    options: dict[str, Any] = {
        "poll_interval": 0.05,
        "lease_seconds": LEASE_SECONDS,
        "backoff_seconds": 1.0,
        "schedule": (),
        "clock": clock,
    }
    options.update(overrides)
    return Worker(db, **options)


async def enqueue(db: Database, kind: str, clock: FakeClock, **options: Any) -> uuid.UUID:
    async with db.transaction() as session:
        return jobs.enqueue(session, kind, now=clock(), **options).id


async def enqueue_many(db: Database, kind: str, clock: FakeClock, count: int) -> None:
    async with db.transaction() as session:
        for number in range(count):
            jobs.enqueue(session, kind, {"tag": f"job-{number}"}, now=clock())


async def get_job(db: Database, job_id: uuid.UUID) -> Job:
    async with db.read_transaction() as session:
        found = await session.get(Job, job_id)
    assert found is not None
    return found


async def count_jobs(db: Database) -> int:
    async with db.read_transaction() as session:
        return await session.scalar(select(func.count()).select_from(Job)) or 0


async def enqueue_then_roll_back(
    db: Database, kind: str, clock: FakeClock, payload: dict[str, Any]
) -> None:
    with contextlib.suppress(Abandoned):
        async with db.transaction() as session:
            jobs.enqueue(session, kind, payload, now=clock())
            await session.flush()  # the row reaches the database, then goes with the rollback
            raise Abandoned


async def claim_as_worker_that_dies(db: Database, clock: FakeClock) -> jobs.ClaimedJob:
    async with db.transaction() as session:
        (claimed,) = await jobs.claim(session, now=clock(), lease_seconds=LEASE_SECONDS)
    return claimed


async def test_a_job_written_in_a_rolled_back_transaction_never_runs(committing_db, clock):
    await enqueue_then_roll_back(committing_db, "test.worker.record", clock, {"tag": "lost"})

    assert await make_worker(committing_db, clock).run_pending() == 0
    assert RUNS["lost"] == 0
    assert await count_jobs(committing_db) == 0


async def test_a_committed_job_runs_exactly_once_and_ends_done(committing_db, clock):
    job_id = await enqueue(committing_db, "test.worker.record", clock, payload={"tag": "kept"})
    worker = make_worker(committing_db, clock)
    ran_at = clock.now

    assert await worker.run_pending() == 1
    clock.advance(timedelta(hours=2))
    assert await worker.run_pending() == 0

    done = await get_job(committing_db, job_id)
    assert RUNS["kept"] == 1
    assert (done.status, done.attempts, done.finished_at) == (JobStatus.DONE, 1, ran_at)


async def test_a_job_waiting_for_its_run_after_is_not_run_early(committing_db, clock):
    later = clock.now + timedelta(minutes=5)
    await enqueue(
        committing_db, "test.worker.record", clock, payload={"tag": "later"}, run_after=later
    )
    worker = make_worker(committing_db, clock)

    assert await worker.run_pending() == 0
    clock.advance(timedelta(minutes=5))
    assert await worker.run_pending() == 1
    assert RUNS["later"] == 1


async def test_a_failing_job_is_retried_with_exponential_backoff(committing_db, clock):
    job_id = await enqueue(
        committing_db, "test.worker.fail", clock, payload={"tag": "flaky"}, max_attempts=5
    )
    worker = make_worker(committing_db, clock, backoff_seconds=1.0)

    waits = []
    for attempt in range(1, 5):
        assert await worker.run_pending() == 1
        retry = await get_job(committing_db, job_id)
        assert (retry.status, retry.attempts) == (JobStatus.PENDING, attempt)
        assert retry.last_error == f"RuntimeError: provider said no on run {attempt}"
        waits.append(retry.run_after - clock.now)
        assert await worker.run_pending() == 0, "a retry must wait for its run_after"
        clock.advance(retry.run_after - clock.now)

    for attempt, wait in enumerate(waits, start=1):
        assert timedelta(seconds=2 ** (attempt - 1)) <= wait < timedelta(seconds=2**attempt)


async def test_a_job_that_keeps_failing_ends_dead_with_its_last_error(committing_db, clock):
    job_id = await enqueue(
        committing_db, "test.worker.fail", clock, payload={"tag": "doomed"}, max_attempts=3
    )
    worker = make_worker(committing_db, clock)

    for _ in range(3):
        assert await worker.run_pending() == 1
        clock.advance(timedelta(hours=1))

    dead = await get_job(committing_db, job_id)
    assert (dead.status, dead.attempts) == (JobStatus.DEAD, 3)
    assert dead.last_error == "RuntimeError: provider said no on run 3"
    assert dead.finished_at is not None


async def test_a_dead_job_is_never_run_again(committing_db, clock):
    await enqueue(
        committing_db, "test.worker.fail", clock, payload={"tag": "buried"}, max_attempts=1
    )
    worker = make_worker(committing_db, clock)

    assert await worker.run_pending() == 1
    clock.advance(timedelta(days=30))
    assert await worker.run_pending() == 0
    assert RUNS["buried"] == 1


async def test_a_job_with_no_handler_ends_dead_saying_so(committing_db, clock):
    job_id = await enqueue(committing_db, "test.worker.unhandled", clock, max_attempts=3)
    worker = make_worker(committing_db, clock)

    for _ in range(3):
        await worker.run_pending()
        clock.advance(timedelta(hours=1))

    dead = await get_job(committing_db, job_id)
    assert dead.status == JobStatus.DEAD
    assert dead.last_error == "LookupError: no handler for job kind 'test.worker.unhandled'"


async def test_a_job_whose_lease_has_not_expired_is_left_to_its_worker(committing_db, clock):
    await enqueue(committing_db, "test.worker.record", clock, payload={"tag": "held"})
    await claim_as_worker_that_dies(committing_db, clock)

    clock.advance(timedelta(seconds=LEASE_SECONDS - 1))
    assert await make_worker(committing_db, clock).run_pending() == 0
    assert RUNS["held"] == 0


async def test_a_job_whose_lease_expired_is_taken_over_by_another_worker(committing_db, clock):
    job_id = await enqueue(committing_db, "test.worker.record", clock, payload={"tag": "orphan"})
    await claim_as_worker_that_dies(committing_db, clock)

    clock.advance(timedelta(seconds=LEASE_SECONDS + 1))
    assert await make_worker(committing_db, clock).run_pending() == 1

    taken_over = await get_job(committing_db, job_id)
    assert RUNS["orphan"] == 1
    assert (taken_over.status, taken_over.attempts) == (JobStatus.DONE, 2)


async def test_the_first_worker_cannot_finish_a_job_taken_over_from_it(committing_db, clock):
    job_id = await enqueue(committing_db, "test.worker.record", clock, payload={"tag": "late"})
    worker_a = await claim_as_worker_that_dies(committing_db, clock)
    clock.advance(timedelta(seconds=LEASE_SECONDS + 1))
    await make_worker(committing_db, clock).run_pending()
    finished_by_b = (await get_job(committing_db, job_id)).finished_at

    clock.advance(timedelta(minutes=1))
    async with committing_db.transaction() as session:
        assert await jobs.mark_done(session, worker_a, now=clock()) is False
        assert (
            await jobs.mark_failed(
                session, worker_a, error="late", now=clock(), backoff_seconds=1.0
            )
            is None
        )

    after = await get_job(committing_db, job_id)
    assert (after.status, after.finished_at, after.last_error) == (
        JobStatus.DONE,
        finished_by_b,
        None,
    )


async def test_a_job_whose_lease_runs_out_on_every_attempt_ends_dead(committing_db, clock):
    job_id = await enqueue(
        committing_db, "test.worker.record", clock, payload={"tag": "stuck"}, max_attempts=1
    )
    await claim_as_worker_that_dies(committing_db, clock)

    clock.advance(timedelta(seconds=LEASE_SECONDS + 1))
    await make_worker(committing_db, clock).run_pending()

    dead = await get_job(committing_db, job_id)
    assert RUNS["stuck"] == 0
    assert dead.status == JobStatus.DEAD
    assert dead.last_error == "RuntimeError: the job's lease ran out on every attempt"


async def test_concurrent_workers_run_every_job_exactly_once(committing_db, clock):
    await enqueue_many(committing_db, "test.worker.slow", clock, 30)
    workers = [make_worker(committing_db, clock) for _ in range(3)]

    ran = await asyncio.gather(*(worker.run_pending() for worker in workers))

    assert sum(ran) == 30
    assert Counter({f"job-{number}": 1 for number in range(30)}) == RUNS
    assert OVERLAPPED == []
    assert PEAK_IN_FLIGHT[0] > 1, "the workers never ran side by side; the test proves nothing"


async def test_two_workers_run_a_due_periodic_job_once(committing_db, clock):
    schedule = (Periodic("test.worker.tick", TICK_EVERY),)
    workers = [make_worker(committing_db, clock, schedule=schedule) for _ in range(2)]

    await asyncio.gather(*(worker.run_pending() for worker in workers))

    assert RUNS["tick"] == 1


async def test_a_periodic_job_runs_once_more_each_time_its_interval_passes(committing_db, clock):
    schedule = (Periodic("test.worker.tick", TICK_EVERY),)
    workers = [make_worker(committing_db, clock, schedule=schedule) for _ in range(2)]
    await asyncio.gather(*(worker.run_pending() for worker in workers))

    clock.advance(TICK_EVERY - timedelta(seconds=1))
    await asyncio.gather(*(worker.run_pending() for worker in workers))
    assert RUNS["tick"] == 1

    clock.advance(timedelta(seconds=1))
    await asyncio.gather(*(worker.run_pending() for worker in workers))
    assert RUNS["tick"] == 2


async def test_run_returns_promptly_after_stop_when_idle(committing_db, clock):
    worker = make_worker(committing_db, clock, poll_interval=30)
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.05)

    started = time.monotonic()
    worker.stop()
    await asyncio.wait_for(running, timeout=1)

    assert time.monotonic() - started < 0.2


async def test_run_stops_after_the_job_in_hand_when_stopped_mid_batch(committing_db, clock):
    await enqueue_many(committing_db, "test.worker.slow", clock, 40)
    worker = make_worker(committing_db, clock)
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.05)

    worker.stop()
    await asyncio.wait_for(running, timeout=0.2)

    assert 0 < RUNS.total() < 40
