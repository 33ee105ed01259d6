"""Paying for a booking with MoMo and M-Pesa, end to end over real HTTP against the
simulators: callbacks, failures and retries, reconciliation, forged and duplicate
callbacks, providers down, late money and refunds."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import Role, User
from boxoffice.catalog.models import Event
from boxoffice.db import utcnow
from boxoffice.orders import service as orders
from boxoffice.orders.schemas import BookingCreate
from boxoffice.payments import service as payments_service
from boxoffice.payments.models import Refund
from boxoffice.simulators.base import Fault
from boxoffice.tickets.models import Ticket
from tests.concurrency.helpers import drifts
from tests.factories import create_user
from tests.orders.helpers import API, stock
from tests.payments.conftest import MOMO_OK, MPESA_OK, Site

PROVIDERS = [("momo", "UGX", MOMO_OK), ("mpesa", "KES", MPESA_OK)]
IDS = ["momo", "mpesa"]

MOMO_FAILURES = {
    "+46733123450": "failed",
    "+46733123451": "rejected",
    "+46733123452": "expired",
    "+46733123455": "payer_not_found",
    "+46733123456": "merchant_error",
    "+46733123457": "merchant_error",
    "+46733123461": "provider_error",
    "+46733123463": "expired",
}
MPESA_FAILURES = {
    "+254708370001": "insufficient_funds",
    "+254708371032": "rejected",
    "+254708371037": "expired",
    "+254708372001": "wrong_pin",
    "+254708371019": "expired",
}
FAILURES = [("momo", "UGX", phone, reason) for phone, reason in MOMO_FAILURES.items()] + [
    ("mpesa", "KES", phone, reason) for phone, reason in MPESA_FAILURES.items()
]


async def count(site: Site, model, **where) -> int:
    async with site.db.read_transaction() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


# The happy path


@pytest.mark.parametrize(("method", "currency", "phone"), PROVIDERS, ids=IDS)
async def test_a_paid_booking_is_confirmed_by_the_callback(
    site: Site, method: str, currency: str, phone: str
) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier(currency)

    booking = await site.book(fan, event_id, tier, method=method, phone=phone)

    assert booking["status"] == "pending_payment"
    assert booking["payment"]["status"] == "pending"
    assert booking["payment"]["provider"] == method
    assert "phone" in booking["payment"]["instructions"].lower()
    assert phone[-3:] in booking["payment"]["instructions"]
    assert phone not in booking["payment"]["instructions"]
    done = await site.settled(fan, booking["id"])
    assert done["status"] == "confirmed", done
    assert done["payment"]["status"] == "successful"
    assert len(done["tickets"]) == 2
    assert all(ticket["code"] for ticket in done["tickets"])
    (payment,) = (await site.client.get(f"{API}/payments", headers=fan)).json()["items"]
    assert payment["provider_transaction_id"]
    assert payment["payer_phone"] == "*" * (len(phone) - 3) + phone[-3:]
    assert (await stock(site.db, tier)).sold == 2
    assert await drifts(site.db) == []


# Failures and retries


@pytest.mark.parametrize(("method", "currency", "phone", "reason"), FAILURES)
async def test_a_failed_attempt_keeps_the_seats_and_a_retry_confirms(
    site: Site, method: str, currency: str, phone: str, reason: str
) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier(currency)
    good = MOMO_OK if method == "momo" else MPESA_OK

    booking = await site.book(fan, event_id, tier, method=method, phone=phone)
    failed = await site.settled(fan, booking["id"])

    assert failed["status"] == "pending_payment"
    assert failed["payment"]["status"] == "failed"
    assert failed["payment"]["failure_reason"] == reason
    assert (await stock(site.db, tier)).held == 2
    retry = await site.pay_again(fan, booking["id"], method=method, phone=good)
    assert retry.status_code == 201, retry.text
    assert retry.json()["status"] == "pending"
    done = await site.settled(fan, booking["id"])
    assert done["status"] == "confirmed"
    assert (await stock(site.db, tier)).sold == 2
    assert await drifts(site.db) == []


async def test_a_failed_attempt_then_cancellation_returns_the_seats(site: Site) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier("UGX")
    booking = await site.book(fan, event_id, tier, method="momo", phone="+46733123451")
    await site.settled(fan, booking["id"])

    cancelled = await site.client.post(f"{API}/bookings/{booking['id']}/cancel", headers=fan)

    assert cancelled.json()["status"] == "cancelled"
    assert (await stock(site.db, tier)).held == 0
    assert await count(site, Refund) == 0  # nothing was paid


async def test_a_failed_attempt_then_expiry_returns_the_seats(site: Site) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier("KES")
    booking = await site.book(fan, event_id, tier, method="mpesa", phone="+254708371032")
    await site.settled(fan, booking["id"])

    async with site.db.transaction() as session:
        await orders.expire_overdue(session, now=utcnow() + timedelta(hours=1))

    assert (await site.booking(fan, booking["id"]))["status"] == "expired"
    assert (await stock(site.db, tier)).held == 0


async def test_a_retry_while_an_attempt_is_pending_is_refused(site: Site) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier("UGX")
    site.switch("momo", delay=30)
    booking = await site.book(fan, event_id, tier, method="momo", phone=MOMO_OK)

    retry = await site.pay_again(fan, booking["id"], method="momo", phone=MOMO_OK)

    assert retry.status_code == 409
    assert retry.json()["code"] == "payment_in_progress"


async def test_paying_for_a_confirmed_booking_is_refused(site: Site) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier("UGX")
    booking = await site.book(fan, event_id, tier, method="momo", phone=MOMO_OK)
    await site.settled(fan, booking["id"])

    retry = await site.pay_again(fan, booking["id"], method="momo", phone=MOMO_OK)

    assert retry.status_code == 409
    assert retry.json()["code"] == "booking_not_payable"


async def test_retrying_someone_elses_booking_is_404(site: Site) -> None:
    fan, other = await site.fans(2)
    event_id, tier = await site.tier("UGX")
    booking = await site.book(fan, event_id, tier, method="momo", phone="+46733123451")
    await site.settled(fan, booking["id"])

    for path in (f"/bookings/{booking['id']}/payments", f"/bookings/{uuid.uuid4()}/payments"):
        retry = await site.client.post(
            f"{API}{path}", json={"method": "momo", "phone": MOMO_OK}, headers=other
        )
        assert retry.status_code == 404, retry.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"method": "momo"},
        {"method": "bitcoin", "phone": MOMO_OK},
        {"method": "momo", "phone": "not a phone"},
        {"method": "momo", "phone": MOMO_OK, "extra": 1},
        {"method": "momo", "phone": "'; DROP TABLE payments; --"},
    ],
)
async def test_a_retry_with_bad_input_is_422(site: Site, body: dict) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier("UGX")
    booking = await site.book(fan, event_id, tier, method="momo", phone="+46733123451")

    retry = await site.client.post(
        f"{API}/bookings/{booking['id']}/payments", json=body, headers=fan
    )

    assert retry.status_code == 422, retry.text


async def test_mpesa_refuses_amounts_with_cents_before_calling_daraja(site: Site) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier("KES", price=150_050)  # KES 1,500.50
    before = len(site.simulator("mpesa").requests)

    refused = await site.book(
        fan, event_id, tier, method="mpesa", phone=MPESA_OK, quantity=1, expect=422
    )

    assert refused["code"] == "unsupported_payment_method"
    assert len(site.simulator("mpesa").requests) == before


@pytest.mark.parametrize(
    ("currency", "phone"), [("UGX", MPESA_OK), ("KES", "+256772123456")], ids=["currency", "phone"]
)
async def test_mpesa_takes_kenyan_shillings_from_kenyan_phones_only(
    site: Site, currency: str, phone: str
) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier(currency)

    refused = await site.book(fan, event_id, tier, method="mpesa", phone=phone, expect=422)

    assert refused["code"] == "unsupported_payment_method"


# Lost, duplicate and forged callbacks


@pytest.mark.parametrize(("method", "currency", "phone"), PROVIDERS, ids=IDS)
async def test_without_a_callback_reconciliation_confirms(
    site: Site, method: str, currency: str, phone: str
) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier(currency)
    site.switch(method, callback_mode="none")
    booking = await site.book(fan, event_id, tier, method=method, phone=phone)
    await site.simulator(method).drain()
    assert (await site.booking(fan, booking["id"]))["status"] == "pending_payment"

    assert await site.reconcile() == 1

    done = await site.booking(fan, booking["id"])
    assert done["status"] == "confirmed"
    assert len(done["tickets"]) == 2


@pytest.mark.parametrize(("method", "currency", "phone"), PROVIDERS, ids=IDS)
async def test_duplicate_callbacks_confirm_once(
    site: Site, method: str, currency: str, phone: str
) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier(currency)
    site.switch(method, callback_mode="duplicate", duplicates=3, callback_delay=0.2)

    booking = await site.book(fan, event_id, tier, method=method, phone=phone)
    await site.settled(fan, booking["id"])
    await site.simulator(method).drain()
    await site.reconcile()  # and the poller too, after the callbacks

    assert len(site.simulator(method).callbacks) >= 3
    assert (await site.booking(fan, booking["id"]))["status"] == "confirmed"
    assert await count(site, Ticket) == 2
    assert await count(site, Refund) == 0
    assert await drifts(site.db) == []


async def test_a_callback_with_an_unknown_token_is_404(site: Site) -> None:
    for token in ("0" * 48, "x", "a" * 200, "../../etc/passwd"):
        response = await site.client.post(
            f"{API}/payments/callbacks/{token}", json={"status": "SUCCESSFUL"}
        )
        assert response.status_code == 404, (token, response.text)


async def test_a_forged_success_is_not_believed_while_the_provider_says_pending(
    site: Site,
) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier("UGX")
    site.switch("momo", delay=60, callback_mode="none")
    booking = await site.book(fan, event_id, tier, method="momo", phone=MOMO_OK)
    payment_id = uuid.UUID(booking["payment"]["id"])
    url = site.app.state.payments.providers.callback_url("payment", payment_id)
    forged = {
        "amount": "50000",
        "currency": "UGX",
        "status": "SUCCESSFUL",
        "financialTransactionId": "123",
    }

    for method in ("POST", "PUT"):
        response = await site.client.request(method, url, json=forged)
        assert response.status_code == 200
    for junk in (b"not json", b"[]", b'{"Body": 7}', b""):
        response = await site.client.post(url, content=junk)
        assert response.status_code == 200

    assert (await site.booking(fan, booking["id"]))["payment"]["status"] == "pending"
    assert await count(site, Ticket) == 0


# Providers down


@pytest.mark.parametrize(("method", "currency", "phone"), PROVIDERS, ids=IDS)
async def test_a_provider_down_at_start_is_a_clear_503_and_the_hold_is_kept(
    site: Site, method: str, currency: str, phone: str
) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier(currency)
    site.switch(method, faults=[Fault.UNAVAILABLE] * 5)

    problem = await site.book(fan, event_id, tier, method=method, phone=phone, expect=503)

    assert problem["code"] == "payment_provider_unavailable"
    booking = await site.booking(fan, problem["booking_id"])
    assert booking["status"] == "pending_payment"
    assert (await stock(site.db, tier)).held == 2
    site.switch(method, faults=[])
    retry = await site.pay_again(fan, booking["id"], method=method, phone=phone)
    assert retry.status_code == 201, retry.text
    assert (await site.settled(fan, booking["id"]))["status"] == "confirmed"


async def test_a_crash_between_the_money_and_the_confirmation_is_mended_by_the_next_run(
    site: Site,
) -> None:
    """The payer approved, the callback was lost, and the worker died mid-reconciliation:
    the next reconciliation confirms."""
    (fan,) = await site.fans()
    event_id, tier = await site.tier("UGX")
    site.switch("momo", callback_mode="none")
    booking = await site.book(fan, event_id, tier, method="momo", phone=MOMO_OK)
    await site.simulator("momo").drain()

    async def die(*args, **kwargs):
        raise SystemExit("killed")

    original = payments_service._record
    payments_service._record = die
    try:
        with pytest.raises(SystemExit):
            await site.reconcile()
    finally:
        payments_service._record = original
    assert (await site.booking(fan, booking["id"]))["status"] == "pending_payment"

    await site.reconcile()

    assert (await site.booking(fan, booking["id"]))["status"] == "confirmed"


# Refunds and late money


@pytest.mark.parametrize(("method", "currency", "phone"), PROVIDERS, ids=IDS)
async def test_cancelling_a_paid_booking_refunds_through_the_provider(
    site: Site, method: str, currency: str, phone: str
) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier(currency)
    booking = await site.book(fan, event_id, tier, method=method, phone=phone)
    await site.settled(fan, booking["id"])

    cancelled = await site.client.post(f"{API}/bookings/{booking['id']}/cancel", headers=fan)
    assert cancelled.status_code == 200, cancelled.text
    await site.settle_refunds()

    payment = (
        await site.client.get(f"{API}/payments/{booking['payment']['id']}", headers=fan)
    ).json()
    assert payment["status"] == "refunded", payment
    (refund,) = payment["refunds"]
    assert refund["status"] == "successful"
    assert refund["reason"] == "cancelled"
    assert refund["amount"]["amount"] == 2 * (150_000 if currency == "KES" else 50_000)
    assert (await stock(site.db, tier)).sold == 0


async def test_late_money_after_the_seats_are_gone_is_refunded(site: Site) -> None:
    late, rival = await site.fans(2)
    event_id, tier = await site.tier("UGX", capacity=2)
    site.switch("momo", delay=60, callback_mode="none")
    booking = await site.book(late, event_id, tier, method="momo", phone=MOMO_OK)

    async with site.db.transaction() as session:  # the hold runs out; a rival buys the seats
        await orders.expire_overdue(session, now=utcnow() + timedelta(hours=1))
    site.switch("momo", delay=0.1, callback_mode="once")
    rivals = await site.book(rival, event_id, tier, method="momo", phone="+256772000111")
    await site.settled(rival, rivals["id"])

    site.simulator("momo").advance(120)
    await site.simulator("momo").settle()
    await site.reconcile()

    failed = await site.booking(late, booking["id"])
    assert failed["status"] == "failed"
    assert failed["failure_reason"] == "seats_gone"
    await site.settle_refunds()
    payment = (
        await site.client.get(f"{API}/payments/{booking['payment']['id']}", headers=late)
    ).json()
    assert payment["status"] == "refunded"
    assert payment["refunds"][0]["reason"] == "seats_gone"
    assert (await stock(site.db, tier)).sold == 2
    assert await drifts(site.db) == []


# Reading payments


async def test_payments_are_the_owners_and_admins_see_the_whole_phone(site: Site) -> None:
    fan, other = await site.fans(2)
    event_id, tier = await site.tier("UGX")
    booking = await site.book(fan, event_id, tier, method="momo", phone="+46733123451")
    await site.settled(fan, booking["id"])
    await site.pay_again(fan, booking["id"], method="momo", phone=MOMO_OK)

    mine = (await site.client.get(f"{API}/payments?limit=1", headers=fan)).json()
    assert mine["total"] == 2
    assert len(mine["items"]) == 1
    assert mine["items"][0]["payer_phone"].endswith("456")
    assert "*" in mine["items"][0]["payer_phone"]
    payment_id = booking["payment"]["id"]
    assert (await site.client.get(f"{API}/payments/{payment_id}", headers=other)).status_code == 404
    assert (await site.client.get(f"{API}/payments", headers=other)).json()["total"] == 0
    assert (await site.client.get(f"{API}/payments/{payment_id}")).status_code == 401
    assert (await site.client.get(f"{API}/payments/not-a-uuid", headers=fan)).status_code == 422
    assert (await site.client.get(f"{API}/payments?limit=0", headers=fan)).status_code == 422

    admin = await create_user(site.db, role=Role.ADMIN)
    async with site.db.transaction() as session:
        pair = await accounts.open_session(
            session, settings=site.settings, user=admin, now=utcnow()
        )
    seen = await site.client.get(
        f"{API}/payments/{payment_id}", headers={"Authorization": f"Bearer {pair.access_token}"}
    )
    assert seen.json()["payer_phone"] == "+46733123451"


async def test_an_attempt_the_provider_never_received_is_failed_by_reconciliation(
    site: Site,
) -> None:
    """A crash after the attempt was committed and before MoMo was asked: MoMo does not
    know the reference, so the attempt fails and the fan may pay again."""
    (fan,) = await site.fans()
    event_id, tier = await site.tier("UGX")
    held = await site.client.post(
        f"{API}/holds",
        json={"event_id": str(event_id), "items": [{"ticket_type_id": str(tier), "quantity": 1}]},
        headers=fan,
    )
    user = await _user_of(site, fan)
    async with site.db.transaction() as session:  # book() commits; start() never runs
        booking, _ = await orders.book(
            session,
            user=user,
            data=BookingCreate(
                hold_id=held.json()["id"], payment={"method": "momo", "phone": MOMO_OK}
            ),
            providers=site.app.state.payments.providers,
            payment_window=site.app.state.payments.payment_window,
            now=utcnow(),
        )

    await site.reconcile()

    after = await site.booking(fan, str(booking.id))
    assert after["status"] == "pending_payment"
    assert after["payment"]["status"] == "failed"
    assert after["payment"]["failure_reason"] == "not_received"


async def test_an_attempt_still_pending_after_the_payment_window_is_failed(site: Site) -> None:
    (fan,) = await site.fans()
    event_id, tier = await site.tier("UGX")
    booking = await site.book(fan, event_id, tier, method="momo", phone="+46733123499")

    await site.reconcile(later=timedelta(minutes=1))
    assert (await site.booking(fan, booking["id"]))["payment"]["status"] == "pending"
    await site.reconcile(later=site.app.state.payments.payment_window)

    after = await site.booking(fan, booking["id"])
    assert after["payment"]["status"] == "failed"
    assert after["payment"]["failure_reason"] == "expired"
    async with site.db.transaction() as session:  # and the hold's expiry returns the seats
        await orders.expire_overdue(session, now=utcnow() + timedelta(hours=1))
    assert (await site.booking(fan, booking["id"]))["status"] == "expired"
    assert (await stock(site.db, tier)).held == 0


async def _user_of(site: Site, headers: dict[str, str]) -> User:
    me = (await site.client.get(f"{API}/users", headers=headers)).json()
    async with site.db.read_transaction() as session:
        return await session.get_one(User, uuid.UUID(me["id"]))


@pytest.mark.parametrize(("method", "currency", "phone"), PROVIDERS, ids=IDS)
async def test_calling_the_event_off_refunds_every_payment_through_the_provider(
    site: Site, method: str, currency: str, phone: str
) -> None:
    fan, late = await site.fans(2)
    event_id, tier = await site.tier(currency)
    paid = await site.book(fan, event_id, tier, method=method, phone=phone)
    await site.settled(fan, paid["id"])
    site.switch(method, delay=60)  # this one is still waiting for the payer
    pending = await site.book(late, event_id, tier, method=method, phone=phone[:-4] + "5678")
    site.switch(method, delay=0.1)  # refunds answer quickly again

    async with site.db.transaction() as session:
        event = await session.get_one(Event, event_id)
        organizer = await session.get_one(User, event.organizer_id)
        await orders.cancel_event(session, event_id=event_id, manager=organizer, now=utcnow())
    await site.settle_refunds()

    assert (await site.booking(fan, paid["id"]))["status"] == "cancelled"
    assert (await site.booking(late, pending["id"]))["status"] == "cancelled"
    refunded = (
        await site.client.get(f"{API}/payments/{paid['payment']['id']}", headers=fan)
    ).json()
    assert refunded["status"] == "refunded", refunded
    assert [r["status"] for r in refunded["refunds"]] == ["successful"]
    assert (await stock(site.db, tier)).sold == (await stock(site.db, tier)).held == 0
