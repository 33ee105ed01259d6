"""Idempotency-Key: the first answer to a create, replayed to retries for 24 h.

The key is claimed with an INSERT in the same transaction as the work it guards. A
concurrent retry's INSERT waits on that row (PostgreSQL) or on the write lock (SQLite)
until the first commits, then finds the stored answer; if the first rolled back, the
retry does the work itself. So the same key sent twenty times at once acts once.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.db import insert_missing
from boxoffice.orders.errors import IdempotencyKeyReused
from boxoffice.orders.models import IdempotencyKey

KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    body: dict[str, Any]


def fingerprint(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    scope: str,
    request_fingerprint: str,
    now: datetime,
) -> Replay | None:
    """None: the key is ours, do the work and remember() the answer. A Replay: answer it."""
    where = (
        IdempotencyKey.user_id == user_id,
        IdempotencyKey.key == key,
        IdempotencyKey.scope == scope,
    )
    await session.execute(delete(IdempotencyKey).where(*where, IdempotencyKey.expires_at <= now))
    await insert_missing(
        session,
        IdempotencyKey,
        [
            {
                "user_id": user_id,
                "key": key,
                "scope": scope,
                "fingerprint": request_fingerprint,
                "created_at": now,
                "expires_at": now + KEY_LIFETIME,
            }
        ],
    )
    row = (
        await session.execute(
            select(
                IdempotencyKey.fingerprint,
                IdempotencyKey.status_code,
                IdempotencyKey.response,
            ).where(*where)
        )
    ).one()
    if row.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was sent before with a different request body."
        )
    if row.status_code is None:
        return None  # just inserted by us
    return Replay(row.status_code, row.response or {})


async def remember(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    scope: str,
    status_code: int,
    body: dict[str, Any],
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key == key,
            IdempotencyKey.scope == scope,
        )
        .values(status_code=status_code, response=body)
    )


async def purge_expired(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return result.rowcount or 0
