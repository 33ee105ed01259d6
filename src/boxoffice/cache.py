"""A small cache of rendered public responses, with namespaces that a commit invalidates.

Invalidation bumps a namespace's generation; entries are stored under the generation they
were read at, so an entry computed before a change can never be served after it. Entries
also expire after a short TTL, which bounds how stale availability may be (API.md: 2 s).
"""

import time
from collections.abc import Collection
from typing import Protocol

import redis.asyncio as aioredis


class Cache(Protocol):
    async def get(self, namespace: str, key: str) -> tuple[str, bytes | None]:
        """(generation token, cached value or None)."""

    async def set(self, namespace: str, key: str, token: str, value: bytes, ttl: float) -> None: ...

    async def invalidate(self, namespaces: Collection[str]) -> None: ...


class MemoryCache:
    """One process's cache (embedded mode). Other processes' copies expire by TTL."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._generations: dict[str, int] = {}
        self._entries: dict[tuple[str, int, str], tuple[float, bytes]] = {}

    async def get(self, namespace: str, key: str) -> tuple[str, bytes | None]:
        generation = self._generations.get(namespace, 0)
        entry = self._entries.get((namespace, generation, key))
        if entry is None or entry[0] < time.monotonic():
            return str(generation), None
        return str(generation), entry[1]

    async def set(self, namespace: str, key: str, token: str, value: bytes, ttl: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._evict()
        self._entries[(namespace, int(token), key)] = (time.monotonic() + ttl, value)

    async def invalidate(self, namespaces: Collection[str]) -> None:
        for namespace in namespaces:
            self._generations[namespace] = self._generations.get(namespace, 0) + 1
        self._entries = {k: v for k, v in self._entries.items() if k[0] not in namespaces}

    def _evict(self) -> None:
        now = time.monotonic()
        self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
        while len(self._entries) >= self.max_entries:  # the oldest insertions go first
            del self._entries[next(iter(self._entries))]


# One round trip: the namespace's generation and the entry stored under it.
_GET = """
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', KEYS[2] .. generation)}
"""


class RedisCache:
    """Shared by every process: a change made through one is seen by all at once."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = aioredis.from_url(url)
        self.prefix = f"{prefix}cache:"
        self._get = self.client.register_script(_GET)

    async def get(self, namespace: str, key: str) -> tuple[str, bytes | None]:
        generation, value = await self._get(
            keys=[self._generation(namespace), self._key(namespace, key)]
        )
        return generation.decode() if isinstance(generation, bytes) else str(generation), value

    async def set(self, namespace: str, key: str, token: str, value: bytes, ttl: float) -> None:
        await self.client.set(self._key(namespace, key) + token, value, px=max(1, int(ttl * 1000)))

    async def invalidate(self, namespaces: Collection[str]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for namespace in namespaces:
                pipe.incr(self._generation(namespace))
            await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()

    def _generation(self, namespace: str) -> str:
        return f"{self.prefix}{namespace}:generation"

    def _key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}{namespace}:entry:{key}:"


def build_cache(redis_url: str | None, prefix: str) -> Cache:
    return RedisCache(redis_url, prefix) if redis_url else MemoryCache()
