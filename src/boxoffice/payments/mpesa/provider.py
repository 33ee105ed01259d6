"""M-Pesa as a PaymentProvider: an STK push the payer answers with their PIN on the
phone, its result read back by STK Push Query, and refunds by reversal or B2C payment.

Daraja's query never returns the M-Pesa receipt; only the callback does, so the receipt
is taken from a callback whose CheckoutRequestID is the payment's, once the query agrees
the payment succeeded. A reversal needs that receipt and returns the whole payment; any
other refund (a partial one, or of a payment settled by the query alone) is paid to the
payer's phone by B2C. Both report only asynchronously, as a `{"Result": …}` body POSTed
to the refund's callback URL. That one POST may be lost, so every later look at a refund
sent asks Daraja's Transaction Status API about it, by the OriginatorConversationID that
names it (ours for B2C, Daraja's for a reversal), and the answer comes to the same URL.
Nothing here ever sends a refund twice: a transaction M-Pesa does not find may still be
on its way, so it only keeps the refund pending.
"""

import re
import uuid
from decimal import Decimal
from typing import Any

import httpx
import structlog

from boxoffice.config import Settings
from boxoffice.payments.errors import ProviderRejected, UnsupportedPaymentMethod
from boxoffice.payments.http import mask_phone
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from boxoffice.payments.money import is_whole, to_major
from boxoffice.payments.mpesa.callbacks import (
    STATUS_OCCASION,
    RefundResult,
    StatusResult,
    parse_refund_result,
    parse_status_result,
    parse_stk_callback,
)
from boxoffice.payments.mpesa.client import B2C_MINIMUM, PROVIDER, DarajaClient, failure_reason
from boxoffice.payments.providers import Outcome, RefundOutcome

log = structlog.get_logger("boxoffice.payments.mpesa")

KENYAN_MOBILE = re.compile(r"254[17]\d{8}")
DESCRIPTION = "Tickets"  # TransactionDesc: 13 characters at most
# Refund ResultCode → failure_reason. The initiator errors (§2.10) and a balance too low
# (1: the money comes from our account) are ours; 2040 (integrators' reports) is a B2C
# payee M-Pesa will not pay. Any other code: provider_error.
REFUND_FAILURE_REASONS = {
    "1": "merchant_error",
    "18": "merchant_error",
    "21": "merchant_error",
    "2001": "merchant_error",
    "8006": "merchant_error",
    "2040": "payer_not_found",
}
# TransactionStatus values of a transaction that moved no money and never will. "Completed"
# is success; any other (one still under way, or a word we do not know) leaves it pending.
FAILED_STATUSES = {"failed", "cancelled", "declined", "expired"}


def daraja_phone(phone: str | None) -> str | None:
    """`+254 712 345 678`, `254712345678` or `0712345678` → `254712345678`, the form
    Daraja wants; None for anything but a Kenyan mobile number."""
    digits = re.sub(r"[\s()-]", "", phone or "").removeprefix("+")
    if digits.startswith("0") and len(digits) == 10:
        digits = "254" + digits[1:]
    return digits if KENYAN_MOBILE.fullmatch(digits) else None


def account_reference(payment: Payment) -> str:
    """What the payer sees on the prompt and their statement as the account number:
    alphanumeric, 12 characters at most, so the first 12 hex digits of the booking id."""
    return payment.booking_id.hex[:12].upper()


class MpesaProvider:
    name = PROVIDER
    instant = False

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.client = DarajaClient(settings, base_url=base_url, transport=transport)

    async def aclose(self) -> None:
        await self.client.aclose()

    def check(self, *, phone: str | None, currency: str, amount_cents: int) -> None:
        if currency.upper() != "KES":
            raise UnsupportedPaymentMethod("M-Pesa takes payments in Kenyan shillings (KES) only.")
        if daraja_phone(phone) is None:
            raise UnsupportedPaymentMethod(
                "M-Pesa needs a Kenyan mobile number starting +2547 or +2541."
            )
        if not is_whole(amount_cents, "KES"):
            raise UnsupportedPaymentMethod(
                "M-Pesa takes whole shillings only, and this total has cents."
            )
        if amount_cents < 100:
            raise UnsupportedPaymentMethod("M-Pesa takes payments of KES 1 or more.")

    def new_reference(self) -> str | None:
        return None  # Daraja names the payment (CheckoutRequestID) when it accepts the push

    async def start(self, payment: Payment, *, callback_url: str | None) -> Outcome:
        self.check(
            phone=payment.payer_phone, currency=payment.currency, amount_cents=payment.amount_cents
        )
        phone = daraja_phone(payment.payer_phone)
        assert phone is not None  # check() refused anything else
        amount = int(to_major(payment.amount_cents, "KES"))
        accepted = await self.client.stk_push(
            amount=amount,
            phone=phone,
            account_reference=account_reference(payment),
            description=DESCRIPTION,
            callback_url=_required(callback_url),
        )
        log.info(
            "mpesa.push_sent",
            payment_id=str(payment.id),
            reference=accepted.checkout_request_id,
            phone=mask_phone(phone),
        )
        return Outcome(
            PaymentStatus.PENDING,
            reference=accepted.checkout_request_id,
            instructions=(
                f"Enter your M-Pesa PIN on your phone (…{phone[-3:]}) to pay KES {amount:,}."
            ),
        )

    async def status(self, payment: Payment, *, callback: Any = None) -> Outcome:
        """The query's word on the payment; the receipt from `callback` (Daraja's POSTed
        body) when it names this payment and says it was paid. A push whose answer was
        lost (no reference stored) is found through the callback's CheckoutRequestID:
        the callback URL's secret already ties that callback to this payment."""
        parsed = parse_stk_callback(callback) if callback is not None else None
        reference = payment.provider_reference or (parsed.checkout_request_id if parsed else None)
        if not reference:
            return Outcome(PaymentStatus.PENDING)
        result = await self.client.stk_query(reference)
        if result.result_code is None:
            return Outcome(PaymentStatus.PENDING, reference=reference)
        if result.result_code == 0:
            receipt = None
            if parsed and parsed.checkout_request_id == reference and parsed.result_code == 0:
                receipt = _receipt(payment, parsed.receipt, parsed.amount)
            return Outcome(PaymentStatus.SUCCESSFUL, reference=reference, transaction_id=receipt)
        reason = failure_reason(result.result_code)
        log.info(
            "mpesa.payment_failed",
            payment_id=str(payment.id),
            reference=reference,
            result_code=result.result_code,
            result_desc=result.description,
            failure_reason=reason,
        )
        return Outcome(PaymentStatus.FAILED, reference=reference, failure_reason=reason)

    async def refund(
        self,
        refund: Refund,
        payment: Payment,
        *,
        callback_url: str | None,
        callback: Any = None,
    ) -> RefundOutcome:
        """Send the refund once (no reference yet, no callback in hand); afterwards ask
        how it went, the answer coming as a `callback` like the refund's own result. The
        whole of a payment whose receipt we hold is reversed; anything else is paid back
        to the payer's phone by B2C."""
        if callback is not None:
            return self._result(refund, callback)
        if refund.provider_reference is not None:
            return await self._ask(refund, callback_url)
        if payment.provider_transaction_id and refund.amount_cents == payment.amount_cents:
            return await self._reverse(
                refund, payment, payment.provider_transaction_id, callback_url
            )
        return await self._pay_back(refund, payment, callback_url)

    async def _reverse(
        self, refund: Refund, payment: Payment, receipt: str, callback_url: str | None
    ) -> RefundOutcome:
        """Reversal, named by the OriginatorConversationID Daraja gives it: the id a
        Transaction Status query takes (the ConversationID is not)."""
        url = _required(callback_url)
        accepted = await self.client.reverse(
            transaction_id=receipt,
            amount=int(to_major(payment.amount_cents, "KES")),
            result_url=url,
            timeout_url=url,
            remarks=_remarks(refund),
        )
        log.info(
            "mpesa.reversal_sent",
            refund_id=str(refund.id),
            reference=accepted.originator_conversation_id,
            conversation_id=accepted.conversation_id,
        )
        return RefundOutcome(RefundStatus.PENDING, reference=accepted.originator_conversation_id)

    async def _pay_back(
        self, refund: Refund, payment: Payment, callback_url: str | None
    ) -> RefundOutcome:
        """B2C to the phone that paid, named by our own OriginatorConversationID: the
        refund's id, known before the call, so a result whose answer was lost (or that
        arrives before the reference is stored) still names this refund. A refund B2C
        cannot carry fails at once, nothing sent."""
        phone = daraja_phone(payment.payer_phone)
        refusal = "payer_not_found" if phone is None else _b2c_refusal(refund, payment)
        if phone is None or refusal is not None:
            log.warning(
                "mpesa.refund_unsendable",
                refund_id=str(refund.id),
                amount_cents=refund.amount_cents,
                failure_reason=refusal,
            )
            return RefundOutcome(RefundStatus.FAILED, failure_reason=refusal)
        url = _required(callback_url)
        reference = str(refund.id)
        accepted = await self.client.b2c_payment(
            originator_conversation_id=reference,
            amount=int(to_major(refund.amount_cents, "KES")),
            phone=phone,
            remarks=_remarks(refund),
            occasion=account_reference(payment),
            result_url=url,
            timeout_url=url,
        )
        log.info(
            "mpesa.b2c_sent",
            refund_id=str(refund.id),
            reference=reference,
            conversation_id=accepted.conversation_id,
            phone=mask_phone(phone),
        )
        return RefundOutcome(RefundStatus.PENDING, reference=reference)

    async def _ask(self, refund: Refund, callback_url: str | None) -> RefundOutcome:
        """Ask Daraja how the refund sent under the stored reference went, the answer to
        come to the refund's URL. A reference that is our refund's id is a B2C's (or a
        reversal whose answer was lost: M-Pesa knows no such id then, and it waits for
        its own result)."""
        reference = refund.provider_reference
        assert reference is not None
        accepted = await self.client.transaction_status(
            originator_conversation_id=reference,
            result_url=_required(callback_url),
            remarks=_remarks(refund),
            occasion=STATUS_OCCASION,
        )
        log.info(
            "mpesa.refund_status_asked",
            refund_id=str(refund.id),
            reference=reference,
            conversation_id=accepted.conversation_id,
        )
        return RefundOutcome(RefundStatus.PENDING, reference=reference)

    def _result(self, refund: Refund, callback: Any) -> RefundOutcome:
        """The refund's result, from a `callback` that names it (see `_reference_in`), or
        what a status query says of it."""
        status = parse_status_result(callback)
        if status is not None:
            return _status_outcome(refund, status)
        result = parse_refund_result(callback)
        reference = _reference_in(refund, result) if result is not None else None
        if result is None or reference is None:
            return RefundOutcome(RefundStatus.PENDING, reference=refund.provider_reference)
        if result.succeeded:
            _check_amount(refund, result.amount)
            log.info(
                "mpesa.refund_paid",
                refund_id=str(refund.id),
                reference=reference,
                transaction_id=result.transaction_id,
            )
            return RefundOutcome(RefundStatus.SUCCESSFUL, reference=reference)
        reason = REFUND_FAILURE_REASONS.get(result.result_code, "provider_error")
        log.warning(
            "mpesa.refund_failed",
            refund_id=str(refund.id),
            reference=reference,
            result_code=result.result_code,
            result_desc=result.result_desc,
            failure_reason=reason,
        )
        return RefundOutcome(RefundStatus.FAILED, reference=reference, failure_reason=reason)


def _reference_in(refund: Refund, result: RefundResult) -> str | None:
    """The refund's reference as `result` names it, or None when it names another
    refund: a B2C result carries our OriginatorConversationID, the refund's id; a
    reversal result the OriginatorConversationID we stored. One that arrives before any
    reference was stored, or after the request's answer was lost, is taken too (a
    reversal's): the callback URL's secret names this refund."""
    stored = refund.provider_reference
    originator = result.originator_conversation_id
    if originator is not None and originator in (str(refund.id), stored):
        return originator
    # None, or our own id: a reversal whose ids we never learnt (the answer to the
    # request was lost, and run_refund marked it sent so that it is not sent twice).
    # Daraja names reversals itself; a UUID there is a B2C result of another refund.
    if stored in (None, str(refund.id)) and not _is_uuid(originator):
        return originator or result.conversation_id
    return None


def _status_outcome(refund: Refund, status: StatusResult) -> RefundOutcome:
    """What a Transaction Status result says of the refund: paid when M-Pesa completed
    the transaction that bears the refund's OriginatorConversationID, failed when it
    says that transaction failed; anything else (not found, not ours, still under way,
    a query Daraja refused) leaves it pending, for the next retry to ask again. A
    transaction not found may be one Daraja never received, but it may also be one still
    queued, so the refund is never sent again on that word."""
    reference = refund.provider_reference
    pending = RefundOutcome(RefundStatus.PENDING, reference=reference)
    word = (status.transaction_status or "").lower()
    context = {
        "refund_id": str(refund.id),
        "reference": reference,
        "result_code": status.result_code,
        "result_desc": status.result_desc,
        "transaction_status": status.transaction_status,
    }
    named = status.originator_conversation_id
    if not status.found or named is None or named not in (str(refund.id), reference):
        log.warning("mpesa.refund_status_unknown", **context)
        return pending
    if word == "completed":
        _check_amount(refund, status.amount)
        log.info("mpesa.refund_paid", **context, transaction_id=status.receipt)
        return RefundOutcome(RefundStatus.SUCCESSFUL, reference=named)
    if word in FAILED_STATUSES:
        log.warning("mpesa.refund_failed", **context, failure_reason="failed")
        return RefundOutcome(RefundStatus.FAILED, reference=named, failure_reason="failed")
    log.info("mpesa.refund_status_pending", **context)
    return pending


def _is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(value or "")
    except ValueError:
        return False
    return True


def _b2c_refusal(refund: Refund, payment: Payment) -> str | None:
    """Why B2C cannot pay this refund back, or None. check() kept payments in fractions
    of a shilling out, so these guard against a refund computed wrong, and against one
    below what B2C pays (a partial refund of a cheap booking)."""
    if refund.amount_cents > payment.amount_cents:
        return "refund_exceeds_payment"
    if not is_whole(refund.amount_cents, "KES"):
        return "refund_has_cents"
    if to_major(refund.amount_cents, "KES") < B2C_MINIMUM:
        return "below_b2c_minimum"
    return None


def _check_amount(refund: Refund, amount: Decimal | None) -> None:
    """A paid refund stays paid; an amount that is not the refund's is for people to see."""
    if amount is not None and amount != to_major(refund.amount_cents, "KES"):
        log.warning(
            "mpesa.refund_amount_mismatch",
            refund_id=str(refund.id),
            amount_cents=refund.amount_cents,
            reported=str(amount),
        )


def _remarks(refund: Refund) -> str:
    return f"Refund {refund.reason}"[:100]


def _required(callback_url: str | None) -> str:
    """Daraja insists on a URL to report to; without one this deployment is misconfigured."""
    if not callback_url:
        raise ProviderRejected(
            PROVIDER,
            "Daraja needs a callback URL: set BOXOFFICE_PAYMENT_CALLBACK_URL "
            "or BOXOFFICE_PUBLIC_URL",
            reason="merchant_error",
        )
    return callback_url


def _receipt(payment: Payment, receipt: str | None, amount: Decimal | None) -> str | None:
    """The callback's receipt, unless the amount it reports is not the payment's."""
    if amount is not None and amount != to_major(payment.amount_cents, "KES"):
        log.warning("mpesa.callback_amount_mismatch", payment_id=str(payment.id))
        return None
    return receipt
