"""Serving public reads from the cache: rendered JSON bytes, keyed by what was asked."""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Response
from pydantic import BaseModel, TypeAdapter

from boxoffice.cache import Cache


async def cached_json(
    cache: Cache,
    namespace: str,
    key: str,
    produce: Callable[[], Awaitable[BaseModel | list]],
    *,
    ttl: float,
) -> Response:
    """The cached body for `key`, or `produce()`'s rendered and stored. A DomainError raised
    by produce (a 404) goes out as usual and is not cached."""
    if ttl <= 0:
        return Response(_render(await produce()), media_type="application/json")
    token, body = await cache.get(namespace, key)
    if body is None:
        body = _render(await produce())
        await cache.set(namespace, key, token, body, ttl)
    return Response(body, media_type="application/json")


_ANY = TypeAdapter(Any)


def _render(value: BaseModel | list) -> bytes:
    return _ANY.dump_json(value)
