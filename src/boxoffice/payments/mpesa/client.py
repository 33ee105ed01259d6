"""Daraja's HTTP API: OAuth, STK Push, STK Push Query, reversal, B2C payment and
Transaction Status (payment-providers.md §2).

Daraja answers refusals with `{"requestId", "errorCode", "errorMessage"}` and reuses one
code, `500.001.1001`, for business answers told apart only by their message (a locked
subscriber, wrong credentials, a query still being processed). Those are answers, not
outages: they are never retried and never count against the circuit breaker.
"""

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import structlog

from boxoffice.config import Settings
from boxoffice.payments.errors import ProviderRejected, ProviderUnavailable
from boxoffice.payments.http import ProviderHTTP, TokenCache

log = structlog.get_logger("boxoffice.payments.mpesa")

PROVIDER = "mpesa"
EAT = ZoneInfo("Africa/Nairobi")  # Daraja's timestamps are Kenyan time
BUSINESS_ANSWER = "500.001.1001"
INVALID_TOKEN = "404.001.03"  # noqa: S105 (an error code, not a secret)
B2C_MINIMUM = 10  # whole KES: Daraja pays no less to a phone by B2C
# Request fields naming the payer, by operation: a refusal of one is the payer's number.
PAYER_FIELDS = {"stk_push": ("phonenumber", "partya"), "b2c": ("partyb",)}

# Daraja ResultCode (callback and query) → our failure_reason (§2.6). 0 is success; any
# code not listed is a failure we cannot explain: provider_error.
FAILURE_REASONS = {
    1: "insufficient_funds",
    1001: "payer_busy",
    1019: "expired",
    1032: "rejected",
    1037: "expired",
    2001: "wrong_pin",
}


def failure_reason(result_code: int) -> str:
    return FAILURE_REASONS.get(result_code, "provider_error")


def timestamp(now: datetime | None = None) -> str:
    """`YYYYMMDDHHmmss` in Kenyan time, as Daraja expects in `Timestamp`."""
    return (now or datetime.now(EAT)).astimezone(EAT).strftime("%Y%m%d%H%M%S")


@dataclass(frozen=True, slots=True)
class DarajaError:
    """Daraja's error body; either field may be missing from a proxy's or gateway's answer."""

    status: int
    code: str | None
    message: str

    @classmethod
    def of(cls, response: httpx.Response) -> "DarajaError":
        body = _json(response)
        code, message = body.get("errorCode"), body.get("errorMessage")
        return cls(
            response.status_code,
            code if isinstance(code, str) else None,
            message if isinstance(message, str) else response.reason_phrase,
        )

    @property
    def is_pending(self) -> bool:
        """The query's way of saying the payer has not answered yet."""
        return self.code == BUSINESS_ANSWER and "being processed" in self.message.lower()


@dataclass(frozen=True, slots=True)
class StkPushAccepted:
    merchant_request_id: str
    checkout_request_id: str


@dataclass(frozen=True, slots=True)
class StkQueryResult:
    """`result_code` None: still pending; otherwise final (0 = paid)."""

    result_code: int | None
    description: str = ""


@dataclass(frozen=True, slots=True)
class RequestAccepted:
    """Daraja took a request whose result it POSTs later to ResultURL, naming both ids."""

    conversation_id: str
    originator_conversation_id: str


class DarajaClient:
    """One Daraja app (consumer key and secret) and one shortcode."""

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._http = ProviderHTTP(
            PROVIDER, base_url, timeout=settings.provider_timeout, transport=transport
        )
        self._token = TokenCache(self._fetch_token)

    async def aclose(self) -> None:
        await self._http.aclose()

    def password(self, at: str) -> str:
        """base64(shortcode + passkey + timestamp): Daraja's per-request password."""
        raw = f"{self._settings.mpesa_shortcode}{self._settings.mpesa_passkey}{at}"
        return base64.b64encode(raw.encode()).decode()

    async def stk_push(
        self,
        *,
        amount: int,
        phone: str,
        account_reference: str,
        description: str,
        callback_url: str,
    ) -> StkPushAccepted:
        """Send the PIN prompt to `phone` (`2547…`) for `amount` whole KES. Never retried:
        Daraja has no idempotency key, so a second push would be a second charge."""
        shortcode = self._settings.mpesa_shortcode
        body = {
            **self._credentials(),
            "TransactionType": self._settings.mpesa_transaction_type,
            "Amount": amount,
            "PartyA": phone,
            "PartyB": shortcode,
            "PhoneNumber": phone,
            "CallBackURL": callback_url,
            "AccountReference": account_reference,
            "TransactionDesc": description,
        }
        response = await self._post("stk_push", "/mpesa/stkpush/v1/processrequest", body)
        answer = self._accepted("stk_push", response)
        return StkPushAccepted(
            _text(answer, "MerchantRequestID"), _text(answer, "CheckoutRequestID")
        )

    async def stk_query(self, checkout_request_id: str) -> StkQueryResult:
        body = {**self._credentials(), "CheckoutRequestID": checkout_request_id}
        response = await self._post(
            "stk_query",
            "/mpesa/stkpushquery/v1/query",
            body,
            idempotent=True,
            reference=checkout_request_id,
        )
        if response.status_code >= 400 and DarajaError.of(response).is_pending:
            return StkQueryResult(None)
        answer = self._accepted("stk_query", response, reference=checkout_request_id)
        try:
            code = int(answer["ResultCode"])  # a string here, a number in the callback
        except (KeyError, TypeError, ValueError):
            raise ProviderUnavailable(PROVIDER, "stk_query: answer without a ResultCode") from None
        return StkQueryResult(code, str(answer.get("ResultDesc", "")))

    async def reverse(
        self,
        *,
        transaction_id: str,
        amount: int,
        result_url: str,
        timeout_url: str,
        remarks: str,
    ) -> RequestAccepted:
        """Ask M-Pesa to reverse the payment with receipt `transaction_id` (its full
        `amount`); the result arrives later at `result_url` as `{"Result": {...}}`. Not
        retried: a second request would only come back "already reversed"."""
        body = {
            "Initiator": self._settings.mpesa_initiator,
            "SecurityCredential": self._settings.mpesa_security_credential,
            "CommandID": "TransactionReversal",
            "TransactionID": transaction_id,
            "Amount": amount,
            "ReceiverParty": self._settings.mpesa_shortcode,
            "RecieverIdentifierType": "11",  # sic: Safaricom's spelling
            "ResultURL": result_url,
            "QueueTimeOutURL": timeout_url,
            "Remarks": remarks,
        }
        return await self._queued(
            "reversal", "/mpesa/reversal/v1/request", body, reference=transaction_id
        )

    async def b2c_payment(
        self,
        *,
        originator_conversation_id: str,
        amount: int,
        phone: str,
        remarks: str,
        occasion: str,
        result_url: str,
        timeout_url: str,
    ) -> RequestAccepted:
        """Pay `amount` whole KES from our shortcode to `phone` (`2547…`) with B2C v3, the
        version that takes our own `originator_conversation_id`: the result, POSTed later
        to `result_url` as `{"Result": {...}}`, names it, so it can be matched even when
        this answer is lost. Never retried: B2C has no documented idempotency key
        (whether Daraja refuses a repeated OriginatorConversationID is unconfirmed), so a
        second request could be a second payout."""
        body = {
            "OriginatorConversationID": originator_conversation_id,
            "InitiatorName": self._settings.mpesa_initiator,
            "SecurityCredential": self._settings.mpesa_security_credential,
            "CommandID": "BusinessPayment",
            "Amount": amount,
            "PartyA": self._settings.mpesa_shortcode,
            "PartyB": phone,
            "Remarks": remarks,
            "QueueTimeOutURL": timeout_url,
            "ResultURL": result_url,
            "Occasion": occasion,
        }
        return await self._queued(
            "b2c", "/mpesa/b2c/v3/paymentrequest", body, reference=originator_conversation_id
        )

    async def transaction_status(
        self,
        *,
        originator_conversation_id: str,
        result_url: str,
        remarks: str,
        occasion: str,
    ) -> RequestAccepted:
        """Ask how the reversal or B2C payment Daraja knows by `originator_conversation_id`
        went; the answer arrives later at `result_url` as `{"Result": {...}}`, the
        transaction named in its ResultParameters and `occasion` echoed in its
        ReferenceData. A read, so retried like the STK query."""
        body = {
            "Initiator": self._settings.mpesa_initiator,
            "SecurityCredential": self._settings.mpesa_security_credential,
            "CommandID": "TransactionStatusQuery",
            "OriginatorConversationID": originator_conversation_id,
            "PartyA": self._settings.mpesa_shortcode,
            "IdentifierType": "4",  # an organisation shortcode
            "ResultURL": result_url,
            "QueueTimeOutURL": result_url,
            "Remarks": remarks,
            "Occasion": occasion,
        }
        return await self._queued(
            "transaction_status",
            "/mpesa/transactionstatus/v1/query",
            body,
            idempotent=True,
            reference=originator_conversation_id,
        )

    def _credentials(self) -> dict[str, str]:
        at = timestamp()
        return {
            "BusinessShortCode": self._settings.mpesa_shortcode,
            "Password": self.password(at),
            "Timestamp": at,
        }

    async def _fetch_token(self) -> tuple[str, float]:
        response = await self._http.call(
            "oauth",
            "GET",
            "/oauth/v1/generate",
            idempotent=True,
            params={"grant_type": "client_credentials"},
            auth=(self._settings.mpesa_consumer_key, self._settings.mpesa_consumer_secret),
        )
        answer = self._accepted("oauth", response)
        try:
            return _text(answer, "access_token"), float(answer["expires_in"])  # "3599"
        except (KeyError, TypeError, ValueError):
            raise ProviderUnavailable(PROVIDER, "oauth: answer without expires_in") from None

    async def _post(
        self,
        operation: str,
        path: str,
        body: dict[str, Any],
        *,
        idempotent: bool = False,
        reference: str | None = None,
    ) -> httpx.Response:
        """POST with the cached token; a token Daraja no longer knows is replaced once
        (it refused the request at the gate, so even a push is safe to send again)."""
        for attempt in (1, 2):
            token = await self._token.get()
            response = await self._http.call(
                operation,
                "POST",
                path,
                idempotent=idempotent,
                reference=reference,
                retry_if=_is_transient,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
            if attempt == 2 or not _is_invalid_token(response):
                return response
            log.info("mpesa.token_refused", operation=operation)
            self._token.forget(token)
        raise AssertionError("unreachable")

    async def _queued(
        self,
        operation: str,
        path: str,
        body: dict[str, Any],
        *,
        reference: str,
        idempotent: bool = False,
    ) -> RequestAccepted:
        """POST a request whose result Daraja sends later to its ResultURL; what it
        answered now names the conversation the result will belong to."""
        response = await self._post(
            operation, path, body, idempotent=idempotent, reference=reference
        )
        answer = self._accepted(operation, response, reference=reference)
        return RequestAccepted(
            _text(answer, "ConversationID"), _text(answer, "OriginatorConversationID")
        )

    def _accepted(
        self, operation: str, response: httpx.Response, *, reference: str | None = None
    ) -> dict[str, Any]:
        """The JSON of a 200 answer; otherwise raise what the error means for the caller."""
        if response.status_code == 200:
            answer = _json(response)
            if str(answer.get("ResponseCode", "0")) == "0":
                return answer
            error = DarajaError(
                200, str(answer["ResponseCode"]), str(answer.get("ResponseDescription", ""))
            )
        else:
            error = DarajaError.of(response)
        log.warning(
            "mpesa.refused",
            operation=operation,
            reference=reference,
            http_status=error.status,
            error_code=error.code,
            error_message=error.message,
        )
        raise _exception(operation, error)


def _exception(operation: str, error: DarajaError) -> ProviderRejected | ProviderUnavailable:
    message = f"{operation}: {error.code or error.status} {error.message}"
    if error.status >= 500 and error.code != BUSINESS_ANSWER:
        return ProviderUnavailable(PROVIDER, message)  # spike arrest, system busy, outage
    return ProviderRejected(PROVIDER, message, reason=_rejection_reason(operation, error))


def _rejection_reason(operation: str, error: DarajaError) -> str:
    text = error.message.lower()
    if "lock subscriber" in text:
        return "payer_busy"
    if any(field in text for field in PAYER_FIELDS.get(operation, ())):
        return "payer_not_found"
    if error.status == 200:
        return "provider_error"
    # Wrong credentials, unknown merchant, a refused token, a field we sent wrong: ours.
    return "merchant_error"


def _is_transient(response: httpx.Response) -> bool:
    return DarajaError.of(response).code != BUSINESS_ANSWER


def _is_invalid_token(response: httpx.Response) -> bool:
    return response.status_code == 401 or DarajaError.of(response).code == INVALID_TOKEN


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(answer: dict[str, Any], name: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str) or not value:
        raise ProviderUnavailable(PROVIDER, f"answer without {name}", definitive=False)
    return value
