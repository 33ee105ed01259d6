"""Job kinds and their handlers. A handler gets ids in its payload, reloads its rows,
re-checks their state and is idempotent: a job runs at least once, maybe twice."""

import importlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

JobHandler = Callable[[AsyncSession, dict[str, Any], datetime], Awaitable[None]]

# Every domain module that defines jobs; the worker imports them all before it starts.
TASK_MODULES = (
    "boxoffice.accounts.tasks",
    "boxoffice.inventory.tasks",
    "boxoffice.orders.tasks",
    "boxoffice.payments.tasks",
    "boxoffice.worker.tasks",
)

_handlers: dict[str, JobHandler] = {}


def job(kind: str) -> Callable[[JobHandler], JobHandler]:
    def register(handler: JobHandler) -> JobHandler:
        if kind in _handlers and _handlers[kind] is not handler:
            raise ValueError(f"job kind {kind!r} is registered twice")
        _handlers[kind] = handler
        return handler

    return register


def find_handler(kind: str) -> JobHandler | None:
    return _handlers.get(kind)


def load_all() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)
