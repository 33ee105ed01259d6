from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.worker.models import Job, JobStatus
from boxoffice.worker.registry import job

KEEP_FINISHED = timedelta(days=7)


@job("worker.purge_finished_jobs")
async def purge_finished_jobs(
    session: AsyncSession, payload: dict[str, Any], now: datetime
) -> None:
    # Dead jobs stay until someone has looked at them; done ones are history.
    await session.execute(
        delete(Job).where(Job.status == JobStatus.DONE, Job.finished_at < now - KEEP_FINISHED)
    )
