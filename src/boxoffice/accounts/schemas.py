import uuid
from datetime import datetime
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from boxoffice.accounts.models import Role
from boxoffice.validation import Phone, text


def _normalise_email(value: str) -> str:
    try:
        email = validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return email.lower()


Email = Annotated[str, Field(max_length=320), AfterValidator(_normalise_email)]
Password = Annotated[str, Field(min_length=8, max_length=128)]
Name = text(120)
Preferences = Annotated[list[text(80)], Field(max_length=50)]


class UserCreate(BaseModel):
    email: Email
    password: Password
    name: Name
    phone: Phone | None = None
    preferred_genres: Preferences = []
    preferred_artists: Preferences = []


class UserUpdate(BaseModel):
    name: Name | None = None
    phone: Phone | None = None
    preferred_genres: Preferences | None = None
    preferred_artists: Preferences | None = None
    password: Password | None = None
    current_password: Annotated[str, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _password_change_needs_current(self) -> "UserUpdate":
        if self.password is not None and not self.current_password:
            raise ValueError("current_password is required to change the password")
        return self


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    phone: str | None
    role: Role
    preferred_genres: list[str]
    preferred_artists: list[str]
    created_at: datetime


class RoleUpdate(BaseModel):
    role: Role


class Login(BaseModel):
    email: text(320)  # not validated as an address: any wrong input gets the same 401
    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshTokenBody(BaseModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class Logout(BaseModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)] | None = None


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name, not a secret)
    expires_in: int


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    refreshed_at: datetime | None
    revoked_at: datetime | None


class UserExport(BaseModel):
    """Everything boxoffice keeps about one person (GDPR art. 15 and 20)."""

    exported_at: datetime
    user: UserRead
    sessions: list[SessionRead]
