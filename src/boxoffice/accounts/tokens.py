"""Access tokens (short-lived JWTs) and refresh tokens (opaque, stored hashed)."""

import functools
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from boxoffice.accounts.models import Role

ALGORITHM = "HS256"
ISSUER = "boxoffice"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: uuid.UUID
    role: Role
    expires_at: datetime


def issue_access_token(
    *, secret: str, user_id: uuid.UUID, session_id: uuid.UUID, role: Role, now: datetime, ttl: int
) -> tuple[str, AccessClaims]:
    claims = AccessClaims(
        user_id=user_id,
        session_id=session_id,
        token_id=uuid.uuid4(),
        role=role,
        expires_at=now + timedelta(seconds=ttl),
    )
    payload = {
        "iss": ISSUER,
        "typ": "access",
        "sub": str(user_id),
        "sid": str(session_id),
        "jti": str(claims.token_id),
        "role": role.value,
        "iat": int(now.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM), claims


MAX_TOKEN_LENGTH = 2048  # ours are ~400 characters; anything far longer is not one


class _Refused(Exception):
    """A token that is not ours, or not an access token: raised, so never cached."""


def read_access_token(token: str, *, secret: str, now: datetime) -> AccessClaims | None:
    """The claims of a valid, unexpired access token signed by us, else None."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        claims = _verified(token, secret)
    except _Refused:
        return None
    return claims if claims.expires_at > now else None


@functools.lru_cache(maxsize=8192)
def _verified(token: str, secret: str) -> AccessClaims:
    """A good token's signature and claims, checked once: a fan sends the same token with
    every request, and checking it costs as much as a tenth of a hold. Only good tokens
    are cached (a refusal raises), so junk sent by anyone cannot fill the cache. Expiry is
    the caller's to check (it changes with the clock); revocation is the database's."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # pinned: "none" and key-confusion tokens are refused
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "jti"], "verify_exp": False},
        )
        if payload.get("typ") != "access":
            raise _Refused
        return AccessClaims(
            user_id=uuid.UUID(payload["sub"]),
            session_id=uuid.UUID(payload["sid"]),
            token_id=uuid.UUID(payload["jti"]),
            role=Role(payload["role"]),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )
    except (jwt.InvalidTokenError, ValueError, KeyError, TypeError, OverflowError) as exc:
        raise _Refused from exc


def new_refresh_token() -> tuple[str, str]:
    """A fresh refresh token and the hash we store of it."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
