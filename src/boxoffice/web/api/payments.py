"""Payments (API.md "Payments"): the fan's history, and the providers' callbacks."""

import json
import uuid
from typing import Any

import structlog
from fastapi import APIRouter, Request

from boxoffice.payments import service as payments_service
from boxoffice.payments import views
from boxoffice.payments.schemas import PaymentRead
from boxoffice.validation import Page
from boxoffice.web.api import API_PREFIX, api_router
from boxoffice.web.deps import Clock, CurrentUser, DbDep, PageDep, PaymentsDep, ReadSessionDep
from boxoffice.web.errors import problems

log = structlog.get_logger("boxoffice.web.payments")
router = api_router("payments")
# Providers post whatever content type they like: no JSON requirement on callbacks.
callbacks = APIRouter(prefix=API_PREFIX, tags=["payments"])

ACKNOWLEDGED = {"ResultCode": 0, "ResultDesc": "Accepted"}  # what Daraja integrators answer


@router.get("/payments", responses=problems(401))
async def list_payments(
    user: CurrentUser, session: ReadSessionDep, page: PageDep
) -> Page[PaymentRead]:
    found, total = await payments_service.list_payments(
        session, user=user, offset=page.offset, limit=page.limit
    )
    items = await views.payment_reads(session, found, viewer=user)
    return Page(items=items, page=page.page, limit=page.limit, total=total)


@router.get("/payments/{payment_id}", responses=problems(401, 404))
async def read_payment(
    payment_id: uuid.UUID, user: CurrentUser, session: ReadSessionDep
) -> PaymentRead:
    payment = await payments_service.get_payment(session, payment_id=payment_id, viewer=user)
    (read,) = await views.payment_reads(session, [payment], viewer=user)
    return read


# One operation per method (MoMo may PUT, Daraja POSTs), each with its own operation id.
@callbacks.put("/payments/callbacks/{token}", responses=problems(404), operation_id="put_callback")
@callbacks.post(
    "/payments/callbacks/{token}", responses=problems(404), operation_id="post_callback"
)
async def provider_callback(
    token: str, request: Request, db: DbDep, payments: PaymentsDep, now: Clock
) -> dict[str, Any]:
    """A provider's news of a payment or refund. Acknowledged whatever it says; what
    changes is only what the provider's status API confirms. Unknown token → 404."""
    await payments_service.handle_callback(
        db, payments, token, _parsed(await request.body()), now=now
    )
    return ACKNOWLEDGED


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        log.warning("payment.callback_malformed", size=len(body))
        return None
