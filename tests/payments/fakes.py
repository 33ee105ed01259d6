"""A stand-in for a mobile-money provider, for tests about selling rather than paying."""

import uuid
from typing import Any

from boxoffice.payments.errors import UnsupportedPaymentMethod
from boxoffice.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from boxoffice.payments.providers import Outcome, Providers, RefundOutcome
from boxoffice.payments.setup import Payments

INSTRUCTIONS = "Approve the payment on your phone (*165#)."


class PendingProvider:
    """Answers later (not instant), as MoMo does; records the attempts it was asked for."""

    name = "momo"
    instant = False

    def __init__(self) -> None:
        self.started: list[uuid.UUID] = []

    def check(self, *, phone: str | None, currency: str, amount_cents: int) -> None:
        if phone is None:
            raise UnsupportedPaymentMethod("MoMo needs a phone number.")

    def new_reference(self) -> str | None:
        return None

    async def start(self, payment: Payment, *, callback_url: str | None = None) -> Outcome:
        self.started.append(payment.id)
        return Outcome(
            PaymentStatus.PENDING, reference=f"momo-{payment.id}", instructions=INSTRUCTIONS
        )

    async def status(self, payment: Payment, *, callback: Any = None) -> Outcome:
        return Outcome(PaymentStatus.PENDING, reference=payment.provider_reference)

    async def refund(
        self,
        refund: Refund,
        payment: Payment,
        *,
        callback_url: str | None = None,
        callback: Any = None,
    ) -> RefundOutcome:
        return RefundOutcome(RefundStatus.SUCCESSFUL)


def providers_with(*providers: Any) -> Providers:
    registry = Providers()
    for provider in providers:
        registry.register(provider)
    return registry


def use_providers(app: Any, *providers: Any) -> None:
    """Give this app its own providers: the deployment's stay untouched."""
    app.state.payments = Payments(providers=providers_with(*providers))
