"""A local MTN MoMo sandbox (payment-providers.md §1 and §3.1): provisioning, per-product
tokens, RequestToPay with the sandbox's checks in their order, status, callbacks, refunds.

Outcomes follow the payer's MSISDN (§1.9; API.md "Test phone numbers"): any other number
succeeds after `delay`. 46733123453 stays PENDING until asked again ≥ 30 s (simulator
clock) after the first status request; 46733123454 succeeds after 30 s. Ours only:
46733123499 never resolves, or fails with `stuck_reason` once the payer's 5-minute
window has passed when that switch is set.

The settings' API user and key are pre-provisioned without a providerCallbackHost, so
any callback host is accepted for them; users provisioned through /v1_0/apiuser must call
back to the host they registered. Beyond the shared switches, POST /_control/momo sets
`reason_as_object` (FAILED reasons as `{code, message}` instead of MTN's usual string),
`token_lifetime`, `any_currency` and `stuck_reason`. Queued faults apply to every MoMo
call (tokens and provisioning included); a hang does the work, then holds the answer back.
"""

import asyncio
import base64
import binascii
import functools
import itertools
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from boxoffice.config import Settings
from boxoffice.simulators.base import Fault, Simulator, simulator_app

NEVER_RESOLVES = "46733123499"
PROMPT_WINDOW = 300.0  # seconds the payer has to approve (§1.4)
SLOW = 30.0  # 46733123453 and 46733123454 (§1.9)
SANDBOX_CURRENCY = "EUR"
PENDING, SUCCESSFUL, FAILED = "PENDING", "SUCCESSFUL", "FAILED"


@dataclass(frozen=True)
class Scenario:
    """Where a transaction ends. `after`: seconds to it (None: the simulator's delay);
    `when_asked`: reached on a status request instead (46733123453)."""

    status: str
    reason: str | None = None
    after: float | None = None
    when_asked: bool = False


SCENARIOS: dict[str, Scenario] = {
    "46733123450": Scenario(FAILED),
    "46733123451": Scenario(FAILED, "APPROVAL_REJECTED"),
    "46733123452": Scenario(FAILED, "EXPIRED"),
    "46733123453": Scenario(SUCCESSFUL, when_asked=True),
    "46733123454": Scenario(SUCCESSFUL, after=SLOW),
    "46733123455": Scenario(FAILED, "PAYER_NOT_FOUND"),
    "46733123456": Scenario(FAILED, "PAYEE_NOT_ALLOWED_TO_RECEIVE"),
    "46733123457": Scenario(FAILED, "NOT_ALLOWED"),
    "46733123458": Scenario(FAILED, "NOT_ALLOWED_TARGET_ENVIRONMENT"),
    "46733123459": Scenario(FAILED, "INVALID_CALLBACK_URL_HOST"),
    "46733123460": Scenario(FAILED, "INVALID_CURRENCY"),
    "46733123461": Scenario(FAILED, "INTERNAL_PROCESSING_ERROR"),
    "46733123462": Scenario(FAILED, "SERVICE_UNAVAILABLE"),
    "46733123463": Scenario(FAILED, "COULD_NOT_PERFORM_TRANSACTION"),
}


class Product(StrEnum):
    COLLECTION = "collection"
    DISBURSEMENT = "disbursement"


class MomoError(Exception):
    """An error answer: its status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def error(status: int, code: str | None, message: str) -> MomoError:
    """MoMo's error body (§1.8); its 400s carry no documented code."""
    return MomoError(status, {"code": code, "message": message} if code else {"message": message})


def bad_key() -> MomoError:
    """The Azure gateway's answer, before MoMo sees the request (§1.3)."""
    message = (
        "Access denied due to invalid subscription key. "
        "Make sure to provide a valid key for an active subscription."
    )
    return MomoError(401, {"statusCode": 401, "message": message})


def bad_token() -> MomoError:
    """Shape unconfirmed: the gateway's JWT check, in Azure API Management's words."""
    return MomoError(401, {"statusCode": 401, "message": "Invalid JWT."})


def duplicate() -> MomoError:
    return error(
        409, "RESOURCE_ALREADY_EXIST", "Duplicated reference id. Creation of resource failed."
    )


Note = Annotated[str, Field(max_length=160, pattern=r"^[^'&]*$")]


class Party(BaseModel):
    partyIdType: Literal["MSISDN", "EMAIL", "PARTY_CODE"]
    partyId: str = Field(min_length=1)


class Transfer(BaseModel):
    """A RequestToPay or refund body. Strict: `amount` must be a JSON string."""

    model_config = ConfigDict(strict=True)

    amount: str = Field(pattern=r"^\d+(\.\d+)?$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    externalId: str | None = None
    payerMessage: Note | None = None
    payeeNote: Note | None = None
    payer: Party | None = None  # RequestToPay only
    referenceIdToRefund: str | None = None


class NewApiUser(BaseModel):
    providerCallbackHost: str = Field(pattern=r"^[^/:\s]+$")  # a host, not a URL


class MomoControl(BaseModel):
    """POST /_control/momo: the MoMo-only switches; unset ones stay as they are."""

    model_config = ConfigDict(extra="forbid")

    reason_as_object: bool | None = None
    token_lifetime: int | None = Field(None, ge=1)
    any_currency: bool | None = None
    stuck_reason: str | None = None  # set to null to make 46733123499 pend for ever again


@dataclass
class ApiUser:
    api_key: str | None = None
    callback_host: str | None = None  # None: any host (the pre-provisioned user)


@dataclass
class Token:
    product: Product
    user: ApiUser
    expires_at: float


@dataclass
class Transaction:
    """A RequestToPay (Collection) or a refund (Disbursement)."""

    reference: str
    product: Product
    details: dict[str, Any]  # echoed by the status request
    amount: Decimal
    scenario: Scenario
    due_at: float | None  # when settle() finishes it; None: only on request, or never
    callback_url: str | None
    callback_method: str | None  # None: the simulator's switch
    refund_of: str | None = None
    status: str = PENDING
    reason: str | None = None
    financial_transaction_id: str | None = None
    first_asked_at: float | None = None


@dataclass
class MomoSimulator(Simulator):
    """The sandbox's state: API users, tokens and transactions, by their ids."""

    target_environment: str = "sandbox"
    keys: dict[Product, str] = field(default_factory=dict)
    any_currency: bool = True
    token_lifetime: int = 3600
    reason_as_object: bool = False
    stuck_reason: str | None = None
    users: dict[str, ApiUser] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    transactions: dict[str, Transaction] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1530828708))

    def check_key(self, request: Request, *products: Product) -> None:
        if request.headers.get("ocp-apim-subscription-key") not in {self.keys[p] for p in products}:
            raise bad_key()

    def issue_token(self, product: Product, request: Request, body: bytes) -> dict[str, Any]:
        self.check_key(request, product)
        user_id, key = _basic(request)
        user = self.users.get(user_id)
        if user is None or user.api_key is None or key != user.api_key:
            raise MomoError(401, {"error": "login_failed"})  # body reported, unconfirmed
        if body:
            raise error(400, None, "The token request takes no body.")
        value = secrets.token_urlsafe(32)
        self.tokens[value] = Token(product, user, self.now() + self.token_lifetime)
        return {
            "access_token": value,
            "token_type": "access_token",
            "expires_in": self.token_lifetime,
        }

    def authenticate(self, product: Product, request: Request) -> ApiUser:
        self.check_key(request, product)
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = self.tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None or token.product != product or token.expires_at <= self.now():
            raise bad_token()
        return token.user

    def create(
        self, product: Product, request: Request, body: bytes, *, callback_method: str | None = None
    ) -> None:
        """Keep a RequestToPay or a refund the sandbox would accept, and time its outcome."""
        reference, transfer, callback_url = self._accept(product, request, body)
        original = None
        if product == Product.COLLECTION:
            scenario, due_at = self._payment_outcome(transfer)
        else:
            original = self.transactions.get(transfer.referenceIdToRefund or "")
            scenario, due_at = self._refund_outcome(transfer, original), self.now() + self.delay
        details = transfer.model_dump(exclude_none=True, exclude={"referenceIdToRefund"})
        if original is not None:  # a refund's status shows who gets the money back
            details["payee"] = original.details["payer"]
        self.transactions[reference] = Transaction(
            reference,
            product,
            details,
            Decimal(transfer.amount),
            scenario,
            due_at,
            callback_url,
            callback_method,
            refund_of=original.reference if original else None,
        )
        if due_at is not None:  # this one, not "whatever is due": a timer may wake a hair early
            self.later(due_at - self.now(), functools.partial(self._settle_one, reference))

    def _accept(
        self, product: Product, request: Request, body: bytes
    ) -> tuple[str, Transfer, str | None]:
        """The sandbox's checks, in its order (§3.1): the first that fails answers."""
        user = self.authenticate(product, request)
        reference = _reference(request.headers.get("x-reference-id"))
        environment = request.headers.get("x-target-environment")
        if not environment:
            raise error(400, None, "X-Target-Environment is required.")
        if environment != self.target_environment:
            raise error(
                500, "NOT_ALLOWED_TARGET_ENVIRONMENT", "Access to target environment is forbidden."
            )
        transfer = _transfer(request, body, product)
        callback_url = _callback_url(request)
        if not self.any_currency and transfer.currency != SANDBOX_CURRENCY:
            raise error(500, "INVALID_CURRENCY", "Currency not supported.")
        if callback_url and user.callback_host not in {None, urlsplit(callback_url).hostname}:
            raise error(500, "INVALID_CALLBACK_URL_HOST", "Callback URL with host not allowed.")
        if reference in self.transactions:
            raise duplicate()
        return reference, transfer, callback_url

    def _payment_outcome(self, transfer: Transfer) -> tuple[Scenario, float | None]:
        """The payer's MSISDN decides (§1.9), and when: None for never by the clock."""
        assert transfer.payer is not None
        msisdn = transfer.payer.partyId
        if msisdn == NEVER_RESOLVES:
            if self.stuck_reason is None:
                return Scenario(PENDING), None
            return Scenario(FAILED, self.stuck_reason), self.now() + PROMPT_WINDOW
        scenario = SCENARIOS.get(msisdn, Scenario(SUCCESSFUL))
        if scenario.when_asked:
            return scenario, None
        return scenario, self.now() + (self.delay if scenario.after is None else scenario.after)

    def _refund_outcome(self, transfer: Transfer, original: Transaction | None) -> Scenario:
        """A refund of a known SUCCESSFUL RequestToPay, for no more than is left of it,
        succeeds; any other fails (codes unconfirmed: MTN documents none)."""
        if original is None or original.product != Product.COLLECTION:
            return Scenario(FAILED, "RESOURCE_NOT_FOUND")
        left = original.amount - self._refunded(original.reference)
        if (
            original.status != SUCCESSFUL
            or transfer.currency != original.details["currency"]
            or Decimal(transfer.amount) > left
        ):
            return Scenario(FAILED, "NOT_ALLOWED")
        return Scenario(SUCCESSFUL)

    def _refunded(self, reference: str) -> Decimal:
        """What refunds not FAILED take (or will take) from a payment."""
        return sum(
            (
                t.amount
                for t in self.transactions.values()
                if t.refund_of == reference and t.scenario.status != FAILED
            ),
            Decimal(0),
        )

    def read(self, product: Product, request: Request, reference: str) -> dict[str, Any]:
        self.authenticate(product, request)
        transaction = self.transactions.get(reference)
        if transaction is None or transaction.product != product:
            raise error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
        if transaction.status == PENDING and transaction.scenario.when_asked:
            self._ask(transaction)
        return self.status_body(transaction)

    def _ask(self, transaction: Transaction) -> None:
        """46733123453: PENDING, then final for a request ≥ SLOW s after the first one."""
        if transaction.first_asked_at is None:
            transaction.first_asked_at = self.now()
        elif self.now() - transaction.first_asked_at >= SLOW:
            self._finish(transaction)

    def status_body(self, transaction: Transaction) -> dict[str, Any]:
        body = {**transaction.details, "status": transaction.status}
        if transaction.status == SUCCESSFUL:
            body["financialTransactionId"] = transaction.financial_transaction_id
        if transaction.status == FAILED and transaction.reason:
            reason = transaction.reason
            message = reason.replace("_", " ").capitalize()
            body["reason"] = (
                {"code": reason, "message": message} if self.reason_as_object else reason
            )
        return body

    async def settle(self) -> int:
        now = self.now()
        due = [
            t
            for t in self.transactions.values()
            if t.status == PENDING and t.due_at is not None and t.due_at <= now
        ]
        for transaction in due:
            self._finish(transaction)
        return len(due)

    async def _settle_one(self, reference: str) -> None:
        transaction = self.transactions[reference]
        if transaction.status == PENDING:
            self._finish(transaction)

    def _finish(self, transaction: Transaction) -> None:
        transaction.status = transaction.scenario.status
        transaction.reason = transaction.scenario.reason
        if transaction.status == SUCCESSFUL:
            transaction.financial_transaction_id = str(next(self._ids))
        body = self.status_body(transaction)
        self.send_callback(transaction.callback_url, body, method=transaction.callback_method)

    def provision(self, request: Request, body: bytes) -> None:
        self.check_key(request, *Product)
        reference = _reference(request.headers.get("x-reference-id"))
        try:
            host = NewApiUser.model_validate_json(body).providerCallbackHost
        except ValidationError:
            raise error(400, None, "providerCallbackHost must be a host name.") from None
        if reference in self.users:
            raise duplicate()
        self.users[reference] = ApiUser(callback_host=host)

    def user(self, request: Request, user_id: str) -> ApiUser:
        self.check_key(request, *Product)
        user = self.users.get(user_id)
        if user is None:
            raise error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
        return user


def _reference(value: str | None) -> str:
    """A canonical UUID v4, as MoMo wants its X-Reference-Id (else 400)."""
    try:
        parsed = uuid.UUID(value or "")
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4 or str(parsed) != (value or "").lower():
        raise error(400, None, "X-Reference-Id must be a UUID version 4.")
    return str(parsed)


def _transfer(request: Request, body: bytes, product: Product) -> Transfer:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise error(400, None, "Content-Type must be application/json.")
    try:
        transfer = Transfer.model_validate_json(body)
    except ValidationError as exc:
        raise error(400, None, f"Invalid body: {exc.errors()[0]['loc']}") from None
    needed = transfer.payer if product == Product.COLLECTION else transfer.referenceIdToRefund
    if needed is None or Decimal(transfer.amount) <= 0:
        raise error(400, None, "Invalid body.")
    return transfer


def _callback_url(request: Request) -> str | None:
    url = request.headers.get("x-callback-url")
    if url is not None and not urlsplit(url).hostname:
        raise error(400, None, "X-Callback-Url, when sent, must be an absolute URL.")
    return url


def _basic(request: Request) -> tuple[str, str]:
    """The API user and key of a Basic Authorization header (empty strings if none)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, key = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, key


def _api(sim: MomoSimulator) -> APIRouter:
    """MoMo's own paths (the ones the client uses, and sandbox provisioning)."""

    async def faults() -> AsyncIterator[None]:
        """The fault queued for this call: an error instead of the answer, or the answer
        held back past a client's timeout after the work is done (so a resend meets 409)."""
        fault = sim.take_fault()
        if fault == Fault.UNAVAILABLE:
            raise error(503, "SERVICE_UNAVAILABLE", "Service unavailable, try again later.")
        if fault == Fault.ERROR:
            raise error(500, "INTERNAL_PROCESSING_ERROR", "An internal error occurred.")
        yield
        if fault == Fault.HANG:
            await asyncio.sleep(sim.hang_seconds)

    # scope="function": the hang above happens before the answer leaves, not after.
    router = APIRouter(dependencies=[Depends(faults, scope="function")])

    @router.post("/v1_0/apiuser", status_code=201)
    async def create_user(request: Request) -> Response:
        sim.provision(request, await request.body())
        return Response(status_code=201)

    @router.post("/v1_0/apiuser/{user_id}/apikey", status_code=201)
    async def create_api_key(request: Request, user_id: str) -> dict[str, str]:
        user = sim.user(request, user_id)
        user.api_key = secrets.token_hex(16)
        return {"apiKey": user.api_key}

    @router.get("/v1_0/apiuser/{user_id}")
    async def get_user(request: Request, user_id: str) -> dict[str, Any]:
        user = sim.user(request, user_id)
        return {"providerCallbackHost": user.callback_host, "targetEnvironment": "sandbox"}

    @router.post("/{product}/token/")
    async def token(request: Request, product: Product) -> dict[str, Any]:
        return sim.issue_token(product, request, await request.body())

    @router.post("/collection/v1_0/requesttopay", status_code=202)
    async def request_to_pay(request: Request) -> Response:
        sim.create(Product.COLLECTION, request, await request.body())
        return Response(status_code=202)

    @router.get("/collection/v1_0/requesttopay/{reference}")
    async def request_to_pay_status(request: Request, reference: str) -> dict[str, Any]:
        return sim.read(Product.COLLECTION, request, reference)

    @router.post("/disbursement/{version}/refund", status_code=202)
    async def refund(request: Request, version: Literal["v1_0", "v2_0"]) -> Response:
        # v1 operations call back by POST, v2 ones by PUT (§1.10).
        method = "PUT" if version == "v2_0" else "POST"
        sim.create(Product.DISBURSEMENT, request, await request.body(), callback_method=method)
        return Response(status_code=202)

    @router.get("/disbursement/{version}/refund/{reference}")
    async def refund_status(
        request: Request, version: Literal["v1_0", "v2_0"], reference: str
    ) -> dict[str, Any]:
        return sim.read(Product.DISBURSEMENT, request, reference)

    return router


def _control(sim: MomoSimulator) -> APIRouter:
    router = APIRouter(prefix="/_control", include_in_schema=False)

    @router.post("/momo")
    async def configure(change: MomoControl) -> dict[str, bool]:
        for name in change.model_fields_set:
            setattr(sim, name, getattr(change, name))
        return {"ok": True}

    return router


async def _answer(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MomoError)
    return JSONResponse(exc.body, status_code=exc.status)


def create_momo_simulator(settings: Settings, *, http: httpx.AsyncClient | None = None) -> FastAPI:
    """The MoMo simulator app, configured from the same settings as the client."""
    sim = MomoSimulator(
        delay=settings.simulator_delay,
        http=http,
        target_environment=settings.momo_target_environment,
        keys={
            Product.COLLECTION: settings.momo_collection_key,
            Product.DISBURSEMENT: settings.momo_disbursement_key,
        },
        any_currency=settings.simulator_momo_any_currency,
        users={settings.momo_api_user: ApiUser(api_key=settings.momo_api_key)},
    )
    app = simulator_app("MTN MoMo simulator", sim, sim.settle)
    app.include_router(_control(sim))
    app.include_router(_api(sim))
    app.add_exception_handler(MomoError, _answer)
    return app
