"""Fault injection: 200 paid bookings while the simulators lose, duplicate and delay
callbacks at random, some payers fail or are slow, some fans cancel, and holds run out.
Afterwards no money is lost: every booking is either confirmed with exactly one
successful, unrefunded payment, or not confirmed with every successful payment refunded."""

import asyncio
import os
import random
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from boxoffice.db import utcnow
from boxoffice.orders import service as orders
from boxoffice.orders.models import Booking, BookingStatus
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from boxoffice.payments.service import RECONCILE_BATCH
from tests.concurrency.helpers import drifts
from tests.orders.helpers import API
from tests.payments.conftest import Site

BOOKINGS = int(os.environ.get("BOXOFFICE_FAULT_BOOKINGS", "200"))
AT_ONCE = 10
PAID = (PaymentStatus.SUCCESSFUL, PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED)
SEED = 20261121

# What each fan does; the simulator decides, per transaction, what happens to callbacks.
PLANS = ["pay", "pay", "pay", "fail_then_retry", "cancel_when_paid", "cancel_while_pending", "slow"]


def phone(provider: str, fan: int, outcome: str = "ok") -> str:
    """A phone of the fan's own (Daraja refuses a second prompt to a phone with one open)."""
    if provider == "momo":
        return {"ok": f"+2567720{fan:05d}", "fail": "+46733123451", "slow": "+46733123454"}[outcome]
    # Daraja outcomes go by the last four digits: 1032 = cancelled by the payer.
    return {"ok": f"+2547083{3000 + fan:05d}", "fail": f"+2547{fan:04d}1032", "slow": None}[
        outcome
    ] or phone(provider, fan)


async def test_no_money_is_lost_under_callback_loss_duplication_and_delay(site: Site) -> None:
    rng = random.Random(SEED)
    for provider in ("momo", "mpesa"):
        site.switch(provider, callback_mode="random", seed=SEED, callback_delay=0.3, delay=0.1)
    events = {
        "momo": await site.tier("UGX", capacity=BOOKINGS * 2),
        "mpesa": await site.tier("KES", capacity=BOOKINGS * 2),
    }
    fans = await site.fans(BOOKINGS)
    gate = asyncio.Semaphore(AT_ONCE)
    plans = Counter()

    async def buy(index: int, fan: dict[str, str]) -> None:
        provider = rng.choice(["momo", "mpesa"])
        plan = rng.choice(PLANS)
        plans[plan] += 1
        async with gate:
            await _follow(site, fan, index, provider, plan, events[provider])

    await asyncio.gather(*(buy(index, fan) for index, fan in enumerate(fans)))

    # Time passes: holds run out, slow payers approve, the poller and the worker catch up.
    for provider in ("momo", "mpesa"):
        site.simulator(provider).advance(120)
        await site.simulator(provider).settle()
        await site.simulator(provider).drain()
    later = utcnow() + timedelta(hours=1)
    async with site.db.transaction() as session:
        await orders.expire_overdue(session, now=later)
    for _ in range(BOOKINGS // RECONCILE_BATCH + 2):  # each pass settles a batch
        if not await site.reconcile(later=timedelta(hours=1)):
            break
    await site.settle_refunds()

    problems = await _money_problems(site)
    assert problems == [], problems[:5]
    assert await drifts(site.db) == []
    assert sum(plans.values()) == BOOKINGS


async def _follow(
    site: Site, fan: dict[str, str], index: int, provider: str, plan: str, event: tuple
) -> None:
    event_id, tier = event
    outcome = {"fail_then_retry": "fail", "slow": "slow"}.get(plan, "ok")
    booking = await site.book(
        fan, event_id, tier, method=provider, phone=phone(provider, index, outcome), quantity=1
    )
    if plan == "cancel_while_pending":
        await site.client.post(f"{API}/bookings/{booking['id']}/cancel", headers=fan)
        return
    if plan == "slow":
        return  # settles after the rest: late money for an expired hold
    settled = await site.settled(fan, booking["id"], within=3)
    if plan == "fail_then_retry" and settled["payment"]["status"] == "failed":
        await site.pay_again(fan, booking["id"], method=provider, phone=phone(provider, index))
    elif plan == "cancel_when_paid" and settled["status"] == "confirmed":
        await site.client.post(f"{API}/bookings/{booking['id']}/cancel", headers=fan)


async def _money_problems(site: Site) -> list[str]:
    async with site.db.read_transaction() as session:
        bookings = list(await session.scalars(select(Booking)))
        payments = list(await session.scalars(select(Payment)))
        refunds = list(await session.scalars(select(Refund)))
    refunded = Counter()
    tried: dict = {}
    for refund in refunds:
        tried.setdefault(refund.payment_id, []).append(
            f"{refund.reason}/{refund.status.value}/{refund.failure_reason}"
        )
        if refund.status == RefundStatus.SUCCESSFUL:
            refunded[refund.payment_id] += refund.amount_cents
    problems = []
    for booking in bookings:
        mine = [p for p in payments if p.booking_id == booking.id]
        kept = [p for p in mine if p.status == PaymentStatus.SUCCESSFUL and not refunded[p.id]]
        pending = [p for p in mine if p.status == PaymentStatus.PENDING]
        if booking.status == BookingStatus.CONFIRMED:
            ok = len(kept) == 1
        else:
            paid = [p for p in mine if p.status in PAID]
            ok = all(refunded[p.id] >= p.amount_cents for p in paid)
        if not ok or pending:
            attempts = [f"{p.provider} {p.status.value}, refunds {tried.get(p.id)}" for p in mine]
            problems.append(f"{booking.status.value} booking {booking.id}: {attempts}")
    return problems
