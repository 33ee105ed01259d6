"""The worker's payment jobs. They call providers, so they open their own transactions
(io_job) and use the process's payment set-up (payments.setup.configured)."""

import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.db import Database
from boxoffice.payments import audit
from boxoffice.payments import service as payments_service
from boxoffice.payments.setup import configured
from boxoffice.worker.registry import io_job, job

log = structlog.get_logger("boxoffice.payments")


@io_job("payments.refund")
async def refund(db: Database, payload: dict[str, Any], now: datetime) -> None:
    await payments_service.run_refund(db, configured(), uuid.UUID(payload["refund_id"]), now=now)


@io_job("payments.reconcile")
async def reconcile(db: Database, payload: dict[str, Any], now: datetime) -> None:
    polled = await payments_service.reconcile(db, configured(), now=now)
    if polled:
        log.info("payments.reconciled", polled=polled)


@job("payments.audit")
async def audit_money(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    found = await audit.stuck(session, now=now, payment_window=configured().payment_window)
    for item in found:
        log.error("payments.stuck", problem=str(item))
