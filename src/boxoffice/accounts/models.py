import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from boxoffice.db import Base, UUIDPrimaryKey, str_enum, utcnow


class Role(StrEnum):
    ATTENDEE = "attendee"
    ORGANIZER = "organizer"
    ADMIN = "admin"


class User(UUIDPrimaryKey, Base):
    __tablename__ = "users"

    # Stored normalised and lower-cased: uniqueness is case-insensitive on every database.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role), default=Role.ATTENDEE, index=True)
    phone: Mapped[str | None] = mapped_column(String(16))
    preferred_genres: Mapped[list[str]] = mapped_column(JSON, default=list)
    preferred_artists: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None]

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class AuthSession(UUIDPrimaryKey, Base):
    """One login: the family of refresh tokens rotated from it, and its access tokens."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    refreshed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RefreshToken(UUIDPrimaryKey, Base):
    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the token: a leaked table does not hand out sessions.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    rotated_at: Mapped[datetime | None]


class RevokedAccessToken(Base):
    """Access tokens revoked before they expire (logout); purged once expired."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
