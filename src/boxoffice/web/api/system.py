"""Liveness, readiness and metrics: outside /api/v1, for load balancers and Prometheus."""

import os
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text

from boxoffice.db import Database
from boxoffice.web.deps import get_db
from boxoffice.web.errors import ProblemResponse, problem

router = APIRouter(tags=["system"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", response_model=None, responses={503: {"description": "Database unreachable"}})
async def ready(db: Annotated[Database, Depends(get_db)]) -> dict[str, str] | ProblemResponse:
    try:
        async with db.read_transaction() as session:
            await session.execute(text("SELECT 1"))
    except Exception:
        return problem(503, "not_ready", "Not ready", "The database is unreachable.")
    return {"status": "ready", "database": db.dialect}


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # several `serve` workers: add up their files
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
