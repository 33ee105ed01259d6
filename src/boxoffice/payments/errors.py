from boxoffice.errors import Conflict, DomainError, Invalid, NotFound


class PaymentRequired(Invalid):
    code, title = "payment_required", "These tickets must be paid for"


class UnsupportedPaymentMethod(Invalid):
    code, title = "unsupported_payment_method", "This payment method cannot be used here"


class PaymentNotFound(NotFound):
    title = "Payment not found"


class PaymentInProgress(Conflict):
    code, title = "payment_in_progress", "A payment attempt is still waiting for the payer"


class BookingNotPayable(Conflict):
    code, title = "booking_not_payable", "This booking is not waiting for a payment"


class PaymentProviderUnavailable(DomainError):
    """The provider could not be reached to start an attempt. The booking stands, with its
    seats held: the fan retries with POST /bookings/{id}/payments (the problem names it)."""

    status, code, title = 503, "payment_provider_unavailable", "The payment provider is unavailable"
    retry_after = 10


class ProviderError(Exception):
    """A payment provider did not do what was asked (not a DomainError: callers decide)."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class ProviderUnavailable(ProviderError):
    """Unreachable, timing out, answering 5xx, or the circuit is open.

    `definitive` says the request certainly did not take effect (refused connection,
    circuit open, a 5xx answer); a timeout after sending is not definitive, so a payment
    it started stays pending for reconciliation to settle.
    """

    def __init__(self, provider: str, message: str, *, definitive: bool = True) -> None:
        super().__init__(provider, message)
        self.definitive = definitive


class ProviderRejected(ProviderError):
    """The provider refused the request itself; `reason` becomes the failure_reason."""

    def __init__(self, provider: str, message: str, *, reason: str) -> None:
        super().__init__(provider, message)
        self.reason = reason
