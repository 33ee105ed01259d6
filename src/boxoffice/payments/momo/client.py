"""The MoMo Open API over HTTP (payment-providers.md §1): a per-product access token,
RequestToPay and its status (Collection), refunds and theirs (Disbursement).

Creating calls carry our own X-Reference-Id, which makes them safe to resend: after a
timeout or a 5xx the same reference goes again, and MoMo's 409 RESOURCE_ALREADY_EXIST
means the first attempt got through.
"""

from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import structlog

from boxoffice.config import Settings
from boxoffice.payments.errors import ProviderError, ProviderRejected, ProviderUnavailable
from boxoffice.payments.http import ProviderHTTP, TokenCache

log = structlog.get_logger("boxoffice.payments.momo")

PROVIDER = "momo"
SUBSCRIPTION_KEY = "Ocp-Apim-Subscription-Key"

# MoMo's reason and error codes (§1.5, §1.8) in our failure_reason vocabulary. A code
# missing here is `provider_error`.
REASONS: dict[str, str] = {
    "APPROVAL_REJECTED": "rejected",
    "TRANSACTION_CANCELED": "rejected",
    "PAYMENT_NOT_APPROVED": "rejected",
    "EXPIRED": "expired",
    "COULD_NOT_PERFORM_TRANSACTION": "expired",
    "NOT_ENOUGH_FUNDS": "insufficient_funds",
    "PAYER_LIMIT_REACHED": "limit_reached",
    "PAYER_NOT_FOUND": "payer_not_found",
    "SENDER_ACCOUNT_NOT_ACTIVE": "payer_not_found",
    "PAYEE_NOT_ALLOWED_TO_RECEIVE": "merchant_error",
    "NOT_ALLOWED": "merchant_error",
    "NOT_ALLOWED_TARGET_ENVIRONMENT": "merchant_error",
    "INVALID_CALLBACK_URL_HOST": "merchant_error",
    "INVALID_CURRENCY": "merchant_error",
    "INTERNAL_PROCESSING_ERROR": "provider_error",
    "RESOURCE_NOT_FOUND": "provider_error",
    "SERVICE_UNAVAILABLE": "provider_unavailable",
}
# Answers that may change if asked again; every other known code is MoMo's final word.
_TRANSIENT_REASONS = frozenset({"provider_error", "provider_unavailable"})


def failure_reason(code: str | None) -> str:
    """Our failure_reason for a FAILED transaction's MoMo reason code (None: none given)."""
    if code is None:
        return "failed"
    return REASONS.get(code, "provider_error")


def error_code(response: httpx.Response) -> str | None:
    """The code of a MoMo error body: `code`, or `status` as some emulators say (§1.7)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    code = body.get("code") or body.get("status")
    return code if isinstance(code, str) else None


def is_transient(response: httpx.Response) -> bool:
    """Whether a 5xx is worth retrying: MoMo answers business refusals (NOT_ALLOWED,
    PAYER_NOT_FOUND…) with a 500 too, and those stay refused however often we ask."""
    return REASONS.get(error_code(response) or "", "provider_error") in _TRANSIENT_REASONS


class ReferenceNotFound(ProviderError):
    """MoMo has no transaction with this reference (404): our request never reached it."""


@dataclass(frozen=True, slots=True)
class MomoStatus:
    """A RequestToPay's or a refund's state: PENDING (also any status MoMo may add),
    SUCCESSFUL or FAILED, with MoMo's reason code and its transaction id once paid."""

    status: str
    reason: str | None = None
    financial_transaction_id: str | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> "MomoStatus":
        raw = str(body.get("status", "")).upper()
        status = raw if raw in {"SUCCESSFUL", "FAILED"} else "PENDING"
        reason = body.get("reason")
        if isinstance(reason, dict):  # the spec's shape; the live API often sends a string
            reason = reason.get("code")
        transaction_id = body.get("financialTransactionId")
        return cls(
            status,
            str(reason) if reason else None,
            str(transaction_id) if transaction_id else None,
        )


class MomoClient:
    """One deployment's MoMo credentials over one ProviderHTTP. Tokens are cached per
    product; an API call answered 401 is retried once with a fresh token."""

    def __init__(self, settings: Settings, http: ProviderHTTP) -> None:
        self.http = http
        self._environment = settings.momo_target_environment
        self._credentials = httpx.BasicAuth(settings.momo_api_user, settings.momo_api_key)
        self._keys = {
            "collection": settings.momo_collection_key,
            "disbursement": settings.momo_disbursement_key,
        }
        self._tokens = {
            product: TokenCache(partial(self._fetch_token, product)) for product in self._keys
        }

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request_to_pay(
        self,
        reference: str,
        *,
        amount: str,
        currency: str,
        msisdn: str,
        external_id: str,
        callback_url: str | None,
        payer_message: str,
        payee_note: str,
    ) -> None:
        """Ask `msisdn` (E.164 digits, no '+') to approve the payment. Returns once MoMo
        holds it (202, or 409 for a reference it already has); raises ProviderRejected
        for a refusal, ProviderUnavailable when MoMo cannot be reached."""
        body = {
            "amount": amount,
            "currency": currency,
            "externalId": external_id,
            "payer": {"partyIdType": "MSISDN", "partyId": msisdn},
            "payerMessage": payer_message,
            "payeeNote": payee_note,
        }
        path = "/collection/v1_0/requesttopay"
        await self._create("collection", "requesttopay", path, reference, body, callback_url)

    async def get_status(self, reference: str) -> MomoStatus:
        """Raises ReferenceNotFound when MoMo never received the RequestToPay."""
        path = f"/collection/v1_0/requesttopay/{reference}"
        return await self._read("collection", "requesttopay.status", path, reference)

    async def refund(
        self,
        reference: str,
        *,
        reference_to_refund: str,
        amount: str,
        currency: str,
        external_id: str,
        callback_url: str | None,
        payer_message: str,
        payee_note: str,
    ) -> None:
        """Send `amount` of the RequestToPay `reference_to_refund` back to its payer,
        under our new `reference` (same guarantees as request_to_pay)."""
        body = {
            "amount": amount,
            "currency": currency,
            "externalId": external_id,
            "payerMessage": payer_message,
            "payeeNote": payee_note,
            "referenceIdToRefund": reference_to_refund,
        }
        path = "/disbursement/v1_0/refund"
        await self._create("disbursement", "refund", path, reference, body, callback_url)

    async def get_refund_status(self, reference: str) -> MomoStatus:
        """Raises ReferenceNotFound when MoMo never received the refund."""
        path = f"/disbursement/v1_0/refund/{reference}"
        return await self._read("disbursement", "refund.status", path, reference)

    async def _create(
        self,
        product: str,
        operation: str,
        path: str,
        reference: str,
        body: dict[str, Any],
        callback_url: str | None,
    ) -> None:
        headers = {"X-Reference-Id": reference}
        if callback_url:  # MoMo refuses an empty X-Callback-Url (400)
            headers["X-Callback-Url"] = callback_url
        # Idempotent thanks to the reference: a resend cannot create a second transaction.
        response = await self._authorized(
            product, operation, "POST", path, reference=reference, headers=headers, json=body
        )
        if response.status_code == 202:
            return
        if response.status_code == 409 and error_code(response) == "RESOURCE_ALREADY_EXIST":
            log.info("momo.already_received", operation=operation, reference=reference)
            return
        raise self._failure(operation, response, reference)

    async def _read(self, product: str, operation: str, path: str, reference: str) -> MomoStatus:
        response = await self._authorized(product, operation, "GET", path, reference=reference)
        if response.status_code == 404:
            raise ReferenceNotFound(PROVIDER, f"{operation}: no transaction {reference}")
        if response.status_code != 200:
            raise self._failure(operation, response, reference)
        body = response.json()
        status = MomoStatus.parse(body)
        log.info(
            "momo.status",
            operation=operation,
            reference=reference,
            status=body.get("status"),
            reason=status.reason,
        )
        return status

    async def _authorized(
        self, product: str, operation: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """An API call with the product's token: on a 401 the token is dropped, and the
        call made once more with a fresh one (it expired early, or MoMo revoked it)."""
        tokens = self._tokens[product]
        token = await tokens.get()
        response = await self._send(product, operation, method, path, token, **kwargs)
        if response.status_code == 401:
            tokens.forget(token)
            token = await tokens.get()
            response = await self._send(product, operation, method, path, token, **kwargs)
        return response

    async def _send(
        self,
        product: str,
        operation: str,
        method: str,
        path: str,
        token: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        return await self.http.call(
            operation,
            method,
            path,
            idempotent=True,
            retry_if=is_transient,
            headers={
                "Authorization": f"Bearer {token}",
                "X-Target-Environment": self._environment,
                SUBSCRIPTION_KEY: self._keys[product],
                **(headers or {}),
            },
            **kwargs,
        )

    async def _fetch_token(self, product: str) -> tuple[str, float]:
        operation = f"{product}.token"
        response = await self.http.call(
            operation,
            "POST",
            f"/{product}/token/",  # no body: MoMo answers 400 to one
            idempotent=True,
            auth=self._credentials,
            headers={SUBSCRIPTION_KEY: self._keys[product]},
        )
        if response.status_code != 200:
            raise self._failure(operation, response)
        body = response.json()
        return body["access_token"], float(body["expires_in"])

    def _failure(
        self, operation: str, response: httpx.Response, reference: str | None = None
    ) -> ProviderError:
        """The error for an answer that is neither success nor a known state: an outage
        for a transient 5xx, else a refusal (a 4xx with no code is our own mistake)."""
        code = error_code(response)
        log.warning(
            "momo.refused",
            operation=operation,
            reference=reference,
            status=response.status_code,
            code=code,
        )
        message = f"{operation}: HTTP {response.status_code} {code or ''}".rstrip()
        if response.status_code >= 500 and is_transient(response):
            return ProviderUnavailable(PROVIDER, message)
        return ProviderRejected(PROVIDER, message, reason=REASONS.get(code or "", "merchant_error"))
