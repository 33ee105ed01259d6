"""JSON routers, one module per domain, all under /api/v1."""

from fastapi import APIRouter, Depends

from boxoffice.web.deps import require_json
from boxoffice.web.errors import problems

API_PREFIX = "/api/v1"


def api_router(tag: str) -> APIRouter:
    # The prefix sits on each router, not on an enclosing one, so that a route's own
    # `path` is its full template, as logs and metrics label it.
    return APIRouter(
        prefix=API_PREFIX,
        tags=[tag],
        dependencies=[Depends(require_json)],
        responses=problems(422),
    )
