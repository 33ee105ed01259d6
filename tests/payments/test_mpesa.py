"""The M-Pesa provider against the Daraja simulator, over real HTTP, with a tiny receiver
app standing in for our callback route."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
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
from boxoffice.payments.mpesa import client as daraja_client
from boxoffice.payments.mpesa import provider as mpesa_provider
from boxoffice.payments.mpesa.callbacks import (
    STATUS_OCCASION,
    parse_refund_result,
    parse_status_result,
    parse_stk_callback,
)
from boxoffice.payments.mpesa.client import timestamp
from boxoffice.payments.mpesa.provider import MpesaProvider
from boxoffice.payments.providers import RefundOutcome
from boxoffice.simulators.base import CallbackMode, Fault
from boxoffice.simulators.mpesa import MpesaSimulator, create_mpesa_simulator
from tests.payments.live import callback_receiver, serving

PHONE = "+254708374149"
PRICE = 150_000  # KES 1,500.00
REVERSAL, B2C = "/mpesa/reversal/v1/request", "/mpesa/b2c/v3/paymentrequest"
STATUS = "/mpesa/transactionstatus/v1/query"


@dataclass
class Daraja:
    settings: Settings
    simulator: MpesaSimulator
    provider: MpesaProvider
    base_url: str
    hooks_url: str
    received: list[Any]  # bodies POSTed to our receiver

    @property
    def callback_url(self) -> str:
        return f"{self.hooks_url}/callbacks/{uuid.uuid4().hex}"

    def requests_to(self, path: str) -> list[Any]:
        return [r for r in self.simulator.requests if r.path == path]

    async def refunded(self, refund: Refund, payment: Payment) -> RefundOutcome:
        """Send `refund`, record its reference as the caller does, and read its result."""
        sent = await self.provider.refund(refund, payment, callback_url=self.callback_url)
        assert sent.status == RefundStatus.PENDING
        refund.provider_reference = sent.reference
        await self.simulator.drain()
        return await self.provider.refund(
            refund, payment, callback_url=self.callback_url, callback=self.received[-1]
        )

    async def pay(self, phone: str = PHONE, amount_cents: int = PRICE) -> Payment:
        """A payment started and settled (its callback delivered, if any)."""
        payment = make_payment(phone, amount_cents)
        outcome = await self.provider.start(payment, callback_url=self.callback_url)
        payment.provider_reference = outcome.reference
        await self.simulator.drain()
        return payment


def make_payment(phone: str | None = PHONE, amount_cents: int = PRICE) -> Payment:
    return Payment(
        id=uuid.uuid4(),
        booking_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        provider="mpesa",
        amount_cents=amount_cents,
        currency="KES",
        payer_phone=phone,
        status=PaymentStatus.PENDING,
    )


def make_refund(
    payment: Payment, reference: str | None = None, amount_cents: int | None = None
) -> Refund:
    return Refund(
        id=uuid.uuid4(),
        payment_id=payment.id,
        amount_cents=payment.amount_cents if amount_cents is None else amount_cents,
        reason="cancelled",
        status=RefundStatus.PENDING,
        provider_reference=reference,
    )


class Swappable:
    """An ASGI app that passes each request to whichever app a test put in `app`: one
    server for the whole module instead of two servers started and stopped per test."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture(scope="module")
async def servers() -> AsyncIterator[tuple[Swappable, str, Swappable, str]]:
    simulator, hooks = Swappable(), Swappable()
    async with serving(simulator) as simulator_url, serving(hooks) as hooks_url:
        yield simulator, simulator_url, hooks, hooks_url


@pytest.fixture
async def daraja(servers: tuple[Swappable, str, Swappable, str]) -> AsyncIterator[Daraja]:
    simulator_slot, base_url, hooks_slot, hooks_url = servers
    settings = Settings(simulator_delay=0.05, provider_timeout=2)
    simulator_slot.app = create_mpesa_simulator(settings)
    received: list[Any] = []
    hooks_slot.app = callback_receiver(lambda callback: received.append(callback.body))
    simulator = simulator_slot.app.state.simulator
    provider = MpesaProvider(settings, base_url=base_url)
    try:
        yield Daraja(settings, simulator, provider, base_url, hooks_url, received)
    finally:
        await provider.aclose()
        await simulator.stop()


def metadata(callback: dict[str, Any]) -> dict[str, Any]:
    items = callback["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    return {item["Name"]: item.get("Value", "<none>") for item in items}


# Paying


async def test_payment_succeeds_and_takes_its_receipt_from_the_callback(daraja: Daraja) -> None:
    payment = make_payment()
    started = await daraja.provider.start(payment, callback_url=daraja.callback_url)
    assert started.status == PaymentStatus.PENDING
    assert started.reference is not None
    assert started.reference.startswith("ws_CO_")
    assert started.instructions == "Enter your M-Pesa PIN on your phone (…149) to pay KES 1,500."
    payment.provider_reference = started.reference
    await daraja.simulator.drain()

    (callback,) = daraja.received
    items = metadata(callback)
    assert items["Amount"] == 1500.0
    assert isinstance(items["Amount"], float)
    assert items["Balance"] == "<none>"
    assert items["PhoneNumber"] == 254708374149
    assert len(str(items["TransactionDate"])) == 14
    receipt = items["MpesaReceiptNumber"]
    assert len(receipt) == 10
    assert receipt.isupper()

    confirmed = await daraja.provider.status(payment, callback=callback)
    assert confirmed.status == PaymentStatus.SUCCESSFUL
    assert confirmed.reference == started.reference
    assert confirmed.transaction_id == receipt
    polled = await daraja.provider.status(payment)
    assert (polled.status, polled.transaction_id) == (PaymentStatus.SUCCESSFUL, None)


async def test_push_carries_daraja_fields(daraja: Daraja) -> None:
    payment = await daraja.pay()
    (push,) = daraja.requests_to("/mpesa/stkpush/v1/processrequest")
    body = json.loads(push.body)
    assert body["PartyA"] == body["PhoneNumber"] == "254708374149"
    assert body["Amount"] == 1500
    assert body["AccountReference"] == payment.booking_id.hex[:12].upper()
    assert body["TransactionDesc"] == "Tickets"
    assert len(body["Timestamp"]) == 14


@pytest.mark.parametrize(
    ("ending", "reason"),
    [
        ("0001", "insufficient_funds"),
        ("1032", "rejected"),
        ("1037", "expired"),
        ("2001", "wrong_pin"),
        ("1019", "expired"),
    ],
)
async def test_every_failure_outcome_maps_to_its_reason(
    daraja: Daraja, ending: str, reason: str
) -> None:
    payment = await daraja.pay(f"+25471234{ending}")
    outcome = await daraja.provider.status(payment, callback=daraja.received[0])
    assert (outcome.status, outcome.failure_reason) == (PaymentStatus.FAILED, reason)
    assert outcome.transaction_id is None
    assert "CallbackMetadata" not in daraja.received[0]["Body"]["stkCallback"]


@pytest.mark.parametrize(
    ("code", "reason"), [(17, "provider_error"), (1025, "provider_error"), (1001, "payer_busy")]
)
def test_unlisted_result_codes_map_to_provider_error(code: int, reason: str) -> None:
    assert daraja_client.failure_reason(code) == reason


async def test_phone_ending_9999_stays_pending_without_a_callback(daraja: Daraja) -> None:
    payment = await daraja.pay("+254712349999")
    daraja.simulator.advance(3600)
    assert await daraja.simulator.settle() == 0
    outcome = await daraja.provider.status(payment)
    assert outcome.status == PaymentStatus.PENDING
    assert daraja.simulator.callbacks == []
    assert daraja.received == []


async def test_query_while_the_prompt_is_open_is_pending(daraja: Daraja) -> None:
    daraja.simulator.delay = 60
    payment = make_payment()
    payment.provider_reference = (
        await daraja.provider.start(payment, callback_url=daraja.callback_url)
    ).reference
    outcome = await daraja.provider.status(payment)
    assert (outcome.status, outcome.reference) == (
        PaymentStatus.PENDING,
        payment.provider_reference,
    )
    assert len(daraja.requests_to("/mpesa/stkpushquery/v1/query")) == 1  # an answer: no retry
    daraja.simulator.advance(60)
    assert (await daraja.provider.status(payment)).status == PaymentStatus.SUCCESSFUL


async def test_second_push_to_a_phone_with_an_open_prompt_is_payer_busy(daraja: Daraja) -> None:
    daraja.simulator.delay = 60
    await daraja.provider.start(make_payment(), callback_url=daraja.callback_url)
    with pytest.raises(ProviderRejected) as refused:
        await daraja.provider.start(make_payment(), callback_url=daraja.callback_url)
    assert refused.value.reason == "payer_busy"


async def test_callback_for_another_payment_gives_no_receipt(daraja: Daraja) -> None:
    first, second = await daraja.pay(), await daraja.pay("+254712345678")
    outcome = await daraja.provider.status(first, callback=daraja.received[1])
    assert (outcome.status, outcome.transaction_id) == (PaymentStatus.SUCCESSFUL, None)
    assert second.provider_reference != first.provider_reference


async def test_a_lost_push_answer_is_found_through_its_callback(daraja: Daraja) -> None:
    payment = await daraja.pay()
    payment.provider_reference = None  # as if the push's answer had timed out
    outcome = await daraja.provider.status(payment, callback=daraja.received[0])
    assert outcome.status == PaymentStatus.SUCCESSFUL
    assert outcome.reference == daraja.received[0]["Body"]["stkCallback"]["CheckoutRequestID"]
    assert outcome.transaction_id == metadata(daraja.received[0])["MpesaReceiptNumber"]


async def test_duplicate_callbacks_say_the_same(daraja: Daraja) -> None:
    daraja.simulator.callback_mode = CallbackMode.DUPLICATE
    daraja.simulator.callback_delay = 0.05
    payment = await daraja.pay()
    first, second = daraja.received
    assert first == second
    outcomes = [await daraja.provider.status(payment, callback=body) for body in (first, second)]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0].transaction_id == metadata(first)["MpesaReceiptNumber"]


# Refused before any call


@pytest.mark.parametrize(
    ("phone", "currency", "amount_cents", "says"),
    [
        (PHONE, "KES", 150_050, "cents"),
        ("+256772123456", "KES", PRICE, "Kenyan mobile"),
        ("+254208374149", "KES", PRICE, "Kenyan mobile"),
        (None, "KES", PRICE, "Kenyan mobile"),
        (PHONE, "UGX", PRICE, "KES"),
        (PHONE, "KES", 0, "KES 1 or more"),
    ],
)
async def test_check_refuses_what_daraja_cannot_take_before_any_call(
    daraja: Daraja, phone: str | None, currency: str, amount_cents: int, says: str
) -> None:
    with pytest.raises(UnsupportedPaymentMethod, match=says):
        daraja.provider.check(phone=phone, currency=currency, amount_cents=amount_cents)
    payment = make_payment(phone, amount_cents)
    payment.currency = currency
    with pytest.raises(UnsupportedPaymentMethod):
        await daraja.provider.start(payment, callback_url=daraja.callback_url)
    assert daraja.simulator.requests == []


@pytest.mark.parametrize("phone", ["+254 712 345 678", "0712345678", "254112345678"])
def test_check_accepts_kenyan_mobiles_in_their_usual_forms(daraja: Daraja, phone: str) -> None:
    daraja.provider.check(phone=phone, currency="KES", amount_cents=100)


# Credentials, tokens and faults


async def test_wrong_passkey_is_refused_as_wrong_credentials(daraja: Daraja) -> None:
    settings = daraja.settings.model_copy(update={"mpesa_passkey": "not-the-passkey"})
    provider = MpesaProvider(settings, base_url=daraja.base_url)
    try:
        with pytest.raises(ProviderRejected, match=r"500\.001\.1001 Wrong credentials") as refused:
            await provider.start(make_payment(), callback_url=daraja.callback_url)
    finally:
        await provider.aclose()
    assert refused.value.reason == "merchant_error"
    assert len(daraja.requests_to("/mpesa/stkpush/v1/processrequest")) == 1


async def test_token_is_cached_and_refreshed_once_when_daraja_forgets_it(daraja: Daraja) -> None:
    payment = await daraja.pay()
    await daraja.pay("+254712345678")
    assert len(daraja.requests_to("/oauth/v1/generate")) == 1
    daraja.simulator.tokens.clear()
    assert (await daraja.provider.status(payment)).status == PaymentStatus.SUCCESSFUL
    assert len(daraja.requests_to("/oauth/v1/generate")) == 2
    assert len(daraja.requests_to("/mpesa/stkpushquery/v1/query")) == 2


async def test_a_refused_fresh_token_is_not_refreshed_again(daraja: Daraja) -> None:
    daraja.simulator.token_lifetime = 0  # every token is dead on arrival
    with pytest.raises(ProviderRejected, match="Invalid Access Token"):
        await daraja.provider.start(make_payment(), callback_url=daraja.callback_url)
    assert len(daraja.requests_to("/oauth/v1/generate")) == 2
    assert len(daraja.requests_to("/mpesa/stkpush/v1/processrequest")) == 2
    assert daraja.simulator.pushes == {}


async def test_push_is_not_retried_on_503(daraja: Daraja) -> None:
    await daraja.pay("+254712345678")  # the token is cached: the fault hits the push
    daraja.simulator.faults.append(Fault.UNAVAILABLE)
    with pytest.raises(ProviderUnavailable) as unavailable:
        await daraja.provider.start(make_payment(), callback_url=daraja.callback_url)
    assert unavailable.value.definitive
    assert len(daraja.requests_to("/mpesa/stkpush/v1/processrequest")) == 2  # 1 + the warm-up


async def test_push_timeout_is_not_definitive(daraja: Daraja) -> None:
    settings = daraja.settings.model_copy(update={"provider_timeout": 0.2})
    provider = MpesaProvider(settings, base_url=daraja.base_url)
    daraja.simulator.hang_seconds = 0.4
    try:
        await provider.start(make_payment("+254712345678"), callback_url=daraja.callback_url)
        daraja.simulator.faults.append(Fault.HANG)
        with pytest.raises(ProviderUnavailable) as unavailable:
            await provider.start(make_payment(), callback_url=daraja.callback_url)
    finally:
        await provider.aclose()
    assert not unavailable.value.definitive
    for _ in range(100):  # the simulator carries on once its hang is over
        if len(daraja.simulator.pushes) == 2:
            break
        await asyncio.sleep(0.02)
    await daraja.simulator.drain()
    assert len(daraja.simulator.pushes) == 2  # the prompt reached the phone all the same


async def test_query_is_retried_on_a_transient_500(daraja: Daraja) -> None:
    payment = await daraja.pay()
    daraja.provider.client._http.backoff = 0.01
    daraja.simulator.faults.append(Fault.ERROR)
    assert (await daraja.provider.status(payment)).status == PaymentStatus.SUCCESSFUL
    assert len(daraja.requests_to("/mpesa/stkpushquery/v1/query")) == 2


# Reversal


async def test_reversal_succeeds_once_its_result_arrives(daraja: Daraja) -> None:
    payment = await daraja.pay()
    payment.provider_transaction_id = metadata(daraja.received.pop())["MpesaReceiptNumber"]
    refund = make_refund(payment)
    sent = await daraja.provider.refund(refund, payment, callback_url=daraja.callback_url)
    assert sent.status == RefundStatus.PENDING
    assert sent.reference is not None
    (request,) = daraja.requests_to("/mpesa/reversal/v1/request")
    body = json.loads(request.body)
    assert body["RecieverIdentifierType"] == "11"
    assert body["Amount"] == 1500
    assert body["TransactionID"] == payment.provider_transaction_id

    refund.provider_reference = sent.reference
    asked = await daraja.provider.refund(refund, payment, callback_url=daraja.callback_url)
    assert asked.status == RefundStatus.PENDING
    assert len(daraja.requests_to("/mpesa/reversal/v1/request")) == 1  # never sent twice
    await daraja.simulator.drain()
    assert len(daraja.received) == 2  # the reversal's result, then the status query's
    for result in daraja.received:
        done = await daraja.provider.refund(
            refund, payment, callback_url=daraja.callback_url, callback=result
        )
        assert done == RefundOutcome(RefundStatus.SUCCESSFUL, reference=sent.reference)


async def test_reversal_of_an_unknown_receipt_fails(daraja: Daraja) -> None:
    payment = make_payment()
    payment.provider_transaction_id = "QZZ0000000"
    refund = make_refund(payment)
    sent = await daraja.provider.refund(refund, payment, callback_url=daraja.callback_url)
    refund.provider_reference = sent.reference
    await daraja.simulator.drain()
    (result,) = daraja.received
    assert result["Result"]["ResultCode"] == "R000002"
    done = await daraja.provider.refund(
        refund, payment, callback_url=daraja.callback_url, callback=result
    )
    assert (done.status, done.failure_reason) == (RefundStatus.FAILED, "provider_error")


async def test_a_second_reversal_of_one_receipt_fails(daraja: Daraja) -> None:
    payment = await daraja.pay()
    payment.provider_transaction_id = metadata(daraja.received.pop())["MpesaReceiptNumber"]
    for _ in range(2):
        await daraja.provider.refund(
            make_refund(payment), payment, callback_url=daraja.callback_url
        )
    await daraja.simulator.drain()
    codes = sorted(str(body["Result"]["ResultCode"]) for body in daraja.received)
    assert codes == ["0", "R000001"]


async def test_reversal_result_for_another_conversation_is_ignored(daraja: Daraja) -> None:
    payment = make_payment()
    refund = make_refund(payment, reference="AG_20260101_00000000000000000000")
    other = {"Result": {"ConversationID": "AG_20260101_ffffffffffffffffffff", "ResultCode": 0}}
    outcome = await daraja.provider.refund(
        refund, payment, callback_url=daraja.callback_url, callback=other
    )
    assert outcome.status == RefundStatus.PENDING


async def test_reversal_with_wrong_initiator_credential_fails(daraja: Daraja) -> None:
    payment = await daraja.pay()
    payment.provider_transaction_id = metadata(daraja.received.pop())["MpesaReceiptNumber"]
    daraja.simulator.security_credential = "another-credential"
    refund = make_refund(payment)
    refund.provider_reference = (
        await daraja.provider.refund(refund, payment, callback_url=daraja.callback_url)
    ).reference
    await daraja.simulator.drain()
    done = await daraja.provider.refund(
        refund, payment, callback_url=daraja.callback_url, callback=daraja.received[0]
    )
    assert (done.status, done.failure_reason) == (RefundStatus.FAILED, "merchant_error")


# B2C: refunds a reversal cannot make


async def test_refund_of_a_payment_settled_without_its_receipt_goes_by_b2c(
    daraja: Daraja,
) -> None:
    payment = await daraja.pay()
    daraja.received.clear()  # the callback was lost: the query settled the payment
    refund = make_refund(payment)
    sent = await daraja.provider.refund(refund, payment, callback_url=daraja.callback_url)
    assert sent == RefundOutcome(RefundStatus.PENDING, reference=str(refund.id))
    (request,) = daraja.requests_to(B2C)
    body = json.loads(request.body)
    assert body["OriginatorConversationID"] == str(refund.id)
    assert body["CommandID"] == "BusinessPayment"
    assert (body["Amount"], body["PartyA"], body["PartyB"]) == (1500, "174379", "254708374149")
    assert body["InitiatorName"] == daraja.settings.mpesa_initiator
    assert body["ResultURL"] == body["QueueTimeOutURL"]
    assert body["Occasion"] == payment.booking_id.hex[:12].upper()
    assert daraja.requests_to(REVERSAL) == []

    refund.provider_reference = sent.reference
    asked = await daraja.provider.refund(refund, payment, callback_url=daraja.callback_url)
    assert asked.status == RefundStatus.PENDING
    await daraja.simulator.drain()
    assert len(daraja.requests_to(B2C)) == 1  # never sent twice
    (result,) = [body for body in daraja.received if parse_status_result(body) is None]
    parameters = {
        p["Key"]: p["Value"] for p in result["Result"]["ResultParameters"]["ResultParameter"]
    }
    assert parameters["TransactionAmount"] == 1500
    assert parameters["TransactionReceipt"] == result["Result"]["TransactionID"]
    assert "254708374149" not in parameters["ReceiverPartyPublicName"]
    done = await daraja.provider.refund(
        refund, payment, callback_url=daraja.callback_url, callback=result
    )
    assert done == RefundOutcome(RefundStatus.SUCCESSFUL, reference=str(refund.id))


async def test_partial_refund_goes_by_b2c_though_the_receipt_is_known(daraja: Daraja) -> None:
    payment = await daraja.pay()
    payment.provider_transaction_id = metadata(daraja.received.pop())["MpesaReceiptNumber"]
    refund = make_refund(payment, amount_cents=PRICE - 50_000)
    done = await daraja.refunded(refund, payment)
    assert done == RefundOutcome(RefundStatus.SUCCESSFUL, reference=str(refund.id))
    (request,) = daraja.requests_to(B2C)
    assert json.loads(request.body)["Amount"] == 1000
    assert daraja.requests_to(REVERSAL) == []


async def test_full_refund_with_a_receipt_still_goes_by_reversal(daraja: Daraja) -> None:
    payment = await daraja.pay()
    payment.provider_transaction_id = metadata(daraja.received.pop())["MpesaReceiptNumber"]
    done = await daraja.refunded(make_refund(payment), payment)
    assert done.status == RefundStatus.SUCCESSFUL
    assert len(daraja.requests_to(REVERSAL)) == 1
    assert daraja.requests_to(B2C) == []


@pytest.mark.parametrize(
    ("phone", "credential", "code", "reason"),
    [
        ("+254712342040", None, 2040, "payer_not_found"),
        (PHONE, "another-credential", 2001, "merchant_error"),
    ],
)
async def test_b2c_that_daraja_fails_is_failed(
    daraja: Daraja, phone: str, credential: str | None, code: int, reason: str
) -> None:
    if credential is not None:
        daraja.simulator.security_credential = credential
    payment = make_payment(phone)
    refund = make_refund(payment)
    done = await daraja.refunded(refund, payment)
    assert done == RefundOutcome(
        RefundStatus.FAILED, reference=str(refund.id), failure_reason=reason
    )
    assert daraja.received[-1]["Result"]["ResultCode"] == code
    assert "ResultParameters" not in daraja.received[-1]["Result"]


@pytest.mark.parametrize(
    ("phone", "amount_cents", "reason"),
    [
        (PHONE, PRICE - 50, "refund_has_cents"),
        (PHONE, 900, "below_b2c_minimum"),
        (PHONE, PRICE + 100, "refund_exceeds_payment"),
        (None, PRICE, "payer_not_found"),
    ],
)
async def test_refund_b2c_cannot_carry_fails_without_a_call(
    daraja: Daraja, phone: str | None, amount_cents: int, reason: str
) -> None:
    payment = make_payment(phone)
    refund = make_refund(payment, amount_cents=amount_cents)
    outcome = await daraja.provider.refund(refund, payment, callback_url=daraja.callback_url)
    assert outcome == RefundOutcome(RefundStatus.FAILED, failure_reason=reason)
    assert daraja.simulator.requests == []


async def test_b2c_result_arriving_before_its_reference_is_stored_is_taken(
    daraja: Daraja,
) -> None:
    payment = make_payment()
    refund = make_refund(payment)
    await daraja.provider.refund(refund, payment, callback_url=daraja.callback_url)
    await daraja.simulator.drain()  # the reference was never recorded
    done = await daraja.provider.refund(
        refund, payment, callback_url=daraja.callback_url, callback=daraja.received[0]
    )
    assert done == RefundOutcome(RefundStatus.SUCCESSFUL, reference=str(refund.id))


async def test_b2c_result_for_another_refund_is_ignored(daraja: Daraja) -> None:
    payment = make_payment()
    mine, other = make_refund(payment), make_refund(payment)
    await daraja.provider.refund(other, payment, callback_url=daraja.callback_url)
    await daraja.simulator.drain()
    mine.provider_reference = str(mine.id)
    outcome = await daraja.provider.refund(
        mine, payment, callback_url=daraja.callback_url, callback=daraja.received[0]
    )
    assert outcome == RefundOutcome(RefundStatus.PENDING, reference=str(mine.id))


# Results lost: asking Daraja's Transaction Status API


async def sent_and_lost(daraja: Daraja, refund: Refund, payment: Payment, url: str) -> None:
    """Send `refund` and record its reference, its result lost on the way."""
    daraja.simulator.callback_mode = CallbackMode.NONE
    sent = await daraja.provider.refund(refund, payment, callback_url=url)
    refund.provider_reference = sent.reference
    await daraja.simulator.drain()
    assert daraja.received == []
    daraja.simulator.callback_mode = CallbackMode.ONCE


async def asked_again(daraja: Daraja, refund: Refund, payment: Payment, url: str) -> Any:
    """Ask about `refund` as the worker's next retry does; the query's result."""
    asked = await daraja.provider.refund(refund, payment, callback_url=url)
    assert asked == RefundOutcome(RefundStatus.PENDING, reference=refund.provider_reference)
    await daraja.simulator.drain()
    (result,) = daraja.received
    return result


async def test_b2c_whose_result_is_lost_is_found_by_a_status_query(daraja: Daraja) -> None:
    payment, url = make_payment(), daraja.callback_url
    refund = make_refund(payment)
    await sent_and_lost(daraja, refund, payment, url)
    result = await asked_again(daraja, refund, payment, url)

    (request,) = daraja.requests_to(STATUS)
    body = json.loads(request.body)
    assert body["CommandID"] == "TransactionStatusQuery"
    assert body["OriginatorConversationID"] == str(refund.id)
    assert (body["PartyA"], body["IdentifierType"]) == ("174379", "4")
    assert body["ResultURL"] == body["QueueTimeOutURL"] == url
    assert body["Initiator"] == daraja.settings.mpesa_initiator
    assert body["Occasion"] == STATUS_OCCASION
    parameters = {
        p["Key"]: p.get("Value") for p in result["Result"]["ResultParameters"]["ResultParameter"]
    }
    assert parameters["TransactionStatus"] == "Completed"
    assert parameters["OriginatorConversationID"] == str(refund.id)
    assert result["Result"]["ReferenceData"]["ReferenceItem"]["Value"] == STATUS_OCCASION
    done = await daraja.provider.refund(refund, payment, callback_url=url, callback=result)
    assert done == RefundOutcome(RefundStatus.SUCCESSFUL, reference=str(refund.id))
    assert len(daraja.requests_to(B2C)) == 1  # the refund itself: sent once


async def test_reversal_whose_result_is_lost_is_found_by_a_status_query(daraja: Daraja) -> None:
    payment = await daraja.pay()
    payment.provider_transaction_id = metadata(daraja.received.pop())["MpesaReceiptNumber"]
    refund, url = make_refund(payment), daraja.callback_url
    await sent_and_lost(daraja, refund, payment, url)
    (reversal,) = daraja.simulator.reversals
    assert refund.provider_reference == reversal.originator_conversation_id
    result = await asked_again(daraja, refund, payment, url)

    (request,) = daraja.requests_to(STATUS)
    assert json.loads(request.body)["OriginatorConversationID"] == refund.provider_reference
    done = await daraja.provider.refund(refund, payment, callback_url=url, callback=result)
    assert done == RefundOutcome(RefundStatus.SUCCESSFUL, reference=refund.provider_reference)
    assert len(daraja.requests_to(REVERSAL)) == 1


async def test_failed_b2c_whose_result_is_lost_is_failed_by_its_status(daraja: Daraja) -> None:
    payment, url = make_payment("+254712342040"), daraja.callback_url
    refund = make_refund(payment)
    await sent_and_lost(daraja, refund, payment, url)
    result = await asked_again(daraja, refund, payment, url)
    done = await daraja.provider.refund(refund, payment, callback_url=url, callback=result)
    assert done == RefundOutcome(
        RefundStatus.FAILED, reference=str(refund.id), failure_reason="failed"
    )
    assert len(daraja.requests_to(B2C)) == 1


async def test_refund_daraja_does_not_know_stays_pending_and_is_never_resent(
    daraja: Daraja,
) -> None:
    """The B2C request timed out before Daraja took it: run_refund stored the refund's id
    as sent. M-Pesa finds no such transaction, every time; nothing is sent again."""
    payment, url = make_payment(), daraja.callback_url
    refund = make_refund(payment, reference=None)
    refund.provider_reference = str(refund.id)
    for attempt in (1, 2):
        result = await asked_again(daraja, refund, payment, url)
        assert result["Result"]["ResultCode"] == "TS_NOT_FOUND"
        assert parse_refund_result(result) is None  # not mistaken for a failed refund
        outcome = await daraja.provider.refund(refund, payment, callback_url=url, callback=result)
        assert outcome == RefundOutcome(RefundStatus.PENDING, reference=str(refund.id))
        assert len(daraja.requests_to(STATUS)) == attempt
        daraja.received.clear()
    assert daraja.requests_to(B2C) == daraja.requests_to(REVERSAL) == []


async def test_reversal_whose_answer_was_lost_waits_for_its_own_result(daraja: Daraja) -> None:
    """Only the reversal's result can name it then: asking by our own id finds nothing and
    changes nothing, and the reversal's result, when it comes, is taken."""
    payment = await daraja.pay()
    payment.provider_transaction_id = metadata(daraja.received.pop())["MpesaReceiptNumber"]
    refund, url = make_refund(payment), daraja.callback_url
    daraja.simulator.delay = 60  # the reversal's result comes after the query's
    await daraja.provider.refund(refund, payment, callback_url=url)
    refund.provider_reference = str(refund.id)  # as run_refund stores it after a timeout
    daraja.simulator.delay = 0.05
    not_found = await asked_again(daraja, refund, payment, url)
    assert not_found["Result"]["ResultCode"] == "TS_NOT_FOUND"
    daraja.simulator.advance(60)
    assert await daraja.simulator.settle() == 1
    await daraja.simulator.drain()
    _, reversal_result = daraja.received
    pending = await daraja.provider.refund(refund, payment, callback_url=url, callback=not_found)
    assert pending.status == RefundStatus.PENDING
    done = await daraja.provider.refund(refund, payment, callback_url=url, callback=reversal_result)
    assert done.status == RefundStatus.SUCCESSFUL
    assert len(daraja.requests_to(REVERSAL)) == 1


async def test_a_status_query_daraja_fails_leaves_the_refund_pending(daraja: Daraja) -> None:
    payment, url = make_payment(), daraja.callback_url
    refund = make_refund(payment)
    await sent_and_lost(daraja, refund, payment, url)
    daraja.simulator.security_credential = "another-credential"
    result = await asked_again(daraja, refund, payment, url)
    assert result["Result"]["ResultCode"] == 2001
    done = await daraja.provider.refund(refund, payment, callback_url=url, callback=result)
    assert done == RefundOutcome(RefundStatus.PENDING, reference=str(refund.id))


async def test_status_of_another_transaction_is_ignored(daraja: Daraja) -> None:
    payment, url = make_payment(), daraja.callback_url
    mine, other = make_refund(payment), make_refund(payment)
    await sent_and_lost(daraja, other, payment, url)
    result = await asked_again(daraja, other, payment, url)
    mine.provider_reference = str(mine.id)
    outcome = await daraja.provider.refund(mine, payment, callback_url=url, callback=result)
    assert outcome == RefundOutcome(RefundStatus.PENDING, reference=str(mine.id))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Completed", RefundStatus.SUCCESSFUL),
        ("Failed", RefundStatus.FAILED),
        ("Expired", RefundStatus.FAILED),
        ("Pending", RefundStatus.PENDING),
        ("SomethingNew", RefundStatus.PENDING),
    ],
)
async def test_transaction_status_words(
    daraja: Daraja, status: str, expected: RefundStatus
) -> None:
    payment = make_payment()
    refund = make_refund(payment)
    refund.provider_reference = str(refund.id)
    outcome = await daraja.provider.refund(
        refund, payment, callback_url=daraja.callback_url, callback=status_result(refund, status)
    )
    assert outcome.status == expected
    assert outcome.reference == str(refund.id)


def status_result(refund: Refund, status: str = "Completed", **changes: Any) -> dict[str, Any]:
    """A found transaction's status result, as Daraja's samples write it (older ones put
    spaces in some keys)."""
    return {
        "Result": {
            "ResultType": 0,
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "OriginatorConversationID": "10816-694520-2",
            "ConversationID": "AG_20170727_000059c52529a8e080bd",
            "TransactionID": "LGR0000000",
            "ResultParameters": {
                "ResultParameter": [
                    {"Key": "ReceiptNo", "Value": "LGR919G2AV"},
                    {"Key": "Conversation ID", "Value": "AG_20170727_00004492b1b6d0078fbe"},
                    {"Key": "Amount", "Value": 1500},
                    {"Key": "TransactionStatus", "Value": status},
                    {"Key": "ReasonType", "Value": "Business Payment to Customer via API"},
                    {"Key": "TransactionReason"},
                    {"Key": "Originator Conversation ID", "Value": str(refund.id)},
                ]
            },
            "ReferenceData": {"ReferenceItem": {"Key": "Occasion", "Value": STATUS_OCCASION}},
            **changes,
        }
    }


async def test_b2c_is_not_retried_on_503_nor_after_a_timeout(daraja: Daraja) -> None:
    await daraja.pay("+254712345678")  # the token is cached: the faults hit the payouts
    daraja.simulator.faults.append(Fault.UNAVAILABLE)
    payment = make_payment()
    with pytest.raises(ProviderUnavailable) as unavailable:
        await daraja.provider.refund(
            make_refund(payment), payment, callback_url=daraja.callback_url
        )
    assert unavailable.value.definitive
    settings = daraja.settings.model_copy(update={"provider_timeout": 0.2})
    provider = MpesaProvider(settings, base_url=daraja.base_url)
    daraja.simulator.hang_seconds = 0.4
    try:
        await provider.client._token.get()
        daraja.simulator.faults.append(Fault.HANG)
        with pytest.raises(ProviderUnavailable) as timed_out:
            await provider.refund(make_refund(payment), payment, callback_url=daraja.callback_url)
    finally:
        await provider.aclose()
    assert not timed_out.value.definitive
    for _ in range(100):  # the simulator carries on once its hang is over
        if daraja.simulator.payouts:
            break
        await asyncio.sleep(0.02)
    assert len(daraja.requests_to(B2C)) == 2  # one each: neither was sent again
    assert len(daraja.simulator.payouts) == 1  # the timed-out one was paid all the same


# Parsing what Daraja POSTs


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        [],
        {},
        {"Body": None},
        {"Body": {"stkCallback": []}},
        {"Body": {"stkCallback": {"ResultCode": 0}}},
        {"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": "zero"}}},
        {"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": True}}},
        {"Body": {"stkCallback": {"CheckoutRequestID": 7, "ResultCode": 0}}},
        {
            "Body": {
                "stkCallback": {
                    "CheckoutRequestID": "ws_CO_1",
                    "ResultCode": 0,
                    "CallbackMetadata": {"Item": {"Name": "Amount"}},
                }
            }
        },
        {
            "Body": {
                "stkCallback": {
                    "CheckoutRequestID": "ws_CO_1",
                    "ResultCode": 0,
                    "CallbackMetadata": {"Item": [["Amount", 1]]},
                }
            }
        },
    ],
)
def test_malformed_stk_callbacks_parse_to_none(body: Any) -> None:
    assert parse_stk_callback(body) is None


def test_stk_callback_items_are_read_by_name_not_position() -> None:
    parsed = parse_stk_callback(
        {
            "Body": {
                "stkCallback": {
                    "CheckoutRequestID": "ws_CO_1",
                    "ResultCode": 0,
                    "ResultDesc": "ok",
                    "CallbackMetadata": {
                        "Item": [
                            {"Name": "PhoneNumber", "Value": 254708374149},
                            {"Name": "Balance"},
                            {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
                            {"Name": "Amount", "Value": 1.00},
                        ]
                    },
                }
            }
        }
    )
    assert parsed is not None
    assert (parsed.receipt, parsed.amount, parsed.result_code) == ("NLJ7RT61SV", 1, 0)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"Result": "x"},
        {"Result": {"ResultCode": 0}},
        {"Result": {"ConversationID": "A"}},
        {"Result": {"ConversationID": "", "ResultCode": 0}},
        {"Result": {"ConversationID": 7, "ResultCode": 0}},
        {"Result": {"ConversationID": "A", "ResultCode": True}},
        {"Result": {"ConversationID": "A", "ResultCode": None}},
        {"Result": {"ConversationID": "A", "ResultCode": ""}},
        {"Result": {"ConversationID": "A", "ResultCode": [0]}},
    ],
)
def test_malformed_refund_results_parse_to_none(body: Any) -> None:
    assert parse_refund_result(body) is None


@pytest.mark.parametrize(
    ("parameters", "amount"),
    [
        ({"ResultParameter": [{"Key": "TransactionAmount", "Value": 10}]}, 10),
        ({"ResultParameter": {"Key": "Amount", "Value": "1500.00"}}, 1500),
        ({"ResultParameter": [{"Key": 1}, "x", {"Key": "TransactionAmount", "Value": 5}]}, 5),
        ({"ResultParameter": "x"}, None),
        ("garbage", None),
        ({"ResultParameter": [{"Key": "TransactionAmount", "Value": "NaN"}]}, None),
    ],
)
def test_refund_result_parameters_are_read_by_key_and_only_inform(
    parameters: Any, amount: int | None
) -> None:
    parsed = parse_refund_result(
        {
            "Result": {
                "ConversationID": "AG_20260101_1",
                "OriginatorConversationID": 12,
                "ResultCode": 0,
                "TransactionID": "not a receipt",
                "ResultParameters": parameters,
            }
        }
    )
    assert parsed is not None
    assert parsed.succeeded
    assert (parsed.amount, parsed.originator_conversation_id, parsed.transaction_id) == (
        amount,
        None,
        None,
    )


def test_status_results_are_read_with_or_without_spaces_in_their_keys() -> None:
    refund = make_refund(make_payment())
    parsed = parse_status_result(status_result(refund))
    assert parsed is not None
    assert parsed.found
    assert (parsed.originator_conversation_id, parsed.transaction_status) == (
        str(refund.id),
        "Completed",
    )
    assert (parsed.receipt, parsed.amount) == ("LGR919G2AV", 1500)
    assert parse_refund_result(status_result(refund)) is None


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"Result": []},
        {"Result": {"ConversationID": "A", "ResultCode": 0}},  # a refund's result
        {
            "Result": {
                "ConversationID": "A",
                "ResultCode": 0,
                "ReferenceData": {"ReferenceItem": {"Key": "Occasion", "Value": "ABC123"}},
            }
        },
        {
            "Result": {
                "ResultCode": 0,
                "ResultParameters": {"ResultParameter": {"Key": "TransactionStatus"}},
            }
        },
        {
            "Result": {
                "ConversationID": "A",
                "ResultCode": None,
                "ResultParameters": {"ResultParameter": {"Key": "TransactionStatus"}},
            }
        },
        {
            "Result": {
                "ConversationID": "A",
                "ResultCode": True,
                "ReferenceData": {"ReferenceItem": [{"Key": "Occasion", "Value": STATUS_OCCASION}]},
            }
        },
    ],
)
def test_malformed_status_results_parse_to_none(body: Any) -> None:
    assert parse_status_result(body) is None


def test_a_failed_status_query_is_never_read_as_a_failed_refund() -> None:
    """It has no TransactionStatus, only the Occasion we gave it, and Daraja's own ids:
    read as a refund's result it would fail a refund whose answer was lost."""
    body = {
        "Result": {
            "ResultType": 0,
            "ResultCode": "SFC_IC0003",
            "ResultDesc": "Receiver party is invalid",
            "OriginatorConversationID": "41ee-4e5a-ac1d-f88e26237e3b6251",
            "ConversationID": "AG_20251106_010010281a6ti4fj86cj",
            "TransactionID": "TK61000000",
            "ReferenceData": {"ReferenceItem": {"Key": "Occasion", "Value": STATUS_OCCASION}},
        }
    }
    assert parse_refund_result(body) is None
    parsed = parse_status_result(body)
    assert parsed is not None
    assert (parsed.found, parsed.originator_conversation_id) == (False, None)


async def test_malformed_callback_leaves_the_receipt_out(daraja: Daraja) -> None:
    payment = await daraja.pay()
    outcome = await daraja.provider.status(payment, callback={"Body": "garbage"})
    assert (outcome.status, outcome.transaction_id) == (PaymentStatus.SUCCESSFUL, None)


# Logs


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every log line of the provider code. Fresh loggers: one cached by an earlier test
    under another configuration would not see capture_logs."""
    with capture_logs() as captured:
        for module in (provider_http, daraja_client, mpesa_provider):
            monkeypatch.setattr(module, "log", structlog.get_logger())
        yield captured


async def test_logs_carry_no_secret_and_no_full_phone(
    daraja: Daraja, logs: list[dict[str, Any]]
) -> None:
    payment = await daraja.pay()
    await daraja.provider.status(payment, callback=daraja.received[0])
    await daraja.pay("+254712341032")
    await daraja.provider.start(make_payment("+254712349999"), callback_url=daraja.callback_url)
    with pytest.raises(ProviderRejected):  # payer_busy: logged with Daraja's code
        await daraja.provider.start(make_payment("+254712349999"), callback_url=daraja.callback_url)
    pushes = daraja.requests_to("/mpesa/stkpush/v1/processrequest")
    passwords = {json.loads(request.body)["Password"] for request in pushes}
    secrets = {
        *daraja.simulator.tokens,
        *passwords,
        daraja.settings.mpesa_passkey,
        daraja.settings.mpesa_consumer_secret,
        daraja.settings.mpesa_security_credential,
        "254708374149",
        "254712341032",
        "254712349999",
    }
    text = repr(logs)
    assert {line["event"] for line in logs} >= {"provider.call", "mpesa.push_sent"}
    assert [secret for secret in secrets if secret in text] == []


async def test_refund_logs_carry_no_secret_and_no_full_phone(
    daraja: Daraja, logs: list[dict[str, Any]]
) -> None:
    payment = make_payment()
    await daraja.refunded(make_refund(payment, amount_cents=PRICE - 50_000), payment)
    failing = make_payment("+254712342040")
    await daraja.refunded(make_refund(failing), failing)
    daraja.simulator.faults.append(Fault.ERROR)
    with pytest.raises(ProviderUnavailable):
        await daraja.provider.refund(
            make_refund(payment), payment, callback_url=daraja.callback_url
        )
    (body, *_) = [json.loads(request.body) for request in daraja.requests_to(B2C)]
    secrets = {
        *daraja.simulator.tokens,
        body["SecurityCredential"],
        daraja.settings.mpesa_consumer_secret,
        "254708374149",
        "254712342040",
    }
    text = repr(logs)
    events = {line["event"] for line in logs}
    assert events >= {"mpesa.b2c_sent", "mpesa.refund_paid", "mpesa.refund_failed"}
    assert [secret for secret in secrets if secret in text] == []


async def test_paid_refund_of_another_amount_stays_paid_and_is_logged(
    daraja: Daraja, logs: list[dict[str, Any]]
) -> None:
    payment = make_payment()
    refund = make_refund(payment, reference=None)
    result = {
        "Result": {
            "ConversationID": "AG_20260101_1",
            "OriginatorConversationID": str(refund.id),
            "ResultCode": 0,
            "ResultParameters": {"ResultParameter": [{"Key": "TransactionAmount", "Value": 15}]},
        }
    }
    done = await daraja.provider.refund(
        refund, payment, callback_url=daraja.callback_url, callback=result
    )
    assert done == RefundOutcome(RefundStatus.SUCCESSFUL, reference=str(refund.id))
    assert "mpesa.refund_amount_mismatch" in {line["event"] for line in logs}


# The simulator's own checks


async def token(daraja: Daraja, client: httpx.AsyncClient) -> str:
    response = await client.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(daraja.settings.mpesa_consumer_key, daraja.settings.mpesa_consumer_secret),
    )
    assert response.json()["expires_in"] == "3599"
    return response.json()["access_token"]


def push_body(daraja: Daraja, **changes: Any) -> dict[str, Any]:
    at = timestamp()
    return {
        "BusinessShortCode": "174379",
        "Password": daraja.provider.client.password(at),
        "Timestamp": at,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": 10,
        "PartyA": "254708374149",
        "PartyB": "174379",
        "PhoneNumber": "254708374149",
        "CallBackURL": "https://example.org/callbacks/abc",
        "AccountReference": "ABC123",
        "TransactionDesc": "Tickets",
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "status", "code", "message"),
    [
        ({"BusinessShortCode": "600999"}, 500, "500.001.1001", "Merchant does not exist"),
        ({"Timestamp": "2026"}, 400, "400.002.02", "Invalid Timestamp"),
        ({"Password": "bm9wZQ=="}, 500, "500.001.1001", "Wrong credentials"),
        ({"TransactionType": "PayBill"}, 400, "400.002.02", "Invalid TransactionType"),
        ({"Amount": 10.5}, 400, "400.002.02", "Invalid Amount"),
        ({"Amount": 0}, 400, "400.002.02", "Invalid Amount"),
        ({"PhoneNumber": "254208374149"}, 400, "400.002.02", "Invalid PhoneNumber"),
        ({"PartyA": "0708374149"}, 400, "400.002.02", "Invalid PartyA"),
        ({"AccountReference": "A" * 13}, 400, "400.002.02", "Invalid AccountReference"),
        ({"TransactionDesc": "T" * 14}, 400, "400.002.02", "Invalid TransactionDesc"),
        ({"CallBackURL": "/callbacks/abc"}, 400, "400.002.02", "Invalid CallBackURL"),
        ({}, 200, None, None),
        ({"Amount": "10"}, 200, None, None),
    ],
)
async def test_simulator_checks_pushes_as_daraja_does(
    daraja: Daraja, changes: dict[str, Any], status: int, code: str | None, message: str | None
) -> None:
    async with httpx.AsyncClient(base_url=daraja.base_url) as client:
        bearer = {"Authorization": f"Bearer {await token(daraja, client)}"}
        response = await client.post(
            "/mpesa/stkpush/v1/processrequest", json=push_body(daraja, **changes), headers=bearer
        )
    assert response.status_code == status
    body = response.json()
    if code is None:
        assert body["ResponseCode"] == "0"
        assert body["CheckoutRequestID"].startswith("ws_CO_")
        assert [len(part) for part in body["MerchantRequestID"].split("-")] == [5, 8, 1]
    else:
        assert body["errorCode"] == code
        assert message in body["errorMessage"]
        assert body["requestId"]


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://example.org/callbacks/abc", False),
        ("https://example.org/mpesa/abc", False),
        ("https://abc.ngrok.io/callbacks/abc", False),
        ("https://example.org/callbacks/abc", True),
    ],
)
async def test_simulator_strict_mode_refuses_daraja_refused_urls(
    daraja: Daraja, url: str, accepted: bool
) -> None:
    daraja.simulator.strict = True
    async with httpx.AsyncClient(base_url=daraja.base_url) as client:
        bearer = {"Authorization": f"Bearer {await token(daraja, client)}"}
        response = await client.post(
            "/mpesa/stkpush/v1/processrequest",
            json=push_body(daraja, CallBackURL=url),
            headers=bearer,
        )
    assert (response.status_code == 200) is accepted


@pytest.mark.parametrize(
    ("params", "auth", "code"),
    [
        ({"grant_type": "client_credentials"}, None, "400.008.01"),
        (
            {"grant_type": "password"},
            ("sim-mpesa-consumer-key", "sim-mpesa-consumer-secret"),
            "400.008.02",
        ),
        ({"grant_type": "client_credentials"}, ("sim-mpesa-consumer-key", "wrong"), "400.008.01"),
    ],
)
async def test_simulator_oauth_refusals(
    daraja: Daraja, params: dict[str, str], auth: tuple[str, str] | None, code: str
) -> None:
    async with httpx.AsyncClient(base_url=daraja.base_url) as client:
        response = await client.get("/oauth/v1/generate", params=params, auth=auth)
    assert (response.status_code, response.json()["errorCode"]) == (400, code)


async def test_simulator_refuses_unknown_tokens_and_checkout_ids(daraja: Daraja) -> None:
    async with httpx.AsyncClient(base_url=daraja.base_url) as client:
        refused = await client.post(
            "/mpesa/stkpushquery/v1/query", json={}, headers={"Authorization": "Bearer nope"}
        )
        bearer = {"Authorization": f"Bearer {await token(daraja, client)}"}
        query = {**push_body(daraja), "CheckoutRequestID": "ws_CO_000"}
        unknown = await client.post("/mpesa/stkpushquery/v1/query", json=query, headers=bearer)
    assert (refused.status_code, refused.json()["errorCode"]) == (404, "404.001.03")
    assert (unknown.status_code, unknown.json()["errorCode"]) == (400, "400.002.02")


async def test_simulator_arrests_spikes_of_queries(daraja: Daraja) -> None:
    payment = await daraja.pay()
    daraja.simulator.query_interval = 10
    async with httpx.AsyncClient(base_url=daraja.base_url) as client:
        bearer = {"Authorization": f"Bearer {await token(daraja, client)}"}
        query = {**push_body(daraja), "CheckoutRequestID": payment.provider_reference}
        first = await client.post("/mpesa/stkpushquery/v1/query", json=query, headers=bearer)
        second = await client.post("/mpesa/stkpushquery/v1/query", json=query, headers=bearer)
    assert first.json()["ResultCode"] == "0"
    assert (second.status_code, second.json()["errorCode"]) == (500, "500.003.02")


def b2c_body(**changes: Any) -> dict[str, Any]:
    return {
        "OriginatorConversationID": str(uuid.uuid4()),
        "InitiatorName": "boxoffice-api",
        "SecurityCredential": "sim-mpesa-security-credential",
        "CommandID": "BusinessPayment",
        "Amount": 10,
        "PartyA": "174379",
        "PartyB": "254708374149",
        "Remarks": "Refund cancelled",
        "QueueTimeOutURL": "https://example.org/callbacks/abc",
        "ResultURL": "https://example.org/callbacks/abc",
        "Occasion": "ABC123",
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"OriginatorConversationID": ""}, 400, "OriginatorConversationID"),
        ({"InitiatorName": ""}, 400, "InitiatorName"),
        ({"SecurityCredential": None}, 400, "SecurityCredential"),
        ({"CommandID": "TransactionReversal"}, 400, "CommandID"),
        ({"Amount": 9}, 400, "Amount"),
        ({"Amount": 10.5}, 400, "Amount"),
        ({"PartyA": "600999"}, 400, "PartyA"),
        ({"PartyB": "0708374149"}, 400, "PartyB"),
        ({"PartyB": "254208374149"}, 400, "PartyB"),
        ({"Remarks": ""}, 400, "Remarks"),
        ({"ResultURL": "/callbacks/abc"}, 400, "ResultURL"),
        ({"QueueTimeOutURL": "ftp://example.org/x"}, 400, "QueueTimeOutURL"),
        ({}, 200, None),
        ({"CommandID": "SalaryPayment", "Amount": "10", "PartyB": 254112345678}, 200, None),
    ],
)
async def test_simulator_checks_b2c_payments_as_daraja_does(
    daraja: Daraja, changes: dict[str, Any], status: int, field: str | None
) -> None:
    sent = b2c_body(**changes)
    async with httpx.AsyncClient(base_url=daraja.base_url) as client:
        bearer = {"Authorization": f"Bearer {await token(daraja, client)}"}
        response = await client.post(B2C, json=sent, headers=bearer)
    assert response.status_code == status
    body = response.json()
    if field is None:
        assert body["ResponseCode"] == "0"
        assert body["OriginatorConversationID"] == sent["OriginatorConversationID"]
        assert body["ConversationID"].startswith("AG_")
    else:
        assert (body["errorCode"], body["errorMessage"]) == (
            "400.002.02",
            f"Bad Request - Invalid {field}",
        )
        assert daraja.simulator.payouts == []


async def test_simulator_b2c_needs_a_bearer_token(daraja: Daraja) -> None:
    async with httpx.AsyncClient(base_url=daraja.base_url) as client:
        response = await client.post(B2C, json=b2c_body())
    assert (response.status_code, response.json()["errorCode"]) == (404, "404.001.04")


def status_body(**changes: Any) -> dict[str, Any]:
    return {
        "Initiator": "boxoffice-api",
        "SecurityCredential": "sim-mpesa-security-credential",
        "CommandID": "TransactionStatusQuery",
        "OriginatorConversationID": str(uuid.uuid4()),
        "PartyA": "174379",
        "IdentifierType": "4",
        "ResultURL": "https://example.org/callbacks/abc",
        "QueueTimeOutURL": "https://example.org/callbacks/abc",
        "Remarks": "Refund status",
        "Occasion": STATUS_OCCASION,
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"Initiator": ""}, 400, "Initiator"),
        ({"SecurityCredential": None}, 400, "SecurityCredential"),
        ({"CommandID": "TransactionReversal"}, 400, "CommandID"),
        ({"OriginatorConversationID": ""}, 400, "TransactionID"),
        ({"PartyA": "600999"}, 400, "PartyA"),
        ({"IdentifierType": "1"}, 400, "IdentifierType"),
        ({"Remarks": ""}, 400, "Remarks"),
        ({"ResultURL": "/callbacks/abc"}, 400, "ResultURL"),
        ({"QueueTimeOutURL": "example.org/x"}, 400, "QueueTimeOutURL"),
        ({}, 200, None),
        (
            {"OriginatorConversationID": "", "TransactionID": "LGR919G2AV", "PartyA": 174379},
            200,
            None,
        ),
    ],
)
async def test_simulator_checks_status_queries_as_daraja_does(
    daraja: Daraja, changes: dict[str, Any], status: int, field: str | None
) -> None:
    async with httpx.AsyncClient(base_url=daraja.base_url) as client:
        bearer = {"Authorization": f"Bearer {await token(daraja, client)}"}
        response = await client.post(STATUS, json=status_body(**changes), headers=bearer)
        unauthorised = await client.post(STATUS, json=status_body())
    assert response.status_code == status
    body = response.json()
    if field is None:
        assert body["ResponseCode"] == "0"
        assert body["ConversationID"].startswith("AG_")
        assert [len(part) for part in body["OriginatorConversationID"].split("-")] == [5, 8, 1]
    else:
        assert (body["errorCode"], body["errorMessage"]) == (
            "400.002.02",
            f"Bad Request - Invalid {field}",
        )
        assert daraja.simulator.status_queries == []
    assert (unauthorised.status_code, unauthorised.json()["errorCode"]) == (404, "404.001.04")


async def test_simulator_finds_payouts_and_payments_by_their_receipts(daraja: Daraja) -> None:
    payment = await daraja.pay()
    receipt = metadata(daraja.received.pop())["MpesaReceiptNumber"]
    done = await daraja.refunded(make_refund(payment, amount_cents=PRICE - 50_000), payment)
    assert done.status == RefundStatus.SUCCESSFUL
    payout_receipt = daraja.received.pop()["Result"]["TransactionID"]
    url = f"{daraja.hooks_url}/callbacks/{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=daraja.base_url) as client:
        bearer = {"Authorization": f"Bearer {await token(daraja, client)}"}
        for transaction_id in (receipt, payout_receipt):
            query = status_body(
                OriginatorConversationID="", TransactionID=transaction_id, ResultURL=url
            )
            assert (await client.post(STATUS, json=query, headers=bearer)).status_code == 200
    await daraja.simulator.drain()
    found = [parse_status_result(body) for body in daraja.received]
    assert [(r.transaction_status, r.receipt) for r in found if r is not None] == [
        ("Completed", receipt),
        ("Completed", payout_receipt),
    ]
    assert [r.amount for r in found if r is not None] == [1500, 1000]
