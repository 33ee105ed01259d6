"""MoMo as a PaymentProvider: a prompt on the payer's phone, settled later.

MoMo's callback carries no reference and no signature, so it is only a prompt to re-read
the status: `status()` ignores its body, MoMo's status API has everything.
"""

import re
import uuid
from typing import Any

import httpx

from boxoffice.config import Settings
from boxoffice.payments.errors import ProviderRejected, UnsupportedPaymentMethod
from boxoffice.payments.http import ProviderHTTP
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from boxoffice.payments.momo.client import (
    PROVIDER,
    MomoClient,
    MomoStatus,
    ReferenceNotFound,
    failure_reason,
)
from boxoffice.payments.money import exponent, is_whole, to_major
from boxoffice.payments.providers import Outcome, RefundOutcome

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SANDBOX_CURRENCY = "EUR"
# The failure_reason of a payment MoMo has never heard of: our request did not reach it.
NOT_RECEIVED = "not_received"


def major_amount(amount_minor: int, currency: str) -> str:
    """MoMo's string amount: "100" for a whole amount (as in MTN's examples), else the
    exact major amount with its minor digits ("10.50")."""
    if is_whole(amount_minor, currency):
        return str(amount_minor // 10 ** exponent(currency))
    return str(to_major(amount_minor, currency))


def note(text: str) -> str:
    """A payerMessage or payeeNote MoMo accepts: ≤ 160 characters, no ' or & (400)."""
    return text.replace("'", "").replace("&", "and")[:160]


class MomoProvider:
    """MTN MoMo Collection, with refunds through Disbursement.

    `any_currency` lifts the sandbox's EUR-only rule, for our simulator run with
    `simulator_momo_any_currency`: the real sandbox refuses any other currency.
    """

    name = PROVIDER
    instant = False

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
        any_currency: bool = False,
    ) -> None:
        http = ProviderHTTP(
            PROVIDER, base_url, timeout=settings.provider_timeout, transport=transport
        )
        self.client = MomoClient(settings, http)
        self._eur_only = settings.momo_target_environment == "sandbox" and not any_currency

    async def aclose(self) -> None:
        await self.client.aclose()

    def check(self, *, phone: str | None, currency: str, amount_cents: int) -> None:
        if phone is None or not E164.match(phone):
            raise UnsupportedPaymentMethod("MoMo needs the payer's phone number.")
        if self._eur_only and currency != SANDBOX_CURRENCY:
            raise UnsupportedPaymentMethod("The MoMo sandbox takes payments in EUR only.")
        if amount_cents <= 0:
            raise UnsupportedPaymentMethod("MoMo cannot take a payment of nothing.")

    def new_reference(self) -> str:
        return str(uuid.uuid4())

    async def start(self, payment: Payment, *, callback_url: str | None) -> Outcome:
        reference = _reference(payment.provider_reference)
        phone = payment.payer_phone or ""
        amount = major_amount(payment.amount_cents, payment.currency)
        await self.client.request_to_pay(
            reference,
            amount=amount,
            currency=payment.currency,
            msisdn=phone.removeprefix("+"),
            external_id=str(payment.booking_id),
            callback_url=callback_url,
            payer_message=note(f"Tickets, booking {str(payment.booking_id)[:8]}"),
            payee_note=note(f"Booking {payment.booking_id}"),
        )
        return Outcome(
            PaymentStatus.PENDING,
            reference=reference,
            instructions=(
                f"Approve the payment of {amount} {payment.currency} on your phone "
                f"({phone[:4]}…{phone[-3:]})."
            ),
        )

    async def status(self, payment: Payment, *, callback: Any = None) -> Outcome:
        reference = _reference(payment.provider_reference)
        try:
            status = await self.client.get_status(reference)
        except ReferenceNotFound:
            return Outcome(PaymentStatus.FAILED, reference=reference, failure_reason=NOT_RECEIVED)
        if status.status == "SUCCESSFUL":
            return Outcome(
                PaymentStatus.SUCCESSFUL,
                reference=reference,
                transaction_id=status.financial_transaction_id,
            )
        if status.status == "FAILED":
            reason = failure_reason(status.reason)
            return Outcome(PaymentStatus.FAILED, reference=reference, failure_reason=reason)
        return Outcome(PaymentStatus.PENDING, reference=reference)

    async def refund(
        self,
        refund: Refund,
        payment: Payment,
        *,
        callback_url: str | None,
        callback: Any = None,
    ) -> RefundOutcome:
        """Read the refund's state; send it first when MoMo does not know it yet. Either
        way the same stored reference goes out, so a refund is never sent twice."""
        reference = _reference(refund.provider_reference)
        try:
            status = await self.client.get_refund_status(reference)
        except ReferenceNotFound:
            try:
                await self._send_refund(reference, refund, payment, callback_url)
            except ProviderRejected as exc:
                return RefundOutcome(RefundStatus.FAILED, reference, failure_reason=exc.reason)
            status = await self.client.get_refund_status(reference)
        return _refund_outcome(reference, status)

    async def _send_refund(
        self, reference: str, refund: Refund, payment: Payment, callback_url: str | None
    ) -> None:
        await self.client.refund(
            reference,
            reference_to_refund=_reference(payment.provider_reference),
            amount=major_amount(refund.amount_cents, payment.currency),
            currency=payment.currency,
            external_id=str(refund.id),
            callback_url=callback_url,
            payer_message=note(f"Refund, booking {str(payment.booking_id)[:8]}"),
            payee_note=note(f"Refund {refund.id} of booking {payment.booking_id}"),
        )


def _reference(reference: str | None) -> str:
    """The X-Reference-Id the caller stored (new_reference()) before calling MoMo."""
    if reference is None:
        raise ValueError("store new_reference() as provider_reference before calling MoMo")
    return reference


def _refund_outcome(reference: str, status: MomoStatus) -> RefundOutcome:
    if status.status == "SUCCESSFUL":
        return RefundOutcome(RefundStatus.SUCCESSFUL, reference)
    if status.status == "FAILED":
        return RefundOutcome(RefundStatus.FAILED, reference, failure_reason(status.reason))
    return RefundOutcome(RefundStatus.PENDING, reference)
