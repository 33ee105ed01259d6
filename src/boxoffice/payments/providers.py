"""The provider protocol every way of paying implements, and the `free` provider.

A provider starts a payment, tells its status, and refunds. Remote providers (MoMo,
M-Pesa) answer `pending` from start() and settle later through a callback or a status
poll; `instant` providers settle inside start() without I/O, so the booking transaction
can confirm at once.
"""

import secrets
from dataclasses import dataclass, field
from typing import Protocol

from boxoffice.payments.errors import UnsupportedPaymentMethod
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    status: PaymentStatus
    reference: str | None = None
    transaction_id: str | None = None
    failure_reason: str | None = None
    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    status: RefundStatus
    reference: str | None = None


class PaymentProvider(Protocol):
    name: str
    instant: bool

    def check(self, *, phone: str | None, currency: str, amount_cents: int) -> None:
        """Raise UnsupportedPaymentMethod for a phone, currency or amount it cannot take."""

    async def start(self, payment: Payment) -> Outcome: ...

    async def status(self, payment: Payment) -> Outcome: ...

    async def refund(self, refund: Refund, payment: Payment) -> RefundOutcome: ...


class FreeProvider:
    """Bookings that cost nothing: successful at once, nothing to refund."""

    name = "free"
    instant = True

    def check(self, *, phone: str | None, currency: str, amount_cents: int) -> None:
        if amount_cents != 0:
            raise UnsupportedPaymentMethod("Only bookings that cost nothing are free.")

    async def start(self, payment: Payment) -> Outcome:
        return Outcome(PaymentStatus.SUCCESSFUL, reference=f"free-{payment.id}")

    async def status(self, payment: Payment) -> Outcome:
        return Outcome(PaymentStatus.SUCCESSFUL, reference=payment.provider_reference)

    async def refund(self, refund: Refund, payment: Payment) -> RefundOutcome:
        return RefundOutcome(RefundStatus.SUCCESSFUL)


@dataclass
class Providers:
    """The providers this deployment can use, by name."""

    by_name: dict[str, PaymentProvider] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name.setdefault("free", FreeProvider())

    def register(self, provider: PaymentProvider) -> None:
        self.by_name[provider.name] = provider

    def get(self, name: str) -> PaymentProvider:
        provider = self.by_name.get(name)
        if provider is None:
            raise UnsupportedPaymentMethod(f"Payment by {name} is not available here.")
        return provider


def callback_token() -> str:
    """The per-payment secret in a callback URL: random, and no provider's name in it."""
    return secrets.token_urlsafe(32)


# The deployment's providers, shared by the web process and the worker's refund jobs.
PROVIDERS = Providers()
