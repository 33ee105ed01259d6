"""Job kinds and their handlers. A handler gets ids in its payload, reloads its rows,
re-checks their state and is idempotent: a job runs at least once, maybe twice.

Most handlers run inside the transaction that marks their job done (`job`). Those that
call another service over the network (`io_job`) get the Database instead and open their
own short transactions around the call, never holding one across it.
"""

import importlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.db import Database

JobHandler = Callable[[AsyncSession, dict[str, Any], datetime], Awaitable[None]]
IOJobHandler = Callable[[Database, dict[str, Any], datetime], Awaitable[None]]

# Every domain module that defines jobs; the worker imports them all before it starts.
TASK_MODULES = (
    "boxoffice.accounts.tasks",
    "boxoffice.inventory.tasks",
    "boxoffice.orders.tasks",
    "boxoffice.payments.tasks",
    "boxoffice.worker.tasks",
)

_handlers: dict[str, JobHandler] = {}
_io_handlers: dict[str, IOJobHandler] = {}


def job(kind: str) -> Callable[[JobHandler], JobHandler]:
    def register(handler: JobHandler) -> JobHandler:
        _check_new(kind, handler)
        _handlers[kind] = handler
        return handler

    return register


def io_job(kind: str) -> Callable[[IOJobHandler], IOJobHandler]:
    def register(handler: IOJobHandler) -> IOJobHandler:
        _check_new(kind, handler)
        _io_handlers[kind] = handler
        return handler

    return register


def _check_new(kind: str, handler: object) -> None:
    if (
        _handlers.get(kind, handler) is not handler
        or _io_handlers.get(kind, handler) is not handler
    ):
        raise ValueError(f"job kind {kind!r} is registered twice")


def find_handler(kind: str) -> JobHandler | None:
    return _handlers.get(kind)


def find_io_handler(kind: str) -> IOJobHandler | None:
    return _io_handlers.get(kind)


def load_all() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)
