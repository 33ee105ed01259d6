from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from boxoffice.db import Database
from boxoffice.worker import service as jobs
from boxoffice.worker.models import Job, JobStatus

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


async def enqueue_due(db: Database, *, minutes_ago: list[int]) -> None:
    async with db.transaction() as session:
        for minutes in minutes_ago:
            enqueued_at = NOW - timedelta(minutes=minutes)
            jobs.enqueue(session, "test.service.noop", {"minutes_ago": minutes}, now=enqueued_at)


async def count_with_status(db: Database, status: JobStatus) -> int:
    async with db.transaction() as session:
        query = select(func.count()).select_from(Job).where(Job.status == status)
        return await session.scalar(query) or 0


async def test_claim_takes_no_more_jobs_than_its_limit(db):
    # Written in the order they fell due, as in production: on PostgreSQL that is the
    # order in which an unmaterialised candidate subquery let one claim take them all.
    await enqueue_due(db, minutes_ago=[5, 4, 3, 2, 1])

    async with db.transaction() as session:
        claimed = await jobs.claim(session, now=NOW, lease_seconds=30, limit=2)

    assert len(claimed) == 2
    assert await count_with_status(db, JobStatus.RUNNING) == 2
    assert await count_with_status(db, JobStatus.PENDING) == 3


async def test_claim_takes_the_longest_waiting_job_first(db):
    await enqueue_due(db, minutes_ago=[1, 3, 2])

    async with db.transaction() as session:
        (claimed,) = await jobs.claim(session, now=NOW, lease_seconds=30)

    assert claimed.payload == {"minutes_ago": 3}
