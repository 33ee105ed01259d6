"""Input types shared by every domain's schemas: bounded text, phone numbers, pages."""

import unicodedata
from typing import Annotated, Generic, TypeVar

import phonenumbers
from pydantic import AfterValidator, BaseModel, Field, StringConstraints


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


def mask_phone(phone: str | None) -> str | None:
    """Every character but the last three replaced by '*': safe to log and to show."""
    if not phone:
        return phone
    return "*" * (len(phone) - 3) + phone[-3:]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    page: int
    limit: int
    total: int


class PageParams(BaseModel):
    page: int = Field(1, ge=1, le=1_000_000)
    limit: int = Field(20, ge=1, le=100)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit
