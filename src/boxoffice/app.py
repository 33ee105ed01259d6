"""create_app(settings): the one place the web process is assembled."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from boxoffice import simulators
from boxoffice.analytics.recorder import InteractionRecorder
from boxoffice.cache import RedisCache, build_cache
from boxoffice.config import Settings
from boxoffice.db import Database
from boxoffice.logging import configure_logging
from boxoffice.payments import setup as payment_setup
from boxoffice.ratelimit import RateLimiter
from boxoffice.tickets.codes import TicketSigner
from boxoffice.web.api import accounts, catalog, events_admin, payments, selling, system
from boxoffice.web.api.docs import mount_docs
from boxoffice.web.errors import document_problems_as_problem_json, install_error_handlers
from boxoffice.web.middleware import EdgeMiddleware
from boxoffice.worker.runner import Worker

log = structlog.get_logger("boxoffice.app")


def _describe_errors_in_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems_as_problem_json(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def serving_app() -> FastAPI:
    """The app as `boxoffice serve` runs it in each web process (uvicorn --factory).

    What start-up built (modules, mappers, routes, compiled statements) lives as long as
    the process, so it is frozen out of the garbage collector's sight: otherwise every
    full collection walks all of it and stalls the request in flight for tens of ms. With
    that out of the count, the youngest generation may grow larger before a collection
    (a page of events allocates tens of thousands of objects), else the collector would
    run whole-heap passes on almost every request.
    """
    app = create_app()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    return app


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    """The web app. With no arguments (uvicorn --factory) settings come from the environment.

    Tests pass `db` to bind every request to their own connection.
    """
    settings = settings or Settings()
    configure_logging(level=settings.log_level, json=settings.log_json)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        recorder_task = asyncio.create_task(app.state.interactions.run(), name="interactions")
        worker_task = None
        if settings.run_worker_in_process:
            worker = Worker(
                app.state.db,
                poll_interval=settings.worker_poll_interval,
                lease_seconds=settings.job_lease_seconds,
                backoff_seconds=settings.job_backoff_seconds,
            )
            worker_task = asyncio.create_task(worker.run(), name="in-process-worker")
        yield
        if worker_task is not None:
            worker.stop()
            await worker_task
        app.state.interactions.stop()
        await recorder_task
        await app.state.interactions.flush()
        if isinstance(app.state.cache, RedisCache):
            await app.state.cache.close()
        await app.state.payments.providers.aclose()
        for simulator in app.state.simulators.values():
            await simulator.stop()
        if db is None:
            await app.state.db.dispose()

    app = FastAPI(
        title="boxoffice",
        version="1",
        summary="Concert tickets paid with mobile money",
        lifespan=lifespan,
        docs_url=None,  # mount_docs serves Swagger UI from local files
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    app.state.simulators = {}  # by provider name, when mounted
    pool = {} if settings.is_embedded else {"pool_size": settings.database_pool_size}
    app.state.db = db or Database.from_url(settings.database_url, **pool)
    app.state.limiter = RateLimiter(
        enabled=settings.rate_limits, redis_url=settings.redis_url, prefix=settings.redis_prefix
    )
    app.state.cache = build_cache(settings.redis_url, settings.redis_prefix)
    app.state.db.on_commit = app.state.cache.invalidate
    app.state.interactions = InteractionRecorder(app.state.db)
    app.state.signer = TicketSigner(settings.signing_secret)
    app.state.payments = payment_setup.build(settings)
    payment_setup.configure(app.state.payments)  # for the in-process worker's payment jobs
    if settings.run_simulators:
        app.state.simulators = simulators.mount(app, settings)

    app.include_router(accounts.router)
    app.include_router(catalog.router)
    app.include_router(events_admin.router)
    app.include_router(selling.router)
    app.include_router(payments.router)
    app.include_router(payments.callbacks)
    app.include_router(system.router)
    mount_docs(app)
    install_error_handlers(app)
    _describe_errors_in_openapi(app)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    # The body limit lives in EdgeMiddleware, not FastAPI(max_body_size=…): Starlette's
    # limiter sits outside every user middleware and answers a plain-text 413 with no
    # request id in place of our problem.
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_body_bytes,
        hsts=(settings.public_url or "").startswith("https://"),
    )
    return app
