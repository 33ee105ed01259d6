"""The MoMo client and provider against the MoMo simulator, over real HTTP."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from boxoffice.config import Settings
from boxoffice.payments import http as provider_http
from boxoffice.payments.errors import (
    ProviderRejected,
    ProviderUnavailable,
    UnsupportedPaymentMethod,
)
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from boxoffice.payments.momo import MomoProvider
from boxoffice.payments.momo import client as momo_client
from boxoffice.simulators.base import CallbackMode, Fault
from boxoffice.simulators.momo import MomoSimulator, create_momo_simulator
from tests.payments.live import Callback, callback_receiver, serving

SETTINGS = Settings(simulator_delay=0.05, provider_timeout=2)
PHONE = "+256772123456"


@dataclass
class Receiver:
    """A stand-in for our callback route: keeps what arrives."""

    url: str
    received: list[Callback] = field(default_factory=list)

    def callback_url(self) -> str:
        return f"{self.url}/callbacks/{uuid.uuid4().hex}"


@dataclass
class Momo:
    sim: MomoSimulator
    provider: MomoProvider
    url: str

    def requests_to(self, path: str) -> int:
        return sum(1 for request in self.sim.requests if request.path == path)

    async def settle(self, seconds: float = 1) -> None:
        self.sim.advance(seconds)
        await self.sim.settle()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver("")
    async with serving(callback_receiver(receiver.received.append)) as url:
        receiver.url = url
        yield receiver


async def _momo(settings: Settings, **provider_options: Any) -> AsyncIterator[Momo]:
    app = create_momo_simulator(settings)
    sim: MomoSimulator = app.state.simulator
    async with serving(app) as url:
        provider = MomoProvider(settings, base_url=url, **provider_options)
        provider.client.http.backoff = 0.01  # retries without the production pause
        try:
            yield Momo(sim, provider, url)
        finally:
            await provider.aclose()
            await sim.stop()


@pytest.fixture
async def momo() -> AsyncIterator[Momo]:
    async for momo in _momo(SETTINGS):
        yield momo


def make_payment(phone: str = PHONE, amount_cents: int = 1050, currency: str = "EUR") -> Payment:
    return Payment(
        id=uuid.uuid4(),
        booking_id=uuid.uuid4(),
        provider="momo",
        amount_cents=amount_cents,
        currency=currency,
        payer_phone=phone,
        status=PaymentStatus.PENDING,
        provider_reference=str(uuid.uuid4()),
    )


def make_refund(payment: Payment, amount_cents: int | None = None) -> Refund:
    return Refund(
        id=uuid.uuid4(),
        payment_id=payment.id,
        amount_cents=payment.amount_cents if amount_cents is None else amount_cents,
        reason="cancelled",
        status=RefundStatus.PENDING,
        provider_reference=str(uuid.uuid4()),
    )


async def test_payment_succeeds_with_a_callback_confirmed_by_status(
    momo: Momo, receiver: Receiver
) -> None:
    payment = make_payment()
    outcome = await momo.provider.start(payment, callback_url=receiver.callback_url())
    assert outcome.status == PaymentStatus.PENDING
    assert outcome.reference == payment.provider_reference
    assert outcome.instructions == "Approve the payment of 10.50 EUR on your phone (+256…456)."

    await momo.sim.drain()
    [(method, body)] = [(c.method, c.body) for c in receiver.received]
    assert (method, body["status"], body["amount"]) == ("POST", "SUCCESSFUL", "10.50")
    assert body["payer"] == {"partyIdType": "MSISDN", "partyId": "256772123456"}

    confirmed = await momo.provider.status(payment, callback=body)
    assert confirmed.status == PaymentStatus.SUCCESSFUL
    assert confirmed.transaction_id == body["financialTransactionId"]


async def test_whole_amounts_are_sent_without_decimals(momo: Momo) -> None:
    for amount_cents, currency, sent in [(1000, "EUR", "10"), (5000, "UGX", "5000")]:
        payment = make_payment(amount_cents=amount_cents, currency=currency)
        await momo.provider.start(payment, callback_url=None)
        assert momo.sim.transactions[payment.provider_reference].details["amount"] == sent


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("46733123450", "failed"),
        ("46733123451", "rejected"),
        ("46733123452", "expired"),
        ("46733123455", "payer_not_found"),
        ("46733123456", "merchant_error"),
        ("46733123457", "merchant_error"),
        ("46733123458", "merchant_error"),
        ("46733123459", "merchant_error"),
        ("46733123460", "merchant_error"),
        ("46733123461", "provider_error"),
        ("46733123462", "provider_unavailable"),
        ("46733123463", "expired"),
    ],
)
async def test_each_failing_number_maps_to_its_failure_reason(
    momo: Momo, number: str, reason: str
) -> None:
    payment = make_payment(phone=f"+{number}")
    await momo.provider.start(payment, callback_url=None)
    await momo.settle()
    outcome = await momo.provider.status(payment)
    assert (outcome.status, outcome.failure_reason) == (PaymentStatus.FAILED, reason)


async def test_reasons_as_objects_map_the_same(momo: Momo) -> None:
    async with httpx.AsyncClient(base_url=momo.url) as control:
        switched = await control.post("/_control/momo", json={"reason_as_object": True})
    assert switched.status_code == 200
    assert momo.sim.reason_as_object
    payment = make_payment(phone="+46733123451")
    await momo.provider.start(payment, callback_url=None)
    await momo.settle()
    body = momo.sim.status_body(momo.sim.transactions[payment.provider_reference])
    assert body["reason"] == {"code": "APPROVAL_REJECTED", "message": "Approval rejected"}
    assert (await momo.provider.status(payment)).failure_reason == "rejected"


async def test_ongoing_payment_succeeds_when_asked_again_30_seconds_later(momo: Momo) -> None:
    payment = make_payment(phone="+46733123453")
    await momo.provider.start(payment, callback_url=None)
    await momo.settle(60)
    assert (await momo.provider.status(payment)).status == PaymentStatus.PENDING
    momo.sim.advance(29)
    assert (await momo.provider.status(payment)).status == PaymentStatus.PENDING
    momo.sim.advance(1)
    assert (await momo.provider.status(payment)).status == PaymentStatus.SUCCESSFUL


async def test_delayed_payment_succeeds_after_30_seconds(momo: Momo) -> None:
    payment = make_payment(phone="+46733123454")
    await momo.provider.start(payment, callback_url=None)
    await momo.settle(29)
    assert (await momo.provider.status(payment)).status == PaymentStatus.PENDING
    await momo.settle(1)
    assert (await momo.provider.status(payment)).status == PaymentStatus.SUCCESSFUL


async def test_the_stuck_number_pends_past_the_window_unless_told_to_fail(momo: Momo) -> None:
    stuck = make_payment(phone="+46733123499")
    await momo.provider.start(stuck, callback_url=None)
    momo.sim.stuck_reason = "EXPIRED"
    expiring = make_payment(phone="+46733123499")
    await momo.provider.start(expiring, callback_url=None)
    await momo.settle(301)
    assert (await momo.provider.status(stuck)).status == PaymentStatus.PENDING
    assert (await momo.provider.status(expiring)).failure_reason == "expired"


async def test_a_payment_momo_never_received_fails_as_not_received(momo: Momo) -> None:
    outcome = await momo.provider.status(make_payment())
    assert (outcome.status, outcome.failure_reason) == (PaymentStatus.FAILED, "not_received")


async def test_the_token_is_fetched_once_for_several_calls(momo: Momo) -> None:
    payments = [make_payment(), make_payment()]
    for payment in payments:
        await momo.provider.start(payment, callback_url=None)
        await momo.provider.status(payment)
    assert momo.requests_to("/collection/token/") == 1


async def test_an_expired_token_is_refreshed_once_and_the_call_retried(momo: Momo) -> None:
    payment = make_payment()
    await momo.provider.start(payment, callback_url=None)
    await momo.settle(3600)  # the simulator's token expires; the client still trusts it
    assert (await momo.provider.status(payment)).status == PaymentStatus.SUCCESSFUL
    assert momo.requests_to("/collection/token/") == 2
    assert momo.requests_to(f"/collection/v1_0/requesttopay/{payment.provider_reference}") == 2


async def test_a_503_is_retried_with_the_same_reference(momo: Momo) -> None:
    await momo.provider.status(make_payment())  # fetches the token
    momo.sim.faults.append(Fault.UNAVAILABLE)
    payment = make_payment()
    await momo.provider.start(payment, callback_url=None)
    assert momo.requests_to("/collection/v1_0/requesttopay") == 2
    assert list(momo.sim.transactions) == [payment.provider_reference]


async def test_after_a_timeout_the_resend_meets_409_and_counts_as_accepted() -> None:
    async for momo in _momo(SETTINGS.model_copy(update={"provider_timeout": 0.3})):
        momo.sim.hang_seconds = 0.6
        await momo.provider.status(make_payment())  # fetches the token
        momo.sim.faults.append(Fault.HANG)
        payment = make_payment()
        outcome = await momo.provider.start(payment, callback_url=None)
        assert outcome.status == PaymentStatus.PENDING
        assert momo.requests_to("/collection/v1_0/requesttopay") == 2
        assert list(momo.sim.transactions) == [payment.provider_reference]


async def test_a_business_refusal_is_not_retried(momo: Momo) -> None:
    momo.sim.any_currency = False
    with pytest.raises(ProviderRejected) as refused:
        await momo.provider.start(make_payment(currency="UGX"), callback_url=None)
    assert refused.value.reason == "merchant_error"
    assert momo.requests_to("/collection/v1_0/requesttopay") == 1


async def test_the_breaker_opens_after_repeated_failures(momo: Momo) -> None:
    await momo.provider.status(make_payment())
    momo.sim.faults.extend([Fault.UNAVAILABLE] * 10)
    for _ in range(2):  # 3 attempts each: 6 failures in a row
        with pytest.raises(ProviderUnavailable):
            await momo.provider.status(make_payment())
    with pytest.raises(ProviderUnavailable, match="circuit open"):
        await momo.provider.status(make_payment())
    assert len(momo.sim.faults) == 4  # the open circuit spared MoMo the last call


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_callbacks_use_the_chosen_method(momo: Momo, receiver: Receiver, method: str) -> None:
    momo.sim.callback_method = method
    await momo.provider.start(make_payment(), callback_url=receiver.callback_url())
    await momo.sim.drain()
    assert [c.method for c in receiver.received] == [method]


async def test_duplicate_callbacks_carry_the_same_body(momo: Momo, receiver: Receiver) -> None:
    momo.sim.callback_mode, momo.sim.callback_delay = CallbackMode.DUPLICATE, 0.05
    await momo.provider.start(make_payment(), callback_url=receiver.callback_url())
    await momo.sim.drain()
    first, second = receiver.received
    assert first == second


async def test_without_callbacks_polling_settles_the_payment(
    momo: Momo, receiver: Receiver
) -> None:
    momo.sim.callback_mode = CallbackMode.NONE
    payment = make_payment()
    await momo.provider.start(payment, callback_url=receiver.callback_url())
    await momo.sim.drain()
    assert receiver.received == []
    assert (await momo.provider.status(payment)).status == PaymentStatus.SUCCESSFUL


async def test_a_refund_of_a_paid_payment_succeeds(momo: Momo, receiver: Receiver) -> None:
    payment = make_payment()
    await momo.provider.start(payment, callback_url=None)
    await momo.settle()
    refund = make_refund(payment)
    outcome = await momo.provider.refund(refund, payment, callback_url=receiver.callback_url())
    assert (outcome.status, outcome.reference) == (RefundStatus.PENDING, refund.provider_reference)
    await momo.sim.drain()
    [body] = [c.body for c in receiver.received]
    assert body["payee"]["partyId"] == "256772123456"
    again = await momo.provider.refund(refund, payment, callback_url=None)
    assert again.status == RefundStatus.SUCCESSFUL
    assert momo.requests_to("/disbursement/v1_0/refund") == 1


@pytest.mark.parametrize(
    ("case", "reason"),
    [("unknown", "provider_error"), ("failed", "merchant_error"), ("too_much", "merchant_error")],
)
async def test_a_refund_momo_cannot_make_fails(momo: Momo, case: str, reason: str) -> None:
    payment = make_payment(phone="+46733123451" if case == "failed" else PHONE)
    if case != "unknown":
        await momo.provider.start(payment, callback_url=None)
        await momo.settle()
    refund = make_refund(payment, payment.amount_cents + (1 if case == "too_much" else 0))
    await momo.provider.refund(refund, payment, callback_url=None)
    await momo.settle()
    outcome = await momo.provider.refund(refund, payment, callback_url=None)
    assert (outcome.status, outcome.failure_reason) == (RefundStatus.FAILED, reason)


def test_check_takes_any_phone_and_eur_only_in_the_sandbox() -> None:
    strict = MomoProvider(SETTINGS, base_url="http://momo.invalid")
    strict.check(phone="+46733123450", currency="EUR", amount_cents=100)
    for phone, currency, amount_cents in [
        (None, "EUR", 100),
        ("0772123456", "EUR", 100),
        (PHONE, "UGX", 100),
        (PHONE, "EUR", 0),
    ]:
        with pytest.raises(UnsupportedPaymentMethod):
            strict.check(phone=phone, currency=currency, amount_cents=amount_cents)
    lenient = MomoProvider(SETTINGS, base_url="http://momo.invalid", any_currency=True)
    lenient.check(phone=PHONE, currency="UGX", amount_cents=5000)


async def test_logs_carry_no_token_and_no_full_phone(
    momo: Momo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fresh loggers: the app's logging setup caches the modules' loggers on first use.
    monkeypatch.setattr(provider_http, "log", structlog.get_logger("test.http"))
    monkeypatch.setattr(momo_client, "log", structlog.get_logger("test.momo"))
    payment = make_payment(phone="+46733123451")
    with capture_logs() as logs:
        await momo.provider.start(payment, callback_url=None)
        await momo.settle()
        await momo.provider.status(payment)
    assert {"momo.status", "provider.call"} <= {entry["event"] for entry in logs}
    [token] = momo.sim.tokens
    assert token not in repr(logs)
    assert "46733123451" not in repr(logs)


class TestTheSimulatorAnswersLikeMomo:
    """Raw requests, to pin the status codes and bodies the client relies on."""

    @staticmethod
    async def token(client: httpx.AsyncClient, **headers: str) -> str:
        response = await client.post(
            "/collection/token/",
            auth=(SETTINGS.momo_api_user, SETTINGS.momo_api_key),
            headers={"Ocp-Apim-Subscription-Key": SETTINGS.momo_collection_key, **headers},
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["token_type"], body["expires_in"]) == ("access_token", 3600)
        return body["access_token"]

    @staticmethod
    def pay_headers(token: str, **changes: str | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token}",
            "Ocp-Apim-Subscription-Key": SETTINGS.momo_collection_key,
            "X-Target-Environment": "sandbox",
            "X-Reference-Id": str(uuid.uuid4()),
            **changes,
        }
        return {name: value for name, value in headers.items() if value is not None}

    BODY = {
        "amount": "100",
        "currency": "EUR",
        "externalId": "6253728",
        "payer": {"partyIdType": "MSISDN", "partyId": "46733123453"},
        "payerMessage": "Tickets",
        "payeeNote": "Booking",
    }

    async def test_tokens_need_the_key_the_credentials_and_no_body(self, momo: Momo) -> None:
        async with httpx.AsyncClient(base_url=momo.url) as client:
            key = {"Ocp-Apim-Subscription-Key": SETTINGS.momo_collection_key}
            wrong_key = await client.post(
                "/collection/token/", auth=(SETTINGS.momo_api_user, SETTINGS.momo_api_key)
            )
            assert (wrong_key.status_code, wrong_key.json()["statusCode"]) == (401, 401)
            wrong_login = await client.post("/collection/token/", auth=("x", "y"), headers=key)
            assert wrong_login.json() == {"error": "login_failed"}
            with_body = await client.post(
                "/collection/token/",
                auth=(SETTINGS.momo_api_user, SETTINGS.momo_api_key),
                headers=key,
                json={},
            )
            assert with_body.status_code == 400
            assert await self.token(client)

    async def test_request_to_pay_checks_in_the_documented_order(self, momo: Momo) -> None:
        momo.sim.any_currency = False
        url = "/collection/v1_0/requesttopay"
        async with httpx.AsyncClient(base_url=momo.url) as client:
            token = await self.token(client)
            cases: list[tuple[dict[str, str], dict[str, Any], int, str | None]] = [
                (self.pay_headers("nope"), self.BODY, 401, None),
                (self.pay_headers(token, **{"X-Reference-Id": "123"}), self.BODY, 400, None),
                (
                    self.pay_headers(token, **{"X-Target-Environment": "mtnuganda"}),
                    {**self.BODY, "amount": 100},
                    500,
                    "NOT_ALLOWED_TARGET_ENVIRONMENT",
                ),
                (self.pay_headers(token), {**self.BODY, "amount": 100}, 400, None),
                (self.pay_headers(token), {**self.BODY, "payeeNote": "Tom & Jerry"}, 400, None),
                (self.pay_headers(token, **{"X-Callback-Url": ""}), self.BODY, 400, None),
                (
                    self.pay_headers(token),
                    {**self.BODY, "currency": "UGX"},
                    500,
                    "INVALID_CURRENCY",
                ),
            ]
            for headers, body, status, code in cases:
                response = await client.post(url, headers=headers, json=body)
                assert response.status_code == status, (headers, body, response.text)
                assert response.json().get("code") == code
            headers = self.pay_headers(token)
            accepted = await client.post(url, headers=headers, json=self.BODY)
            assert (accepted.status_code, accepted.content) == (202, b"")
            again = await client.post(url, headers=headers, json=self.BODY)
            assert (again.status_code, again.json()["code"]) == (409, "RESOURCE_ALREADY_EXIST")
            status = await client.get(f"{url}/{headers['X-Reference-Id']}", headers=headers)
            assert status.json()["status"] == "PENDING"
            assert "financialTransactionId" not in status.json()
            unknown = await client.get(f"{url}/{uuid.uuid4()}", headers=headers)
            assert unknown.status_code == 404
        assert len(momo.sim.transactions) == 1

    async def test_provisioned_users_call_back_to_their_host_only(self, momo: Momo) -> None:
        key = {"Ocp-Apim-Subscription-Key": SETTINGS.momo_collection_key}
        user = str(uuid.uuid4())
        async with httpx.AsyncClient(base_url=momo.url) as client:
            created = await client.post(
                "/v1_0/apiuser",
                headers={**key, "X-Reference-Id": user},
                json={"providerCallbackHost": "tickets.example"},
            )
            assert created.status_code == 201
            reused = await client.post(
                "/v1_0/apiuser",
                headers={**key, "X-Reference-Id": user},
                json={"providerCallbackHost": "tickets.example"},
            )
            assert reused.status_code == 409
            api_key = (await client.post(f"/v1_0/apiuser/{user}/apikey", headers=key)).json()
            described = await client.get(f"/v1_0/apiuser/{user}", headers=key)
            assert described.json() == {
                "providerCallbackHost": "tickets.example",
                "targetEnvironment": "sandbox",
            }
            unknown = await client.post(f"/v1_0/apiuser/{uuid.uuid4()}/apikey", headers=key)
            assert unknown.status_code == 404
            response = await client.post(
                "/collection/token/", auth=(user, api_key["apiKey"]), headers=key
            )
            token = response.json()["access_token"]
            elsewhere = await client.post(
                "/collection/v1_0/requesttopay",
                headers=self.pay_headers(token, **{"X-Callback-Url": "http://evil.example/cb"}),
                json=self.BODY,
            )
            assert elsewhere.json()["code"] == "INVALID_CALLBACK_URL_HOST"
            home = await client.post(
                "/collection/v1_0/requesttopay",
                headers=self.pay_headers(token, **{"X-Callback-Url": "http://tickets.example/cb"}),
                json=self.BODY,
            )
            assert home.status_code == 202
