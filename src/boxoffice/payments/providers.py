"""The provider protocol every way of paying implements, and the `free` provider.

A provider starts a payment, tells its status, and refunds. Remote providers (MoMo,
M-Pesa) answer `pending` from start() and settle later, through a callback that only
prompts us to re-read the status, or through the reconciliation job's polling. `instant`
providers settle inside start() without I/O, so the booking transaction can confirm at once.

A provider raises ProviderUnavailable when it cannot be reached or answers 5xx, and
ProviderRejected when it refuses the request itself (bad phone, merchant misconfigured);
a refused or failed payment is otherwise an Outcome with status FAILED and a reason.
"""

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from boxoffice.payments.errors import UnsupportedPaymentMethod
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a provider says of a payment. `reference` is the provider's id of it (MoMo's
    X-Reference-Id, Daraja's CheckoutRequestID); `transaction_id` its receipt once paid."""

    status: PaymentStatus
    reference: str | None = None
    transaction_id: str | None = None
    failure_reason: str | None = None
    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    status: RefundStatus
    reference: str | None = None
    failure_reason: str | None = None


class PaymentProvider(Protocol):
    name: str
    instant: bool

    def check(self, *, phone: str | None, currency: str, amount_cents: int) -> None:
        """Raise UnsupportedPaymentMethod for a phone, currency or amount it cannot take,
        before any call to the provider."""

    def new_reference(self) -> str | None:
        """The reference to store on a payment or refund before the provider is called
        (MoMo: a UUID4 X-Reference-Id), or None when the provider assigns its own."""

    async def start(self, payment: Payment, *, callback_url: str | None) -> Outcome:
        """Ask the payer to pay `payment.amount_cents` (minor units of `payment.currency`)
        from `payment.payer_phone` (E.164); the provider will notify `callback_url`."""

    async def status(self, payment: Payment, *, callback: Any = None) -> Outcome:
        """Re-read the payment's status from the provider. `callback` is the parsed body
        of a callback that prompted the call: it is never trusted for the status, only for
        details the status API does not return (Daraja's receipt number)."""

    async def refund(
        self,
        refund: Refund,
        payment: Payment,
        *,
        callback_url: str | None,
        callback: Any = None,
    ) -> RefundOutcome:
        """Send the refund, or, when `refund.provider_reference` shows it was sent, read
        its result (from the provider, or from `callback` where the provider has no status
        API: Daraja's reversal result)."""


class FreeProvider:
    """Bookings that cost nothing: successful at once, nothing to refund."""

    name = "free"
    instant = True

    def check(self, *, phone: str | None, currency: str, amount_cents: int) -> None:
        if amount_cents != 0:
            raise UnsupportedPaymentMethod("Only bookings that cost nothing are free.")

    def new_reference(self) -> str | None:
        return None

    async def start(self, payment: Payment, *, callback_url: str | None = None) -> Outcome:
        return Outcome(PaymentStatus.SUCCESSFUL, reference=f"free-{payment.id}")

    async def status(self, payment: Payment, *, callback: Any = None) -> Outcome:
        return Outcome(PaymentStatus.SUCCESSFUL, reference=payment.provider_reference)

    async def refund(
        self,
        refund: Refund,
        payment: Payment,
        *,
        callback_url: str | None = None,
        callback: Any = None,
    ) -> RefundOutcome:
        return RefundOutcome(RefundStatus.SUCCESSFUL)


@dataclass(frozen=True)
class CallbackUrls:
    """Where providers report on a payment or a refund: `{base}/api/v1/payments/callbacks/
    {token}`, the token an HMAC of the record's id under the deployment's secret, so it can
    be rebuilt at any time and is never stored: the database keeps only its SHA-256."""

    secret: str
    base_url: str | None  # None: this deployment cannot be called back; polling settles

    def token(self, kind: str, record_id: uuid.UUID) -> str:
        # Hex has no letters past f: no provider's name nor any word Daraja refuses in
        # callback URLs (payment-providers.md §2.7) can appear in it.
        message = f"{kind}:{record_id}".encode()
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()[:48]

    def url(self, kind: str, record_id: uuid.UUID) -> str | None:
        if self.base_url is None:
            return None
        return (
            f"{self.base_url.rstrip('/')}/api/v1/payments/callbacks/{self.token(kind, record_id)}"
        )

    def digest_for(self, kind: str, record_id: uuid.UUID) -> str:
        return digest(self.token(kind, record_id))


def digest(token: str) -> str:
    """What the database keeps of a callback token, and looks a token up by."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Providers:
    """The providers this deployment can use, by name, and where they call back."""

    by_name: dict[str, PaymentProvider] = field(default_factory=dict)
    callbacks: CallbackUrls | None = None

    def __post_init__(self) -> None:
        self.by_name.setdefault("free", FreeProvider())

    def register(self, provider: PaymentProvider) -> None:
        self.by_name[provider.name] = provider

    def get(self, name: str) -> PaymentProvider:
        provider = self.by_name.get(name)
        if provider is None:
            raise UnsupportedPaymentMethod(f"Payment by {name} is not available here.")
        return provider

    def callback_url(self, kind: str, record_id: uuid.UUID) -> str | None:
        return None if self.callbacks is None else self.callbacks.url(kind, record_id)

    def callback_digest(self, kind: str, record_id: uuid.UUID) -> str | None:
        return None if self.callbacks is None else self.callbacks.digest_for(kind, record_id)

    async def aclose(self) -> None:
        for provider in self.by_name.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
