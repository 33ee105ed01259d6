from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.inventory import audit
from boxoffice.worker.registry import job

log = structlog.get_logger("boxoffice.inventory")


@job("inventory.audit")
async def audit_stock(session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
    drifts = await audit.check(session)
    for drift in drifts:
        log.error("inventory.drift", problem=str(drift))
    if drifts:
        log.critical("inventory.audit_failed", drifts=len(drifts))
