"""Rate limits per client IP and per account: in memory in one process, in Redis when
several processes must share one count."""

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from boxoffice.errors import RateLimited


class RateLimiter:
    def __init__(self, *, enabled: bool, redis_url: str | None = None, prefix: str = "") -> None:
        self.enabled = enabled
        self.storage: Storage = (
            RedisStorage(redis_url, implementation="redispy", key_prefix=f"{prefix}ratelimit")
            if redis_url
            else MemoryStorage()
        )
        self._strategy = MovingWindowRateLimiter(self.storage)

    async def check(self, name: str, rate: str, *keys: str) -> None:
        """Count one attempt against each key (an IP, an email…); RateLimited if any is over."""
        if not self.enabled:
            return
        item = parse(rate)
        retry_after = 0
        for key in keys:
            if not await self._strategy.hit(item, name, key):
                retry_after = max(retry_after, await self._seconds_until_free(item, name, key))
        if retry_after:
            raise RateLimited(retry_after)

    async def _seconds_until_free(self, item: RateLimitItem, *identifiers: str) -> int:
        stats = await self._strategy.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))
