"""A Daraja simulator: OAuth, STK Push, STK Push Query, reversal, B2C payment and
Transaction Status on Daraja's own paths, with its error codes, JSON types and callbacks
(payment-providers.md §2 and §3.2).

Daraja has no magic test numbers; the outcome of a push is our convention, keyed on the
last four digits of the phone so that amounts stay free for ticket prices:

| phone ends | ResultCode | meaning |
|---|---|---|
| 0001 | 1 | insufficient balance |
| 1032 | 1032 | cancelled by the payer |
| 1037 | 1037 | no answer from the phone |
| 2001 | 2001 | wrong PIN |
| 1019 | 1019 | transaction expired |
| 9999 | — | never resolves, no callback (the phone stays locked) |
| anything else (e.g. 254708374149) | 0 | paid |

Every outcome, failures included, arrives after `delay` seconds (the simulator's prompt
window). Unknown CheckoutRequestIDs get 400 `400.002.02`: Daraja's real code for them is
unconfirmed. Reversal results with codes R000001 and R000002 follow integrators' reports;
R000003 (amount differs from the original) is this simulator's own.

A B2C payment (`/mpesa/b2c/v3/paymentrequest`) succeeds, except to a phone ending 2040:
ResultCode 2040, the payee M-Pesa will not pay (integrators' reports). A reversal or B2C
payment whose InitiatorName or SecurityCredential is wrong is accepted, then fails with
2001, as Daraja does; an Amount below KES 10, B2C's minimum, is refused at once.

A Transaction Status query (`/mpesa/transactionstatus/v1/query`) names a reversal or B2C
payment by its receipt (TransactionID) or OriginatorConversationID, or a paid push by its
receipt. Like the others it is answered at once, its result POSTed to ResultURL after
`delay` (so it may be lost, duplicated or late like any callback), and a wrong initiator
fails it with 2001. The result names the transaction in ResultParameters and echoes the
query's Occasion in ReferenceData, as Daraja's do; it describes the transaction as it is
when the result is sent. One not finished by then, or unknown, is "not found": ResultCode
`TS_NOT_FOUND` (this simulator's own; Daraja's code for it is unconfirmed).
"""

import asyncio
import base64
import functools
import itertools
import re
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from boxoffice.config import Settings
from boxoffice.simulators.base import Fault, Simulator, simulator_app

EAT = ZoneInfo("Africa/Nairobi")
OUTCOMES = {"0001": 1, "1032": 1032, "1037": 1037, "2001": 2001, "1019": 1019}
NEVER_RESOLVES = "9999"
RESULT_DESCRIPTIONS = {
    0: "The service request is processed successfully.",
    1: "The balance is insufficient for the transaction.",
    1019: "Transaction has expired",
    1032: "Request cancelled by user",
    1037: "DS timeout user cannot be reached",
    2001: "The initiator information is invalid.",
}
TRANSACTION_TYPES = {"CustomerPayBillOnline", "CustomerBuyGoodsOnline"}
B2C_COMMANDS = {"BusinessPayment", "SalaryPayment", "PromotionPayment"}
B2C_MINIMUM = 10
UNPAYABLE = "2040"  # a B2C payee's last four digits
NOT_FOUND = "TS_NOT_FOUND"
PHONE = re.compile(r"254[71]\d{8}")
# Words Daraja refuses in callback URLs, and tunnels it blocks (§2.7), in strict mode.
REFUSED_IN_URLS = ("mpesa", "m-pesa", "safaricom", "exe", "exec", "cmd", "sql", "query")
REFUSED_HOSTS = ("ngrok", "mockbin", "requestbin")
RECEIPT_ALPHABET = string.ascii_uppercase + string.digits


class DarajaError(Exception):
    """Answered as Daraja answers errors: `{"requestId", "errorCode", "errorMessage"}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(name: str) -> DarajaError:
    return DarajaError(400, "400.002.02", f"Bad Request - Invalid {name}")


def business(message: str) -> DarajaError:
    return DarajaError(500, "500.001.1001", message)


@dataclass
class StkPush:
    merchantrequest_id: str
    checkoutrequest_id: str
    phone: str
    amount: int
    callback_url: str
    outcome: int | None  # the ResultCode the payer will bring about; None: never answers
    result_code: int | None = None  # the outcome, once it is out
    receipt: str | None = None
    reversed: bool = False
    due_at: float | None = None


@dataclass(frozen=True)
class Outcome:
    """How a reversal, payout or status query ends: ResultCode, ResultDesc, and on
    success its ResultParameters and the M-Pesa receipt of the transaction itself."""

    code: int | str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    receipt: str | None = None


@dataclass(kw_only=True)
class Conversation:
    """A request answered at once whose result is POSTed to its ResultURL later."""

    conversation_id: str
    originator_conversation_id: str
    authorised: bool  # initiator and security credential were right
    result_url: str
    due_at: float
    done: bool = False

    def reference_item(self) -> dict[str, str]:
        """What the result's ReferenceData carries."""
        return {"Key": "QueueTimeoutURL", "Value": self.result_url}


@dataclass(kw_only=True)
class Transfer(Conversation):
    """A reversal or payout: money moved, and once done, how it ended."""

    amount: int
    outcome: Outcome | None = None


@dataclass(kw_only=True)
class Reversal(Transfer):
    transaction_id: str


@dataclass(kw_only=True)
class Payout(Transfer):
    """A B2C payment to `phone`."""

    phone: str


@dataclass(kw_only=True)
class StatusQuery(Conversation):
    """A Transaction Status query about the transaction with receipt `transaction_id` or
    OriginatorConversationID `about` (either may be empty)."""

    transaction_id: str
    about: str
    occasion: str

    def reference_item(self) -> dict[str, str]:
        """The query's Occasion, echoed (a Key without Value when none was given)."""
        return {"Key": "Occasion", **({"Value": self.occasion} if self.occasion else {})}


@dataclass
class MpesaSimulator(Simulator):
    shortcode: str = "174379"
    passkey: str = ""
    consumer_key: str = ""
    consumer_secret: str = ""
    initiator: str = ""
    security_credential: str = ""
    token_lifetime: int = 3599
    strict: bool = False  # https only, and no refused words or tunnels in CallBackURL
    query_interval: float = 0.0  # > 0: queries closer together answer 500.003.02
    tokens: dict[str, float] = field(default_factory=dict)  # token → expires at (now())
    pushes: dict[str, StkPush] = field(default_factory=dict)  # by CheckoutRequestID
    receipts: dict[str, StkPush] = field(default_factory=dict)
    reversals: list[Reversal] = field(default_factory=list)
    payouts: list[Payout] = field(default_factory=list)
    status_queries: list[StatusQuery] = field(default_factory=list)
    _last_query_at: float | None = None
    _sequence: itertools.count = field(default_factory=lambda: itertools.count(1))

    # OAuth

    def issue_token(self, authorization: str | None, grant_type: str | None) -> dict[str, str]:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            raise DarajaError(400, "400.008.01", "Invalid Authentication passed")
        if grant_type != "client_credentials":
            raise DarajaError(400, "400.008.02", "Invalid grant type passed")
        expected = f"{self.consumer_key}:{self.consumer_secret}".encode()
        try:
            given = base64.b64decode(encoded, validate=True)
        except ValueError:
            given = b""
        if not secrets.compare_digest(given, expected):
            raise DarajaError(400, "400.008.01", "Invalid Authentication passed")
        token = secrets.token_urlsafe(21)
        self.tokens[token] = self.now() + self.token_lifetime
        return {"access_token": token, "expires_in": str(self.token_lifetime)}

    def check_bearer(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise DarajaError(404, "404.001.04", "Invalid Authentication Header")
        if self.tokens.get(token, 0) <= self.now():
            raise DarajaError(404, "404.001.03", "Invalid Access Token")

    # STK Push and its query

    def push(self, body: dict[str, Any]) -> dict[str, str]:
        """Daraja's checks, in its order (§3.2), then a pending push to the phone."""
        self._check_credentials(body)
        if body.get("TransactionType") not in TRANSACTION_TYPES:
            raise invalid("TransactionType")
        amount = _whole_amount(body.get("Amount"))
        if amount is None:
            raise invalid("Amount")
        phone = _text(body.get("PhoneNumber"))
        if not PHONE.fullmatch(phone):
            raise invalid("PhoneNumber")
        if not PHONE.fullmatch(_text(body.get("PartyA"))):
            raise invalid("PartyA")
        if not 1 <= len(_text(body.get("AccountReference"))) <= 12:
            raise invalid("AccountReference")
        if not 1 <= len(_text(body.get("TransactionDesc"))) <= 13:
            raise invalid("TransactionDesc")
        callback_url = _text(body.get("CallBackURL"))
        if not self._is_acceptable_url(callback_url):
            raise invalid("CallBackURL")
        if any(p.phone == phone and p.result_code is None for p in self.pushes.values()):
            raise business(
                "Unable to lock subscriber, a transaction is already in process "
                "for the current subscriber"
            )
        return self._accept_push(phone, amount, callback_url)

    def _accept_push(self, phone: str, amount: int, callback_url: str) -> dict[str, str]:
        stamp = datetime.now(EAT).strftime("%d%m%Y%H%M%S")
        push = StkPush(
            merchantrequest_id=self.request_id(),
            checkoutrequest_id=f"ws_CO_{stamp}{next(self._sequence):06d}",
            phone=phone,
            amount=amount,
            callback_url=callback_url,
            outcome=None if phone.endswith(NEVER_RESOLVES) else OUTCOMES.get(phone[-4:], 0),
        )
        self.pushes[push.checkoutrequest_id] = push
        if push.outcome is not None:
            push.due_at = self.now() + self.delay
            self.later(self.delay, functools.partial(self._finish_push, push))
        message = "Success. Request accepted for processing"
        return {
            "MerchantRequestID": push.merchantrequest_id,
            "CheckoutRequestID": push.checkoutrequest_id,
            "ResponseCode": "0",
            "ResponseDescription": message,
            "CustomerMessage": message,
        }

    async def query(self, body: dict[str, Any]) -> dict[str, str]:
        self._arrest_spikes()
        self._check_credentials(body)
        push = self.pushes.get(_text(body.get("CheckoutRequestID")))
        if push is None:
            raise invalid("CheckoutRequestID")
        await self.settle()
        if push.result_code is None:
            raise business("The transaction is being processed")
        return {
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": push.merchantrequest_id,
            "CheckoutRequestID": push.checkoutrequest_id,
            "ResultCode": str(push.result_code),
            "ResultDesc": RESULT_DESCRIPTIONS.get(push.result_code, "Failed"),
        }

    def _check_credentials(self, body: dict[str, Any]) -> None:
        shortcode = _text(body.get("BusinessShortCode"))
        if not re.fullmatch(r"\d{5,7}", shortcode):
            raise invalid("BusinessShortCode")
        if shortcode != self.shortcode:
            raise business("Merchant does not exist")
        stamp = _text(body.get("Timestamp"))
        if not re.fullmatch(r"\d{14}", stamp):
            raise invalid("Timestamp")
        password = base64.b64encode(f"{shortcode}{self.passkey}{stamp}".encode()).decode()
        if not _same(_text(body.get("Password")), password):
            raise business("Wrong credentials")

    def _arrest_spikes(self) -> None:
        now = self.now()
        last, self._last_query_at = self._last_query_at, now
        if self.query_interval and last is not None and now - last < self.query_interval:
            raise DarajaError(500, "500.003.02", "Spike arrest violation")

    def _is_acceptable_url(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if not self.strict:
            return True
        lowered = url.lower()
        return (
            parts.scheme == "https"
            and not any(word in lowered for word in REFUSED_IN_URLS)
            and not any(host in parts.hostname for host in REFUSED_HOSTS)
        )

    async def _finish_push(self, push: StkPush) -> None:
        if push.result_code is not None or push.outcome is None:
            return
        push.result_code = push.outcome
        if push.outcome == 0:
            push.receipt = self._new_receipt()
            self.receipts[push.receipt] = push
        self.send_callback(push.callback_url, stk_callback(push), method="POST")

    # Reversal

    def reverse(self, body: dict[str, Any]) -> dict[str, str]:
        if body.get("CommandID") != "TransactionReversal":
            raise invalid("CommandID")
        if _text(body.get("RecieverIdentifierType")) != "11":
            raise invalid("RecieverIdentifierType")
        if _text(body.get("ReceiverParty")) != self.shortcode:
            raise invalid("ReceiverParty")
        for name in ("Initiator", "SecurityCredential", "TransactionID"):
            if not _text(body.get(name)):
                raise invalid(name)
        amount = _whole_amount(body.get("Amount"))
        if amount is None:
            raise invalid("Amount")
        for name in ("ResultURL", "QueueTimeOutURL"):
            if not self._is_acceptable_url(_text(body.get(name))):
                raise invalid(name)
        reversal = Reversal(
            conversation_id=_conversation_id(),
            originator_conversation_id=self.request_id(),
            transaction_id=_text(body.get("TransactionID")),
            amount=amount,
            authorised=self._authorised(body, "Initiator"),
            result_url=_text(body.get("ResultURL")),
            due_at=self.now() + self.delay,
        )
        self.reversals.append(reversal)
        self.later(self.delay, functools.partial(self._finish_reversal, reversal))
        return _accepted(reversal)

    def _reversal_outcome(self, reversal: Reversal) -> Outcome:
        original = self.receipts.get(reversal.transaction_id)
        if not reversal.authorised:
            return Outcome(2001, "The initiator information is invalid.")
        if original is None:
            return Outcome("R000002", "The OriginalTransactionID is invalid.")
        if original.reversed:
            return Outcome("R000001", "The transaction has already been reversed.")
        if original.amount != reversal.amount:
            return Outcome("R000003", "The amount does not match the original transaction.")
        original.reversed = True
        return Outcome(
            0,
            "The service request is processed successfully.",
            {
                "Amount": reversal.amount,
                "OriginalTransactionID": reversal.transaction_id,
                "TransCompletedTime": int(f"{datetime.now(EAT):%Y%m%d%H%M%S}"),
                "Charge": 0,
            },
            self._new_receipt(),
        )

    # B2C

    def pay(self, body: dict[str, Any]) -> dict[str, str]:
        """B2C v3's checks (§3.2's style: 400 Invalid <Field>), then a payout under way."""
        originator_conversation_id = _text(body.get("OriginatorConversationID"))
        if not originator_conversation_id:
            raise invalid("OriginatorConversationID")
        for name in ("InitiatorName", "SecurityCredential"):
            if not _text(body.get(name)):
                raise invalid(name)
        if body.get("CommandID") not in B2C_COMMANDS:
            raise invalid("CommandID")
        amount = _whole_amount(body.get("Amount"))
        if amount is None or amount < B2C_MINIMUM:
            raise invalid("Amount")
        if _text(body.get("PartyA")) != self.shortcode:
            raise invalid("PartyA")
        phone = _text(body.get("PartyB"))
        if not PHONE.fullmatch(phone):
            raise invalid("PartyB")
        if not 1 <= len(_text(body.get("Remarks"))) <= 100:
            raise invalid("Remarks")
        for name in ("ResultURL", "QueueTimeOutURL"):
            if not self._is_acceptable_url(_text(body.get(name))):
                raise invalid(name)
        payout = Payout(
            conversation_id=_conversation_id(),
            originator_conversation_id=originator_conversation_id,
            phone=phone,
            amount=amount,
            authorised=self._authorised(body, "InitiatorName"),
            result_url=_text(body.get("ResultURL")),
            due_at=self.now() + self.delay,
        )
        self.payouts.append(payout)
        self.later(self.delay, functools.partial(self._finish_payout, payout))
        return _accepted(payout)

    def _payout_outcome(self, payout: Payout) -> Outcome:
        if not payout.authorised:
            return Outcome(2001, "The initiator information is invalid.")
        if payout.phone.endswith(UNPAYABLE):
            return Outcome(
                2040,
                "Credit Party customer type (Unregistered or Registered Customer) "
                "can't be supported by the service.",
            )
        receipt = self._new_receipt()
        return Outcome(
            0,
            "The service request is processed successfully.",
            {
                "TransactionAmount": payout.amount,
                "TransactionReceipt": receipt,
                "B2CRecipientIsRegisteredCustomer": "Y",
                "ReceiverPartyPublicName": f"{payout.phone[:6]}***{payout.phone[-3:]} - Fan",
                "TransactionCompletedDateTime": f"{datetime.now(EAT):%d.%m.%Y %H:%M:%S}",
                "B2CUtilityAccountAvailableFunds": 100000.00,
            },
            receipt,
        )

    # Transaction Status

    def ask_status(self, body: dict[str, Any]) -> dict[str, str]:
        """The query's checks (400 Invalid <Field>), then a result due after `delay`."""
        for name in ("Initiator", "SecurityCredential"):
            if not _text(body.get(name)):
                raise invalid(name)
        if body.get("CommandID") != "TransactionStatusQuery":
            raise invalid("CommandID")
        transaction_id = _text(body.get("TransactionID"))
        about = _text(body.get("OriginatorConversationID"))
        if not transaction_id and not about:
            raise invalid("TransactionID")
        if _text(body.get("PartyA")) != self.shortcode:
            raise invalid("PartyA")
        if _text(body.get("IdentifierType")) != "4":  # PartyA is a shortcode
            raise invalid("IdentifierType")
        if not 1 <= len(_text(body.get("Remarks"))) <= 100:
            raise invalid("Remarks")
        for name in ("ResultURL", "QueueTimeOutURL"):
            if not self._is_acceptable_url(_text(body.get(name))):
                raise invalid(name)
        query = StatusQuery(
            conversation_id=_conversation_id(),
            originator_conversation_id=self.request_id(),
            transaction_id=transaction_id,
            about=about,
            occasion=_text(body.get("Occasion")),
            authorised=self._authorised(body, "Initiator"),
            result_url=_text(body.get("ResultURL")),
            due_at=self.now() + self.delay,
        )
        self.status_queries.append(query)
        self.later(self.delay, functools.partial(self._finish_status_query, query))
        return _accepted(query)

    def _status_outcome(self, query: StatusQuery) -> Outcome:
        """The transaction the query names, as it stands now."""
        if not query.authorised:
            return Outcome(2001, "The initiator information is invalid.")
        for transfer in [*self.reversals, *self.payouts]:
            outcome = transfer.outcome
            if outcome is None:
                continue
            if (query.transaction_id and outcome.receipt == query.transaction_id) or (
                query.about and transfer.originator_conversation_id == query.about
            ):
                return _described(transfer, outcome)
        push = self.receipts.get(query.transaction_id)
        if push is not None:
            return _described_push(push, self.shortcode)
        return Outcome(NOT_FOUND, "The transaction could not be found.")

    async def _finish_status_query(self, query: StatusQuery) -> None:
        if not query.done:
            await self._settle_transfers()
            self._report(query, self._status_outcome(query))

    # Results of reversals, payouts and status queries

    def _authorised(self, body: dict[str, Any], initiator_field: str) -> bool:
        """The initiator (named `Initiator` or `InitiatorName`, by API) and its credential
        are ours: Daraja accepts a request from a wrong one and fails it with 2001."""
        return _same(_text(body.get(initiator_field)), self.initiator) and _same(
            _text(body.get("SecurityCredential")), self.security_credential
        )

    async def _finish_reversal(self, reversal: Reversal) -> None:
        if not reversal.done:
            self._end(reversal, self._reversal_outcome(reversal))

    async def _finish_payout(self, payout: Payout) -> None:
        if not payout.done:
            self._end(payout, self._payout_outcome(payout))

    def _end(self, transfer: Transfer, outcome: Outcome) -> None:
        transfer.outcome = outcome
        self._report(transfer, outcome)

    def _report(self, conversation: Conversation, outcome: Outcome) -> None:
        conversation.done = True
        self.send_callback(conversation.result_url, result(conversation, outcome), method="POST")

    # Time

    async def settle(self) -> int:
        """Finish every push, reversal, payout and status query whose outcome is due by
        now(); queries last, so that they see what settled with them."""
        now, settled = self.now(), 0
        for push in list(self.pushes.values()):
            if push.result_code is None and push.due_at is not None and push.due_at <= now:
                await self._finish_push(push)
                settled += 1
        settled += await self._settle_transfers()
        for query in self.status_queries:
            if not query.done and query.due_at <= now:
                await self._finish_status_query(query)
                settled += 1
        return settled

    async def _settle_transfers(self) -> int:
        now, settled = self.now(), 0
        for reversal in self.reversals:
            if not reversal.done and reversal.due_at <= now:
                await self._finish_reversal(reversal)
                settled += 1
        for payout in self.payouts:
            if not payout.done and payout.due_at <= now:
                await self._finish_payout(payout)
                settled += 1
        return settled

    def request_id(self) -> str:
        """Daraja's `NNNNN-NNNNNNNN-N` (MerchantRequestID, requestId…)."""
        return f"{self._random.randint(10000, 99999)}-{self._random.randint(10**7, 10**8 - 1)}-1"

    def _new_receipt(self) -> str:
        while True:
            receipt = "".join(self._random.choices(RECEIPT_ALPHABET, k=10))
            if receipt not in self.receipts:
                return receipt


def stk_callback(push: StkPush) -> dict[str, Any]:
    """The body Daraja POSTs to CallBackURL: metadata on success only, read by Name."""
    callback: dict[str, Any] = {
        "MerchantRequestID": push.merchantrequest_id,
        "CheckoutRequestID": push.checkoutrequest_id,
        "ResultCode": push.result_code,  # a number here, a string in the query
        "ResultDesc": RESULT_DESCRIPTIONS.get(push.result_code or 0, "Failed"),
    }
    if push.result_code == 0:
        callback["CallbackMetadata"] = {
            "Item": [
                {"Name": "Amount", "Value": float(push.amount)},
                {"Name": "MpesaReceiptNumber", "Value": push.receipt},
                {"Name": "Balance"},
                {"Name": "TransactionDate", "Value": int(f"{datetime.now(EAT):%Y%m%d%H%M%S}")},
                {"Name": "PhoneNumber", "Value": int(push.phone)},
            ]
        }
    return {"Body": {"stkCallback": callback}}


def result(conversation: Conversation, outcome: Outcome) -> dict[str, Any]:
    """The body Daraja POSTs to ResultURL: parameters as Key/Value items, on success only."""
    body: dict[str, Any] = {
        "ResultType": 0,
        "ResultCode": outcome.code,
        "ResultDesc": outcome.description,
        "OriginatorConversationID": conversation.originator_conversation_id,
        "ConversationID": conversation.conversation_id,
        "TransactionID": outcome.receipt
        or "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(10)),
        "ReferenceData": {"ReferenceItem": conversation.reference_item()},
    }
    if outcome.parameters:
        body["ResultParameters"] = {
            "ResultParameter": [
                {"Key": key} if value is None else {"Key": key, "Value": value}
                for key, value in outcome.parameters.items()
            ]
        }
    return {"Result": body}


def _described(transfer: Transfer, outcome: Outcome) -> Outcome:
    """A status result for a finished reversal or payout: the transaction's ids, amount,
    receipt and TransactionStatus in ResultParameters, as Daraja names them."""
    kind = "Reversal" if isinstance(transfer, Reversal) else "Business Payment to Customer via API"
    return _found(
        {
            "OriginatorConversationID": transfer.originator_conversation_id,
            "ConversationID": transfer.conversation_id,
            "ReasonType": kind,
            "TransactionStatus": "Completed" if str(outcome.code) == "0" else "Failed",
            "Amount": transfer.amount,
            "ReceiptNo": outcome.receipt,
        }
    )


def _described_push(push: StkPush, shortcode: str) -> Outcome:
    """A status result for a paid push (only those have receipts to be found by)."""
    return _found(
        {
            "DebitPartyName": f"{push.phone[:6]}***{push.phone[-3:]} - Fan",
            "CreditPartyName": shortcode,
            "OriginatorConversationID": push.merchantrequest_id,
            "ReasonType": "Pay Bill Online",
            "TransactionStatus": "Completed",
            "Amount": push.amount,
            "ReceiptNo": push.receipt,
        }
    )


def _found(parameters: dict[str, Any]) -> Outcome:
    return Outcome(
        0,
        "The service request is processed successfully.",
        {
            **parameters,
            "TransactionReason": None,
            "FinalisedTime": int(f"{datetime.now(EAT):%Y%m%d%H%M%S}"),
        },
        _placeholder_receipt(),
    )


def _placeholder_receipt() -> str:
    """A status result's own TransactionID: Daraja's is a placeholder such as LGR0000000."""
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(3)) + "0000000"


def _accepted(conversation: Conversation) -> dict[str, str]:
    return {
        "OriginatorConversationID": conversation.originator_conversation_id,
        "ConversationID": conversation.conversation_id,
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }


def _conversation_id() -> str:
    return f"AG_{datetime.now(EAT):%Y%m%d}_{secrets.token_hex(10)}"


def _text(value: Any) -> str:
    """A field Daraja takes as a string or a number (shortcodes, phones), as text."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value)


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def _whole_amount(value: Any) -> int | None:
    """Whole KES ≥ 1, as a number or a string of digits; decimals are refused (§2.4)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 1 else None


def create_mpesa_simulator(settings: Settings, *, http: httpx.AsyncClient | None = None) -> FastAPI:
    simulator = MpesaSimulator(
        delay=settings.simulator_delay,
        http=http,
        shortcode=settings.mpesa_shortcode,
        passkey=settings.mpesa_passkey,
        consumer_key=settings.mpesa_consumer_key,
        consumer_secret=settings.mpesa_consumer_secret,
        initiator=settings.mpesa_initiator,
        security_credential=settings.mpesa_security_credential,
    )
    app = simulator_app("Daraja simulator", simulator, simulator.settle)
    app.add_exception_handler(DarajaError, _error_response(simulator))
    app.include_router(_routes(simulator))
    return app


def _error_response(
    simulator: MpesaSimulator,
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def respond(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DarajaError)
        body = {
            "requestId": simulator.request_id(),
            "errorCode": exc.code,
            "errorMessage": exc.message,
        }
        return JSONResponse(body, status_code=exc.status)

    return respond


def _routes(simulator: MpesaSimulator) -> APIRouter:
    async def faults() -> None:
        """A fault queued with POST /_control applies to the next call, whichever it is."""
        fault = simulator.take_fault()
        if fault == Fault.UNAVAILABLE:
            raise DarajaError(503, "503.001.01", "Service Unavailable")
        if fault == Fault.ERROR:
            raise DarajaError(500, "500.003.1001", "Internal Server Error")
        if fault == Fault.HANG:
            await asyncio.sleep(simulator.hang_seconds)  # then answer: the call took effect

    async def bearer(request: Request) -> None:
        simulator.check_bearer(request.headers.get("authorization"))

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise DarajaError(400, "400.002.05", "Invalid Request Payload")
        return body

    router = APIRouter(dependencies=[Depends(faults)])
    authorised = [Depends(bearer)]

    @router.get("/oauth/v1/generate")
    async def generate(request: Request, grant_type: str | None = None) -> dict[str, str]:
        return simulator.issue_token(request.headers.get("authorization"), grant_type)

    @router.post("/mpesa/stkpush/v1/processrequest", dependencies=authorised)
    async def stk_push(body: dict[str, Any] = Depends(json_body)) -> dict[str, str]:
        return simulator.push(body)

    @router.post("/mpesa/stkpushquery/v1/query", dependencies=authorised)
    async def stk_query(body: dict[str, Any] = Depends(json_body)) -> dict[str, str]:
        return await simulator.query(body)

    @router.post("/mpesa/reversal/v1/request", dependencies=authorised)
    async def reversal(body: dict[str, Any] = Depends(json_body)) -> dict[str, str]:
        return simulator.reverse(body)

    @router.post("/mpesa/b2c/v3/paymentrequest", dependencies=authorised)
    async def b2c_payment(body: dict[str, Any] = Depends(json_body)) -> dict[str, str]:
        return simulator.pay(body)

    @router.post("/mpesa/transactionstatus/v1/query", dependencies=authorised)
    async def transaction_status(body: dict[str, Any] = Depends(json_body)) -> dict[str, str]:
        return simulator.ask_status(body)

    return router
