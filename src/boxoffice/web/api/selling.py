"""Buying: holds, bookings and tickets (API.md "Buying")."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated

import structlog
from fastapi import Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import Role, User
from boxoffice.analytics.models import InteractionKind
from boxoffice.db import Database
from boxoffice.errors import DomainError
from boxoffice.orders import free_booking, idempotency, placing, views
from boxoffice.orders import service as orders
from boxoffice.orders.metrics import HOLDS, SEATS_HELD
from boxoffice.orders.schemas import (
    BookingCreate,
    BookingRead,
    HoldCreate,
    HoldRead,
    PaymentChoice,
    TicketRead,
)
from boxoffice.payments import service as payments_service
from boxoffice.payments import views as payment_views
from boxoffice.payments.errors import PaymentProviderUnavailable
from boxoffice.payments.models import Payment, PaymentStatus
from boxoffice.payments.schemas import PaymentRead
from boxoffice.tickets import pdf
from boxoffice.tickets import service as tickets
from boxoffice.tickets.errors import TicketNotFound
from boxoffice.tickets.models import TicketStatus
from boxoffice.validation import Page
from boxoffice.web.api import api_router
from boxoffice.web.deps import (
    ClaimsDep,
    Clock,
    CurrentUser,
    DbDep,
    IdempotencyKeyHeader,
    LimiterDep,
    PageDep,
    PaymentsDep,
    ReadSessionDep,
    RecorderDep,
    SessionDep,
    SettingsDep,
    SignerDep,
)
from boxoffice.web.errors import problem_body, problems

log = structlog.get_logger("boxoffice.web.selling")
router = api_router("buying")
READ = problems(401, 404)
WRITE = problems(401, 404, 409)


async def _once(
    db: Database,
    *,
    user_id: uuid.UUID,
    key: str | None,
    scope: str,
    body: BaseModel,
    now: datetime,
    work: Callable[[AsyncSession], Awaitable[BaseModel]],
) -> JSONResponse:
    """Run `work` in one transaction, honouring an Idempotency-Key (API.md conventions)."""
    async with db.transaction() as session:
        if key is not None:
            replay = await idempotency.claim(
                session,
                user_id=user_id,
                key=key,
                scope=scope,
                request_fingerprint=idempotency.fingerprint(body.model_dump(mode="json")),
                now=now,
            )
            if replay is not None:
                return JSONResponse(replay.body, status_code=replay.status_code)
        content = (await work(session)).model_dump(mode="json")
        if key is not None:
            await idempotency.remember(
                session, user_id=user_id, key=key, scope=scope, status_code=201, body=content
            )
    return JSONResponse(content, status_code=201)


@router.post(
    "/holds", status_code=201, response_model=HoldRead, responses=problems(401, 404, 409, 429)
)
async def create_hold(
    body: HoldCreate,
    claims: ClaimsDep,
    db: DbDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    recorder: RecorderDep,
    now: Clock,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    await limiter.check("holds", settings.rate_limit_holds, f"user:{claims.user_id}")
    ttl = timedelta(seconds=settings.hold_ttl)

    async def alone() -> JSONResponse:
        # The hot path of a flash sale: one statement, the session check included.
        hold = await placing.place_alone(db, claims=claims, data=body, ttl=ttl, now=now)
        return JSONResponse(views.placed_hold(hold).model_dump(mode="json"), status_code=201)

    async def in_transaction(user: User) -> JSONResponse:
        async def place(session: AsyncSession) -> HoldRead:
            hold = await orders.place_hold(session, user=user, data=body, ttl=ttl, now=now)
            return views.placed_hold(hold)

        return await _once(
            db,
            user_id=user.id,
            key=idempotency_key,
            scope="POST /holds",
            body=body,
            now=now,
            work=place,
        )

    try:
        if idempotency_key is None and db.dialect == "postgresql":
            response = await orders.retry_after_expiring(db, alone, now=now)
        else:
            # Before the key is claimed: a revoked token gets a 401, never a replay.
            async with db.read_transaction() as session:
                user = await accounts.live_user(session, claims)
            response = await orders.retry_after_expiring(db, lambda: in_transaction(user), now=now)
    except DomainError as exc:
        HOLDS.labels(exc.code).inc()
        raise
    quantity = sum(item.quantity for item in body.items)
    HOLDS.labels("held").inc()
    SEATS_HELD.inc(quantity)
    recorder.record(
        InteractionKind.HOLD, user_id=claims.user_id, event_id=body.event_id, quantity=quantity
    )
    return response


@router.get("/holds/{hold_id}", responses=READ)
async def read_hold(
    hold_id: uuid.UUID, user: CurrentUser, session: ReadSessionDep, now: Clock
) -> HoldRead:
    hold = await orders.get_hold(session, hold_id=hold_id, user=user)
    return await views.hold_read(session, hold, now=now)


@router.delete("/holds/{hold_id}", status_code=204, responses=WRITE)
async def release_hold(
    hold_id: uuid.UUID, user: CurrentUser, session: SessionDep, now: Clock
) -> Response:
    await orders.release_hold(session, hold_id=hold_id, user=user, now=now)
    return Response(status_code=204)


@router.post(
    "/bookings", status_code=201, response_model=BookingRead, responses=problems(401, 404, 409, 503)
)
async def create_booking(
    body: BookingCreate,
    claims: ClaimsDep,
    db: DbDep,
    payments: PaymentsDep,
    signer: SignerDep,
    now: Clock,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    if idempotency_key is None and body.payment is None and db.dialect == "postgresql":
        # A free booking is one statement, the session check included. (A paid one says
        # how it pays; without that the function finds the price and the steps refuse.)
        confirmed = await free_booking.book_alone(
            db, claims=claims, hold_id=body.hold_id, now=now, signer=signer
        )
        if confirmed is not None:
            return JSONResponse(confirmed.model_dump(mode="json"), status_code=201)
    # Before the key is claimed: a revoked token gets a 401, never a replay.
    async with db.read_transaction() as session:
        user = await accounts.live_user(session, claims)
    started: list[Payment] = []

    async def book(session: AsyncSession) -> BookingRead:
        booking, payment = await orders.book(
            session,
            user=user,
            data=body,
            providers=payments.providers,
            payment_window=payments.payment_window,
            now=now,
        )
        if payment.status == PaymentStatus.PENDING:
            started.append(payment)
        (read,) = await views.booking_reads(session, [booking], viewer_id=user.id, signer=signer)
        return read

    scope = "POST /bookings"
    response = await _once(
        db, user_id=user.id, key=idempotency_key, scope=scope, body=body, now=now, work=book
    )
    if not started:
        return response
    # A remote provider is asked only once the booking and its payment are committed, so
    # that a crash in between leaves a pending payment for reconciliation to find.
    try:
        await payments_service.start(db, payments, started[0], now=now)
    except PaymentProviderUnavailable as exc:
        await _remember_problem(db, user=user, key=idempotency_key, scope=scope, error=exc)
        raise
    async with db.read_transaction() as session:
        booking = await orders.get_booking(session, booking_id=started[0].booking_id, viewer=user)
        (read,) = await views.booking_reads(session, [booking], viewer_id=user.id, signer=signer)
    content = read.model_dump(mode="json")
    if idempotency_key is not None:  # a retry gets this answer, instructions included
        async with db.transaction() as session:
            await idempotency.remember(
                session,
                user_id=user.id,
                key=idempotency_key,
                scope=scope,
                status_code=201,
                body=content,
            )
    return JSONResponse(content, status_code=201)


async def _remember_problem(
    db: Database, *, user: User, key: str | None, scope: str, error: DomainError
) -> None:
    """A retry with the same Idempotency-Key gets the same problem, naming the booking."""
    if key is None:
        return
    body = problem_body(error.status, error.code, error.title, error.detail, error.extra)
    async with db.transaction() as session:
        await idempotency.remember(
            session, user_id=user.id, key=key, scope=scope, status_code=error.status, body=body
        )


@router.post(
    "/bookings/{booking_id}/payments",
    status_code=201,
    response_model=PaymentRead,
    responses=problems(401, 404, 409, 503),
)
async def retry_payment(
    booking_id: uuid.UUID,
    body: PaymentChoice,
    user: CurrentUser,
    db: DbDep,
    payments: PaymentsDep,
    now: Clock,
) -> PaymentRead:
    """Another attempt for a booking whose last attempt failed (new phone or method)."""
    async with db.transaction() as session:
        payment = await payments_service.add_retry(
            session, payments, booking_id=booking_id, user=user, choice=body, now=now
        )
    await payments_service.start(db, payments, payment, now=now)
    async with db.read_transaction() as session:
        payment = await payments_service.get_payment(session, payment_id=payment.id, viewer=user)
        (read,) = await payment_views.payment_reads(session, [payment], viewer=user)
    return read


@router.get("/bookings", responses=problems(401))
async def list_bookings(
    user: CurrentUser, session: ReadSessionDep, page: PageDep, signer: SignerDep
) -> Page[BookingRead]:
    bookings, total = await orders.list_bookings(
        session, user=user, offset=page.offset, limit=page.limit
    )
    items = await views.booking_reads(session, bookings, viewer_id=user.id, signer=signer)
    return Page(items=items, page=page.page, limit=page.limit, total=total)


@router.get("/bookings/{booking_id}", responses=READ)
async def read_booking(
    booking_id: uuid.UUID, user: CurrentUser, session: ReadSessionDep, signer: SignerDep
) -> BookingRead:
    booking = await orders.get_booking(session, booking_id=booking_id, viewer=user)
    (read,) = await views.booking_reads(session, [booking], viewer_id=user.id, signer=signer)
    return read


@router.post("/bookings/{booking_id}/cancel", responses=WRITE)
async def cancel_booking(
    booking_id: uuid.UUID, user: CurrentUser, session: SessionDep, signer: SignerDep, now: Clock
) -> BookingRead:
    booking = await orders.cancel_booking(session, booking_id=booking_id, user=user, now=now)
    (read,) = await views.booking_reads(session, [booking], viewer_id=user.id, signer=signer)
    return read


@router.get("/tickets", responses=problems(401))
async def list_tickets(
    user: CurrentUser,
    session: ReadSessionDep,
    page: PageDep,
    signer: SignerDep,
    event_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[TicketStatus | None, Query()] = None,
) -> Page[TicketRead]:
    owned, total = await tickets.list_owned(
        session,
        user_id=user.id,
        event_id=event_id,
        status=status,
        offset=page.offset,
        limit=page.limit,
    )
    items = await views.ticket_reads(session, owned, viewer_id=user.id, signer=signer)
    return Page(items=items, page=page.page, limit=page.limit, total=total)


@router.get("/tickets/{ticket_id}", responses=READ)
async def read_ticket(
    ticket_id: uuid.UUID, user: CurrentUser, session: ReadSessionDep, signer: SignerDep
) -> TicketRead:
    ticket = await tickets.get_visible(
        session, ticket_id=ticket_id, viewer_id=user.id, is_admin=user.role == Role.ADMIN
    )
    if ticket is None:
        raise TicketNotFound()
    (read,) = await views.ticket_reads(session, [ticket], viewer_id=user.id, signer=signer)
    return read


@router.get(
    "/tickets/{ticket_id}/pdf",
    response_class=Response,
    responses={**problems(401, 404, 409), 200: {"content": {"application/pdf": {}}}},
)
async def ticket_pdf(
    ticket_id: uuid.UUID, user: CurrentUser, session: ReadSessionDep, signer: SignerDep
) -> Response:
    """The owner's ticket to print or show at the door: QR code, event, tier, holder, number."""
    sheet = await tickets.sheet(session, ticket_id=ticket_id, owner_id=user.id, signer=signer)
    return Response(
        pdf.render(sheet),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{sheet.number}.pdf"'},
    )


@router.delete("/tickets/{ticket_id}", status_code=204, responses=WRITE)
async def cancel_ticket(
    ticket_id: uuid.UUID, user: CurrentUser, session: SessionDep, now: Clock
) -> Response:
    await orders.cancel_ticket(session, ticket_id=ticket_id, user=user, now=now)
    return Response(status_code=204)
