from boxoffice.errors import Conflict, Invalid, NotFound


class BookingNotFound(NotFound):
    title = "Booking not found"


class CancellationClosed(Conflict):
    code, title = "cancellation_closed", "It is too late to cancel"


class NotCancellable(Conflict):
    code, title = "not_cancellable", "This booking cannot be cancelled"


class IdempotencyKeyReused(Invalid):
    code, title = "idempotency_key_reused", "This Idempotency-Key was used for another request"
