"""Organizer actions on an event's sales: the bookings list, the attendee CSV, cancelling
the event, and the delete rule once tickets exist."""

import csv
import io

from httpx import AsyncClient
from sqlalchemy import select

from boxoffice.accounts.models import Role
from boxoffice.db import Database
from boxoffice.inventory import audit
from boxoffice.inventory import service as inventory
from boxoffice.worker.models import Job
from tests.factories import auth_headers, create_user
from tests.orders.helpers import API, free_event, hold


async def _sold(client: AsyncClient, db: Database, quantity: int = 2, **event_overrides):
    event, tiers = await free_event(db, **event_overrides)
    fan = await create_user(db, name="=cmd|' /C calc'!A0")
    headers = await auth_headers(client, fan)
    held = await hold(client, headers, event.id, {tiers[0]: quantity})
    booked = await client.post(f"{API}/bookings", json={"hold_id": held["id"]}, headers=headers)
    assert booked.status_code == 201, booked.text
    return event, tiers, headers, booked.json()


async def _organizer_headers(client: AsyncClient, db: Database, event) -> dict[str, str]:
    from boxoffice.accounts.models import User

    async with db.read_transaction() as session:
        organizer = await session.get_one(User, event.organizer_id)
    return await auth_headers(client, organizer)


async def test_organizer_lists_bookings_and_exports_attendees(
    client: AsyncClient, db: Database
) -> None:
    event, _, fan_headers, booking = await _sold(client, db)
    organizer = await _organizer_headers(client, db, event)

    page = await client.get(f"{API}/admin/events/{event.id}/bookings", headers=organizer)
    assert page.status_code == 200, page.text
    assert page.json()["total"] == 1
    (read,) = page.json()["items"]
    assert read["id"] == booking["id"]
    assert all(ticket["code"] is None for ticket in read["tickets"])  # codes: owner only

    exported = await client.get(
        f"{API}/admin/events/{event.id}/bookings?format=csv", headers=organizer
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 2
    assert rows[0]["holder_name"].startswith("'=")  # no formula reaches a spreadsheet

    other = await auth_headers(client, await create_user(db, role=Role.ORGANIZER))
    hidden = await client.get(f"{API}/admin/events/{event.id}/bookings", headers=other)
    assert hidden.status_code == 404
    fan = await client.get(f"{API}/admin/events/{event.id}/bookings", headers=fan_headers)
    assert fan.status_code == 403
    bad = await client.get(f"{API}/admin/events/{event.id}/bookings?format=xml", headers=organizer)
    assert bad.status_code == 422


async def test_cancelling_the_event_cancels_bookings_and_releases_holds(
    client: AsyncClient, db: Database
) -> None:
    event, tiers, fan_headers, booking = await _sold(client, db)
    live = await hold(client, fan_headers, event.id, {tiers[1]: 1})
    organizer = await _organizer_headers(client, db, event)

    cancelled = await client.post(f"{API}/admin/events/{event.id}/cancel", headers=organizer)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    again = await client.post(f"{API}/admin/events/{event.id}/cancel", headers=organizer)
    assert again.status_code == 200

    read = await client.get(f"{API}/bookings/{booking['id']}", headers=fan_headers)
    assert read.json()["status"] == "cancelled"
    assert {ticket["status"] for ticket in read.json()["tickets"]} == {"cancelled"}
    released = await client.get(f"{API}/holds/{live['id']}", headers=fan_headers)
    assert released.json()["status"] == "released"
    assert (await client.get(f"{API}/events/{event.id}")).status_code == 404
    async with db.read_transaction() as session:
        stock = await inventory.stock_by_tier(session, tiers)
        assert all(s.sold == 0 and s.held == 0 for s in stock.values())
        assert await audit.check(session) == []
        kinds = set(await session.scalars(select(Job.kind)))
    assert "orders.event_cancelled" in kinds


async def test_an_event_that_sold_tickets_cannot_be_deleted(
    client: AsyncClient, db: Database
) -> None:
    event, tiers, fan_headers, booking = await _sold(client, db)
    organizer = await _organizer_headers(client, db, event)
    cancel = await client.post(f"{API}/bookings/{booking['id']}/cancel", headers=fan_headers)
    assert cancel.status_code == 200
    # Nothing is sold or held any more, but tickets were issued: that is a sale.
    deleted = await client.delete(f"{API}/admin/events/{event.id}", headers=organizer)
    assert deleted.status_code == 409
    assert deleted.json()["code"] == "event_has_sales"
    tier = await client.delete(
        f"{API}/admin/events/{event.id}/ticket-types/{tiers[0]}", headers=organizer
    )
    assert tier.status_code == 409
    assert tier.json()["code"] == "ticket_type_has_sales"


async def test_an_event_with_only_expired_holds_can_be_deleted(
    client: AsyncClient, db: Database
) -> None:
    event, tiers = await free_event(db)
    headers = await auth_headers(client, await create_user(db))
    held = await hold(client, headers, event.id, {tiers[0]: 1})
    assert (await client.delete(f"{API}/holds/{held['id']}", headers=headers)).status_code == 204
    organizer = await _organizer_headers(client, db, event)
    deleted = await client.delete(f"{API}/admin/events/{event.id}", headers=organizer)
    assert deleted.status_code == 204, deleted.text


async def test_check_in_once_and_refuse_forgeries(client: AsyncClient, db: Database) -> None:
    event, _, fan_headers, booking = await _sold(client, db)
    organizer = await _organizer_headers(client, db, event)
    first, second = booking["tickets"]
    url = f"{API}/admin/checkin"

    scanned = await client.post(
        url, json={"code": first["code"], "event_id": str(event.id)}, headers=organizer
    )
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["status"] == "used"
    assert scanned.json()["holder_name"] == first["holder_name"]
    assert scanned.json()["code"] is None  # the scanner does not get the code back

    again = await client.post(
        url, json={"code": first["code"], "event_id": str(event.id)}, headers=organizer
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_checked_in"
    assert again.json()["checked_in_at"]

    payload, _, signature = second["code"].partition(".")
    forged = f"{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    for code in (forged, "not-a-code", "x" * 500, "'; DROP TABLE tickets; --"):
        refused = await client.post(
            url, json={"code": code, "event_id": str(event.id)}, headers=organizer
        )
        assert refused.status_code == 404, code
        assert refused.json()["code"] == "invalid_ticket"

    other_event, _ = await free_event(db)
    elsewhere = await client.post(
        url, json={"code": second["code"], "event_id": str(other_event.id)}, headers=organizer
    )
    assert elsewhere.status_code == 404  # not this organizer's event

    cancel = await client.delete(f"{API}/tickets/{second['id']}", headers=fan_headers)
    assert cancel.status_code == 204
    cancelled = await client.post(
        url, json={"code": second["code"], "event_id": str(event.id)}, headers=organizer
    )
    assert cancelled.status_code == 409
    assert cancelled.json()["code"] == "ticket_cancelled"

    fan = await client.post(
        url, json={"code": first["code"], "event_id": str(event.id)}, headers=fan_headers
    )
    assert fan.status_code == 403
    empty = await client.post(url, json={"event_id": str(event.id)}, headers=organizer)
    assert empty.status_code == 422
