"""MTN MoMo Open API: Collection (RequestToPay) and Disbursement refunds
(payment-providers.md §1)."""

from boxoffice.payments.momo.provider import MomoProvider

__all__ = ["MomoProvider"]
