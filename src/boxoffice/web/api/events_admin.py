"""Organizers manage their own events, admins all of them; another's event is a 404."""

import csv
import io
import uuid
from typing import Annotated, Literal

from fastapi import Query, Response

from boxoffice.catalog import queries
from boxoffice.catalog import service as catalog
from boxoffice.catalog.models import EventStatus
from boxoffice.catalog.schemas import (
    AvailabilityChange,
    CategoryCreate,
    CategoryRead,
    EventCreate,
    EventFields,
    EventManaged,
    EventPatch,
    TicketTypeCreate,
    TicketTypeManaged,
    TicketTypeUpdate,
)
from boxoffice.orders import service as orders
from boxoffice.orders import views
from boxoffice.orders.models import BookingStatus
from boxoffice.orders.schemas import BookingRead, CheckIn, TicketRead
from boxoffice.tickets import service as tickets
from boxoffice.validation import Page
from boxoffice.web.api import api_router
from boxoffice.web.deps import (
    AdminUser,
    Clock,
    OrganizerUser,
    PageDep,
    ReadSessionDep,
    SessionDep,
    SignerDep,
)
from boxoffice.web.errors import problems

router = api_router("organizer")
AUTH = problems(401, 403)


@router.post("/admin/events", status_code=201, responses=AUTH)
async def create_event(
    body: EventCreate, organizer: OrganizerUser, session: SessionDep, now: Clock
) -> EventManaged:
    event = await catalog.create_event(session, organizer=organizer, data=body, now=now)
    return await _managed(session, event, now)


@router.get("/admin/events", responses=AUTH)
async def list_events(
    manager: OrganizerUser,
    session: ReadSessionDep,
    page: PageDep,
    now: Clock,
    status: Annotated[EventStatus | None, Query()] = None,
) -> Page[EventManaged]:
    ids, total = await catalog.list_managed_events(
        session, manager=manager, page=page, status=status
    )
    events = await queries.present(
        session, await queries.events_by_id(session, ids), now=now, managed=True
    )
    return Page(items=events, page=page.page, limit=page.limit, total=total)  # type: ignore[arg-type]


@router.get("/admin/events/{event_id}", responses=problems(401, 403, 404))
async def read_event(
    event_id: uuid.UUID, manager: OrganizerUser, session: ReadSessionDep, now: Clock
) -> EventManaged:
    event = await catalog.get_managed_event(session, event_id=event_id, manager=manager)
    return await _managed(session, event, now)


@router.put("/admin/events/{event_id}", responses=problems(401, 403, 404, 409))
async def replace_event(
    event_id: uuid.UUID, body: EventFields, manager: OrganizerUser, session: SessionDep, now: Clock
) -> EventManaged:
    event = await catalog.replace_event(
        session, event_id=event_id, manager=manager, data=body, now=now
    )
    return await _managed(session, event, now)


@router.patch("/admin/events/{event_id}", responses=problems(401, 403, 404, 409))
async def patch_event(
    event_id: uuid.UUID, body: EventPatch, manager: OrganizerUser, session: SessionDep, now: Clock
) -> EventManaged:
    event = await catalog.patch_event(
        session, event_id=event_id, manager=manager, data=body, now=now
    )
    return await _managed(session, event, now)


@router.patch("/admin/events/{event_id}/availability", responses=problems(401, 403, 404, 409))
async def change_availability(
    event_id: uuid.UUID,
    body: AvailabilityChange,
    manager: OrganizerUser,
    session: SessionDep,
    now: Clock,
) -> EventManaged:
    event = await catalog.change_availability(
        session, event_id=event_id, manager=manager, data=body, now=now
    )
    return await _managed(session, event, now)


@router.delete("/admin/events/{event_id}", status_code=204, responses=problems(401, 403, 404, 409))
async def delete_event(
    event_id: uuid.UUID, manager: OrganizerUser, session: SessionDep, now: Clock
) -> Response:
    await catalog.delete_event(session, event_id=event_id, manager=manager, now=now)
    return Response(status_code=204)


@router.post("/admin/events/{event_id}/cancel", responses=problems(401, 403, 404))
async def cancel_event(
    event_id: uuid.UUID, manager: OrganizerUser, session: SessionDep, now: Clock
) -> EventManaged:
    event = await orders.cancel_event(session, event_id=event_id, manager=manager, now=now)
    return await _managed(session, event, now)


@router.get(
    "/admin/events/{event_id}/bookings",
    responses={
        **problems(401, 403, 404),
        200: {"content": {"text/csv": {}}, "description": "JSON page, or CSV with ?format=csv"},
    },
)
async def event_bookings(
    event_id: uuid.UUID,
    manager: OrganizerUser,
    session: ReadSessionDep,
    page: PageDep,
    signer: SignerDep,
    status: Annotated[BookingStatus | None, Query()] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Page[BookingRead]:
    """The event's bookings; `?format=csv` is the attendee list (one row per ticket)."""
    if format == "csv":
        rows = await orders.attendees(session, event_id=event_id, manager=manager)
        return _csv(rows, filename=f"attendees-{event_id}.csv")  # type: ignore[return-value]
    bookings, total = await orders.event_bookings(
        session,
        event_id=event_id,
        manager=manager,
        status=status,
        offset=page.offset,
        limit=page.limit,
    )
    items = await views.booking_reads(session, bookings, viewer_id=manager.id, signer=signer)
    return Page(items=items, page=page.page, limit=page.limit, total=total)


def _csv(rows, *, filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "ticket_number",
            "holder_name",
            "ticket_type",
            "status",
            "booking",
            "buyer_email",
            "checked_in_at",
        ]
    )
    for ticket, tier_name, reference, email in rows:
        writer.writerow(
            [
                ticket.number,
                _cell(ticket.holder_name),
                _cell(tier_name),
                ticket.status.value,
                reference,
                _cell(email),
                ticket.checked_in_at.isoformat() if ticket.checked_in_at else "",
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: str) -> str:
    """No spreadsheet formulas from user-typed text (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@router.post(
    "/admin/events/{event_id}/ticket-types", status_code=201, responses=problems(401, 403, 404, 409)
)
async def add_ticket_type(
    event_id: uuid.UUID,
    body: TicketTypeCreate,
    manager: OrganizerUser,
    session: SessionDep,
    now: Clock,
) -> TicketTypeManaged:
    tier = await catalog.add_ticket_type(
        session, event_id=event_id, manager=manager, data=body, now=now
    )
    return await _managed_tier(session, event_id, tier.id, now)


@router.patch(
    "/admin/events/{event_id}/ticket-types/{ticket_type_id}", responses=problems(401, 403, 404, 409)
)
async def update_ticket_type(
    event_id: uuid.UUID,
    ticket_type_id: uuid.UUID,
    body: TicketTypeUpdate,
    manager: OrganizerUser,
    session: SessionDep,
    now: Clock,
) -> TicketTypeManaged:
    tier = await catalog.update_ticket_type(
        session,
        event_id=event_id,
        ticket_type_id=ticket_type_id,
        manager=manager,
        data=body,
        now=now,
    )
    return await _managed_tier(session, event_id, tier.id, now)


@router.delete(
    "/admin/events/{event_id}/ticket-types/{ticket_type_id}",
    status_code=204,
    responses=problems(401, 403, 404, 409),
)
async def delete_ticket_type(
    event_id: uuid.UUID,
    ticket_type_id: uuid.UUID,
    manager: OrganizerUser,
    session: SessionDep,
    now: Clock,
) -> Response:
    await catalog.delete_ticket_type(
        session, event_id=event_id, ticket_type_id=ticket_type_id, manager=manager, now=now
    )
    return Response(status_code=204)


@router.post("/admin/checkin", responses=problems(401, 403, 404, 409))
async def check_in(
    body: CheckIn, manager: OrganizerUser, session: SessionDep, signer: SignerDep, now: Clock
) -> TicketRead:
    """Scan a ticket at the door: 200 with the ticket and its holder, once."""
    await catalog.get_managed_event(session, event_id=body.event_id, manager=manager)
    ticket = await tickets.check_in(
        session, ticket_id=signer.verify(body.code), event_id=body.event_id, now=now
    )
    (read,) = await views.ticket_reads(session, [ticket], viewer_id=manager.id, signer=signer)
    return read


@router.post("/admin/categories", status_code=201, responses=problems(401, 403, 409))
async def create_category(
    body: CategoryCreate, admin: AdminUser, session: SessionDep, now: Clock
) -> CategoryRead:
    category = await catalog.create_category(session, actor=admin, data=body, now=now)
    return CategoryRead(slug=category.slug, name=category.name)


async def _managed(session, event, now) -> EventManaged:
    (read,) = await queries.present(session, [event], now=now, managed=True)
    return read  # type: ignore[return-value]


async def _managed_tier(session, event_id: uuid.UUID, tier_id: uuid.UUID, now) -> TicketTypeManaged:
    event = await session.get_one(queries.Event, event_id)
    read = await _managed(session, event, now)
    return next(t for t in read.ticket_types if t.id == tier_id)
