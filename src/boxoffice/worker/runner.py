"""The worker loop: fire due schedules, claim a job, run it in its own transaction."""

import asyncio
import contextlib
import traceback
from collections.abc import Callable
from datetime import datetime

import structlog
from prometheus_client import Counter

from boxoffice.db import Database, insert_missing, utcnow
from boxoffice.worker import registry
from boxoffice.worker import service as jobs
from boxoffice.worker.models import JobSchedule, JobStatus
from boxoffice.worker.schedule import SCHEDULE, Periodic

log = structlog.get_logger("boxoffice.worker")

JOBS_RUN = Counter("boxoffice_jobs_total", "Jobs run by the worker", ["kind", "outcome"])


class LeaseLost(Exception):
    """Another worker took the job over while this one ran it."""


class Worker:
    def __init__(
        self,
        db: Database,
        *,
        poll_interval: float = 1.0,
        lease_seconds: int = 300,
        backoff_seconds: float = 2.0,
        schedule: tuple[Periodic, ...] = SCHEDULE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        registry.load_all()
        self.db = db
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.backoff_seconds = backoff_seconds
        self.schedule = schedule
        self.clock = clock
        self._stop = asyncio.Event()
        self._schedule_registered = False
        self._schedules_due_at: datetime | None = None

    async def run(self) -> None:
        log.info("worker.started", periodic=[p.kind for p in self.schedule])
        while not self._stop.is_set():
            try:
                busy = await self.run_pending()
            except Exception:
                log.exception("worker.loop_failed")
                busy = 0
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_interval)
        log.info("worker.stopped")

    def stop(self) -> None:
        self._stop.set()

    async def run_pending(self, limit: int = 100) -> int:
        """Fire due schedules, then run up to `limit` due jobs, or fewer once stopped; the
        number run."""
        if not self._schedule_registered:
            await self._register_schedule()
            self._schedule_registered = True
        await self._fire_due_schedules()
        ran = 0
        while ran < limit and not self._stop.is_set() and await self.run_one():
            ran += 1
        return ran

    async def run_one(self) -> bool:
        # Look before taking the write lock: an idle embedded worker must not make the
        # site's writers queue behind it once a second.
        async with self.db.read_transaction() as session:
            if not await jobs.has_due(session, now=self.clock()):
                return False
        async with self.db.transaction() as session:
            claimed = await jobs.claim(
                session, now=self.clock(), lease_seconds=self.lease_seconds, limit=1
            )
        if not claimed:
            return False
        await self._execute(claimed[0])
        return True

    async def _execute(self, job: jobs.ClaimedJob) -> None:
        handler = registry.find_handler(job.kind)
        io_handler = registry.find_io_handler(job.kind)
        bound = log.bind(job_id=str(job.id), kind=job.kind, attempt=job.attempts)
        try:
            if handler is None and io_handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            if job.attempts > job.max_attempts:
                raise RuntimeError("the job's lease ran out on every attempt")
            if io_handler is not None:
                await io_handler(self.db, job.payload, self.clock())
            async with self.db.transaction() as session:
                if handler is not None:
                    await handler(session, job.payload, self.clock())
                if not await jobs.mark_done(session, job, now=self.clock()):
                    raise LeaseLost()
        except LeaseLost:
            bound.warning("job.lease_lost")
            JOBS_RUN.labels(job.kind, "lease_lost").inc()
            return
        except Exception as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()
            async with self.db.transaction() as session:
                status = await jobs.mark_failed(
                    session,
                    job,
                    error=error,
                    now=self.clock(),
                    backoff_seconds=self.backoff_seconds,
                )
            outcome = {None: "lease_lost", JobStatus.DEAD: "dead"}.get(status, "retry")
            bound.warning("job.failed", error=error, outcome=outcome)
            JOBS_RUN.labels(job.kind, outcome).inc()
            return
        bound.info("job.done")
        JOBS_RUN.labels(job.kind, "done").inc()

    async def _register_schedule(self) -> None:
        now = self.clock()
        async with self.db.transaction() as session:
            await insert_missing(
                session, JobSchedule, [{"name": p.kind, "next_run_at": now} for p in self.schedule]
            )

    async def _fire_due_schedules(self) -> None:
        now = self.clock()
        if self._schedules_due_at is not None and now < self._schedules_due_at:
            return  # other workers only ever move schedules later, so this stays a lower bound
        async with self.db.transaction() as session:
            for periodic in self.schedule:
                if await jobs.claim_schedule(
                    session, name=periodic.kind, every=periodic.every, now=now
                ):
                    jobs.enqueue(session, periodic.kind, now=now)
            self._schedules_due_at = await jobs.next_schedule_at(session)
