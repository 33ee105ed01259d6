"""Periodic jobs: what runs on its own, and how often."""

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Periodic:
    kind: str
    every: timedelta


SCHEDULE = (
    Periodic("orders.expire_holds", timedelta(seconds=5)),  # API.md: at least every 5 s
    Periodic("payments.reconcile", timedelta(seconds=10)),  # lost callbacks, stale attempts
    Periodic("payments.audit", timedelta(hours=1)),  # refunds and payments needing a person
    Periodic("inventory.audit", timedelta(minutes=10)),
    Periodic("orders.purge_idempotency_keys", timedelta(hours=1)),
    Periodic("accounts.purge_expired_tokens", timedelta(hours=1)),
    Periodic("worker.purge_finished_jobs", timedelta(hours=6)),
)
