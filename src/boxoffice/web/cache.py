"""Serving public reads from the cache: rendered JSON bytes, keyed by what was asked."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Response
from pydantic import BaseModel, TypeAdapter

from boxoffice.cache import Cache

# Requests for one key that miss together wait for the first one's answer instead of all
# querying the database (a stampede at every expiry under load). Per process.
_in_flight: dict[tuple[str, str, str], asyncio.Future[bytes]] = {}


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
        body = await _single_flight((namespace, key, token), produce, cache, ttl)
    return Response(body, media_type="application/json")


async def _single_flight(
    slot: tuple[str, str, str],
    produce: Callable[[], Awaitable[BaseModel | list]],
    cache: Cache,
    ttl: float,
) -> bytes:
    running = _in_flight.get(slot)
    if running is not None:
        return await asyncio.shield(running)
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    _in_flight[slot] = future
    try:
        body = _render(await produce())
        await cache.set(slot[0], slot[1], slot[2], body, ttl)
        future.set_result(body)
        return body
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody waited
        raise
    finally:
        del _in_flight[slot]


_ANY = TypeAdapter(Any)


def _render(value: BaseModel | list) -> bytes:
    return _ANY.dump_json(value)
