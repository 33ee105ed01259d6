from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts import service as accounts
from boxoffice.worker.registry import job


@job("accounts.purge_expired_tokens")
async def purge_expired_tokens(
    session: AsyncSession, payload: dict[str, Any], now: datetime
) -> None:
    await accounts.purge_expired_tokens(session, now=now)
