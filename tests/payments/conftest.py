"""A whole site over real HTTP with both simulators mounted, on the test database: the
payment flow end to end, as a fan's phone and the providers would drive it."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from boxoffice.app import create_app
from boxoffice.config import Settings
from boxoffice.db import Database, utcnow
from boxoffice.payments import service as payments_service
from boxoffice.payments.models import Refund, RefundStatus
from boxoffice.simulators.base import ControlChange, Simulator
from boxoffice.worker.runner import Worker
from tests.concurrency.helpers import signed_in_fans, signing_settings
from tests.orders.helpers import API, free_event
from tests.payments.live import free_port, serving

PRICE = {"UGX": 50_000, "KES": 150_000}  # minor units: UGX 50,000; KES 1,500.00
MOMO_OK, MPESA_OK = "+256772123456", "+254708374149"


@dataclass
class Site:
    app: FastAPI
    client: httpx.AsyncClient
    db: Database
    settings: Settings

    def simulator(self, provider: str) -> Simulator:
        return self.app.state.simulators[provider]

    def switch(self, provider: str, **change: Any) -> None:
        self.simulator(provider).configure(ControlChange(**change))

    async def fans(self, count: int = 1) -> list[dict[str, str]]:
        return await signed_in_fans(self.db, self.settings, count)

    async def tier(
        self, currency: str, *, capacity: int = 20, price: int | None = None
    ) -> tuple[uuid.UUID, uuid.UUID]:
        event, (tier,) = await free_event(
            self.db,
            currency=currency,
            ticket_types=[
                {
                    "name": "GA",
                    "price": PRICE[currency] if price is None else price,
                    "capacity": capacity,
                    "max_per_order": 10,
                }
            ],
        )
        return event.id, tier

    async def book(
        self,
        fan: dict[str, str],
        event_id: uuid.UUID,
        tier: uuid.UUID,
        *,
        method: str,
        phone: str,
        quantity: int = 2,
        expect: int = 201,
    ) -> dict[str, Any]:
        held = await self.client.post(
            f"{API}/holds",
            json={
                "event_id": str(event_id),
                "items": [{"ticket_type_id": str(tier), "quantity": quantity}],
            },
            headers=fan,
        )
        assert held.status_code == 201, held.text
        booked = await self.client.post(
            f"{API}/bookings",
            json={"hold_id": held.json()["id"], "payment": {"method": method, "phone": phone}},
            headers=fan,
        )
        assert booked.status_code == expect, booked.text
        return booked.json()

    async def pay_again(
        self, fan: dict[str, str], booking_id: str, *, method: str, phone: str
    ) -> httpx.Response:
        """POST /bookings/{id}/payments: another attempt after a failed one."""
        return await self.client.post(
            f"{API}/bookings/{booking_id}/payments",
            json={"method": method, "phone": phone},
            headers=fan,
        )

    async def booking(self, fan: dict[str, str], booking_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{API}/bookings/{booking_id}", headers=fan)
        assert response.status_code == 200, response.text
        return response.json()

    async def settled(
        self, fan: dict[str, str], booking_id: str, *, within: float = 10
    ) -> dict[str, Any]:
        """The booking once its latest attempt is no longer pending (callbacks arrive on
        their own; nothing here polls the provider). A successful payment read beside a
        booking still pending_payment is a read that straddled the confirmation's commit
        (each statement of a READ COMMITTED read has its own snapshot): read again."""

        def settled(booking: dict[str, Any]) -> bool:
            payment = booking["payment"]["status"]
            straddled = payment == "successful" and booking["status"] == "pending_payment"
            return payment != "pending" and not straddled

        return await eventually(lambda: self.booking(fan, booking_id), settled, within=within)

    async def reconcile(self, *, later: timedelta = timedelta(minutes=1)) -> int:
        """The reconciliation job, as if `later` had passed since the last news."""
        return await payments_service.reconcile(
            self.db, self.app.state.payments, now=utcnow() + later
        )

    async def run_jobs(self, *, at: datetime | None = None) -> int:
        """Every due job (refunds, confirmations…), as the worker would run them."""
        worker = Worker(self.db, schedule=(), clock=lambda: at or utcnow())
        ran = 0
        while batch := await worker.run_pending():
            ran += batch
        return ran

    async def settle_refunds(self, *, rounds: int = 8) -> None:
        """Run the refund jobs until no refund waits for its provider (MoMo answers at once
        or by callback; Daraja's reversal and B2C results come by callback only, and each
        retry of the job asks again, since a result may be lost)."""
        for round_ in range(1, rounds + 1):
            await self.run_jobs(at=utcnow() + timedelta(hours=2 * round_))  # past any backoff
            for simulator in self.app.state.simulators.values():
                await simulator.drain()
            async with self.db.read_transaction() as session:
                waiting = await session.scalar(
                    select(func.count()).where(Refund.status == RefundStatus.PENDING)
                )
            if not waiting:
                return


async def eventually(
    read: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], *, within: float = 10
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@pytest.fixture
async def site(database_url: str, tmp_path: Path, committing_db: Database) -> AsyncIterator[Site]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = signing_settings(
        database_url,
        tmp_path,
        public_url=url,
        simulators=True,
        simulator_delay=0.1,
        provider_timeout=2,
        payment_poll_after=5,
    )
    app = create_app(settings, db=committing_db)
    async with serving(app, port=port), httpx.AsyncClient(base_url=url, timeout=15) as client:
        yield Site(app, client, committing_db, settings)
