"""Input types shared by every domain's schemas: bounded text, phone numbers, pages."""

import unicodedata
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

import phonenumbers
from pydantic import AfterValidator, BaseModel, Field, StringConstraints, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from boxoffice.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)


def _printable(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def text(max_length: int, *, min_length: int = 1) -> type[str]:
    """A trimmed string of bounded length without control characters."""
    return Annotated[  # type: ignore[return-value]
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_printable),
    ]


SearchText = text(100)


def normalise_phone(value: str) -> str:
    """E.164 (+2567...) from an international number; ValueError if it is not one."""
    if not value.startswith("+"):
        raise ValueError("must be an international number in E.164 form, e.g. +256772123456")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=32), AfterValidator(normalise_phone)
]


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic's errors as API.md's `[{"field": "items[0].quantity", "message": …}]`."""
    return [
        {"field": _field(tuple(e["loc"])), "message": e["msg"].removeprefix("Value error, ")}
        for e in errors
    ]


def _field(loc: tuple[Any, ...]) -> str:
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def invalid_at(loc: tuple[str | int, ...], message: str, value: object) -> ValidationError:
    """A cross-field rule's failure located at the field to fix (a bare ValueError in a
    model validator names no field, and the API would answer `field: "body"`)."""
    error = PydanticCustomError("value_error", message)  # type: ignore[arg-type]
    return ValidationError.from_exception_data(
        "input", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def validate(model: type[M], data: Any) -> M:
    """Validate data assembled by a service (a PATCH merged onto the stored state):
    failures answer 422 with the fields named, like request validation."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(field_errors(exc.errors())) from exc


class Money(BaseModel):
    amount: int  # minor units
    currency: str


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    page: int
    limit: int
    total: int


MAX_PAGE = 1_000_000  # keeps OFFSET far from integer overflow
MAX_LIMIT = 100


class PageParams(BaseModel):
    page: int = Field(1, ge=1, le=MAX_PAGE)
    limit: int = Field(20, ge=1, le=MAX_LIMIT)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit
