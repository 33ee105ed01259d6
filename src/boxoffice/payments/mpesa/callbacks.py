"""Reading what Daraja POSTs to us: the STK callback, the result of a refund (a reversal
or a B2C payment), and the result of a Transaction Status query about a refund.

All arrive unsigned, from anyone who knows the URL, so parsing is defensive: a body of
the wrong shape gives None, never an exception. Nothing here is trusted for a payment's
status (the query is); a refund's status is known only from what Daraja POSTs, so its
result is taken from the body that reaches the refund's secret URL naming the refund.
Metadata items and result parameters are read by name, never by position.

A refund's result and a status query's result share the `{"Result": …}` envelope and the
refund's URL, and a failed query's looks just like a failed refund's. They are told apart
by the query's marks, never by guessing: the `TransactionStatus` parameter of a found
transaction, or the Occasion we give every query, which Daraja echoes in ReferenceData.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

RECEIPT = re.compile(r"[A-Z0-9]{6,40}")  # e.g. NLJ7RT61SV: 10 uppercase letters and digits
# The Occasion of our Transaction Status queries, echoed back in their results' ReferenceData.
STATUS_OCCASION = "RefundStatusQuery"


@dataclass(frozen=True, slots=True)
class StkCallback:
    checkout_request_id: str
    result_code: int
    result_desc: str
    receipt: str | None = None  # MpesaReceiptNumber, on success only
    amount: Decimal | None = None  # whole KES, though Daraja may write 1.00


@dataclass(frozen=True, slots=True)
class RefundResult:
    """The `Result` of a reversal or a B2C payment, the two ways we refund."""

    conversation_id: str  # Daraja's id of the request
    originator_conversation_id: str | None  # ours for B2C; Daraja's for a reversal
    result_code: str  # a number, or a string such as "R000002": compared as text
    result_desc: str
    transaction_id: str | None = None  # the refund's own M-Pesa receipt
    amount: Decimal | None = None  # whole KES, when ResultParameters tell it

    @property
    def succeeded(self) -> bool:
        return self.result_code == "0"


@dataclass(frozen=True, slots=True)
class StatusResult:
    """The `Result` of a Transaction Status query: the query's own code, and what M-Pesa
    says of the transaction asked about (named in ResultParameters: the top-level ids
    and TransactionID are the query's own)."""

    result_code: str  # "0": the transaction was found and is described below
    result_desc: str
    originator_conversation_id: str | None = None  # of the transaction asked about
    transaction_status: str | None = None  # "Completed", "Failed"…
    receipt: str | None = None  # ReceiptNo: the transaction's own M-Pesa receipt
    amount: Decimal | None = None

    @property
    def found(self) -> bool:
        return self.result_code == "0"


def parse_stk_callback(body: Any) -> StkCallback | None:
    """The STK callback in `body`: Daraja's whole POST (`{"Body": {"stkCallback": …}}`)
    or its inner `stkCallback` object. None when it is not a well-formed one."""
    if isinstance(body, dict) and "Body" in body:
        body = _get(_get(body, "Body"), "stkCallback")
    if not isinstance(body, dict):
        return None
    checkout_request_id = body.get("CheckoutRequestID")
    result_code = _integer(body.get("ResultCode"))
    if not isinstance(checkout_request_id, str) or not checkout_request_id or result_code is None:
        return None
    items = _metadata(body.get("CallbackMetadata"))
    if items is None:
        return None
    return StkCallback(
        checkout_request_id=checkout_request_id,
        result_code=result_code,
        result_desc=str(body.get("ResultDesc", "")),
        receipt=_receipt(items.get("MpesaReceiptNumber")),
        amount=_decimal(items.get("Amount")),
    )


def parse_refund_result(body: Any) -> RefundResult | None:
    """The reversal or B2C result in `body` (`{"Result": {...}}`, POSTed to ResultURL or,
    on a queue timeout, to QueueTimeOutURL), or None when its ids or code are missing or
    malformed, or when it is a status query's result. ResultParameters only inform (the
    amount): a malformed one is ignored rather than leave a refund whose result this is
    pending for good."""
    result = _result(body)
    if result is None or _is_status_result(result):
        return None
    parameters = _parameters(result.get("ResultParameters"))
    return RefundResult(
        conversation_id=result["ConversationID"],
        originator_conversation_id=_text(result.get("OriginatorConversationID")),
        result_code=str(result["ResultCode"]),
        result_desc=str(result.get("ResultDesc", "")),
        transaction_id=_receipt(result.get("TransactionID")),
        amount=_decimal(parameters.get("TransactionAmount", parameters.get("Amount"))),
    )


def parse_status_result(body: Any) -> StatusResult | None:
    """The Transaction Status result in `body`, or None when it is not one or its code is
    missing or malformed. Parameter keys are read without their spaces: older results
    write `Originator Conversation ID`."""
    result = _result(body)
    if result is None or not _is_status_result(result):
        return None
    parameters = _parameters(result.get("ResultParameters"))
    return StatusResult(
        result_code=str(result["ResultCode"]),
        result_desc=str(result.get("ResultDesc", "")),
        originator_conversation_id=_text(parameters.get("OriginatorConversationID")),
        transaction_status=_text(parameters.get("TransactionStatus")),
        receipt=_receipt(parameters.get("ReceiptNo")),
        amount=_decimal(parameters.get("Amount")),
    )


def _result(body: Any) -> dict[str, Any] | None:
    """The `Result` object of `body`, when it has Daraja's ConversationID and a ResultCode
    (a number, or a string such as "R000002")."""
    result = _get(body, "Result")
    if not isinstance(result, dict) or _text(result.get("ConversationID")) is None:
        return None
    code = result.get("ResultCode")
    if isinstance(code, bool) or not isinstance(code, int | str) or str(code) == "":
        return None
    return result


def _is_status_result(result: dict[str, Any]) -> bool:
    if "TransactionStatus" in _parameters(result.get("ResultParameters")):
        return True
    references = _items(_get(result.get("ReferenceData"), "ReferenceItem"))
    return references.get("Occasion") == STATUS_OCCASION


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _metadata(metadata: Any) -> dict[str, Any] | None:
    """Name → Value of CallbackMetadata.Item (absent on failures: {}); a value-less item
    (Balance) maps to None. None when the metadata is malformed."""
    if metadata is None:
        return {}
    items = _get(metadata, "Item")
    if not isinstance(items, list):
        return None
    named = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
            return None
        named[item["Name"]] = item.get("Value")
    return named


def _parameters(parameters: Any) -> dict[str, Any]:
    return _items(_get(parameters, "ResultParameter"))


def _items(items: Any) -> dict[str, Any]:
    """Key → Value of Daraja's `[{"Key", "Value"}…]` lists (ResultParameter,
    ReferenceItem): a list of items, or one item on its own; keys lose their spaces;
    items that are not `{"Key": str, …}` are skipped."""
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        return {}
    return {
        item["Key"].replace(" ", ""): item.get("Value")
        for item in items
        if isinstance(item, dict) and isinstance(item.get("Key"), str)
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _receipt(value: Any) -> str | None:
    return value if isinstance(value, str) and RECEIPT.fullmatch(value) else None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None
