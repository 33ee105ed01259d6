"""Prometheus counters of the sale, exposed at /metrics."""

from prometheus_client import Counter

HOLDS = Counter("boxoffice_holds_total", "Hold requests by outcome", ["outcome"])
SEATS_HELD = Counter("boxoffice_seats_held_total", "Seats taken by successful holds")
HOLDS_ENDED = Counter("boxoffice_holds_ended_total", "Holds that ended, by how", ["status"])
BOOKINGS = Counter("boxoffice_bookings_total", "Booking state changes", ["status"])
PAYMENTS = Counter(
    "boxoffice_payments_total", "Payment attempts and their outcomes", ["provider", "outcome"]
)
REFUNDS = Counter("boxoffice_refunds_total", "Refunds started, by reason", ["reason"])
