"""Enqueue, claim, finish and fail jobs. Each function is one short conditional statement
or two, so that any number of workers can share the table."""

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.worker.models import Job, JobSchedule, JobStatus

MAX_BACKOFF = timedelta(hours=1)
DEFAULT_MAX_ATTEMPTS = 8


def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    now: datetime,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    run_after: datetime | None = None,
) -> Job:
    """Add a job to the caller's transaction: it exists only if that transaction commits."""
    job = Job(
        id=uuid.uuid4(),
        kind=kind,
        payload=payload or {},
        status=JobStatus.PENDING,
        attempts=0,
        max_attempts=max_attempts,
        run_after=run_after or now,
        created_at=now,
    )
    session.add(job)
    return job


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    lease_token: uuid.UUID


def _due(now: datetime) -> ColumnElement[bool]:
    """Jobs that should run now: pending and due, or running under an expired lease."""
    return or_(
        and_(Job.status == JobStatus.PENDING, Job.run_after <= now),
        and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at <= now),
    )


async def has_due(session: AsyncSession, *, now: datetime) -> bool:
    return bool(await session.scalar(select(exists().where(_due(now)))))


async def claim(
    session: AsyncSession, *, now: datetime, lease_seconds: int, limit: int = 1
) -> list[ClaimedJob]:
    """Take due jobs, and jobs whose worker died (lease expired), for this worker.

    On PostgreSQL, SKIP LOCKED lets concurrent workers pass over each other's rows; on
    SQLite the IMMEDIATE transaction already serialises claimers.
    """
    due = _due(now)
    # MATERIALIZED, so the candidates are picked once. As a plain IN (subquery) PostgreSQL
    # may re-run the subquery for every row it scans (nested-loop semi-join), each run
    # skipping the rows this statement already took: LIMIT 1 then claims every due job.
    candidates = (
        select(Job.id)
        .where(due)
        .order_by(Job.run_after)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    token = uuid.uuid4()
    rows = await session.execute(
        update(Job)
        .where(Job.id.in_(select(candidates.c.id)), due)
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
        )
        .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts)
    )
    return [ClaimedJob(*row, lease_token=token) for row in rows]


async def mark_done(session: AsyncSession, job: ClaimedJob, *, now: datetime) -> bool:
    """False if the lease was lost (another worker took the job): the caller rolls back."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.lease_token == job.lease_token)
        .values(status=JobStatus.DONE, finished_at=now, lease_token=None, lease_expires_at=None)
    )
    return result.rowcount == 1


async def mark_failed(
    session: AsyncSession, job: ClaimedJob, *, error: str, now: datetime, backoff_seconds: float
) -> JobStatus | None:
    """Schedule a retry with exponential backoff, or bury the job once out of attempts."""
    if job.attempts >= job.max_attempts:
        status, run_after, finished_at = JobStatus.DEAD, now, now
    else:
        delay = backoff_seconds * 2 ** (job.attempts - 1) * random.uniform(1.0, 1.25)  # noqa: S311
        status = JobStatus.PENDING
        run_after = now + min(timedelta(seconds=delay), MAX_BACKOFF)
        finished_at = None
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.lease_token == job.lease_token)
        .values(
            status=status,
            run_after=run_after,
            finished_at=finished_at,
            last_error=error[:4000],
            lease_token=None,
            lease_expires_at=None,
        )
    )
    return status if result.rowcount == 1 else None


async def next_schedule_at(session: AsyncSession) -> datetime | None:
    return await session.scalar(select(func.min(JobSchedule.next_run_at)))


async def claim_schedule(
    session: AsyncSession, *, name: str, every: timedelta, now: datetime
) -> bool:
    """True for exactly one worker each time a periodic job falls due."""
    result = await session.execute(
        update(JobSchedule)
        .where(JobSchedule.name == name, JobSchedule.next_run_at <= now)
        .values(next_run_at=now + every)
    )
    return result.rowcount == 1
