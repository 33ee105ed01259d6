"""Access tokens: what read_access_token accepts, and what its cache keeps."""

import uuid
from datetime import timedelta

import jwt

from boxoffice.accounts import tokens
from boxoffice.accounts.models import Role
from boxoffice.db import utcnow

SECRET = "token-test-secret-" + "x" * 32


def issue(ttl: int = 900) -> str:
    token, _ = tokens.issue_access_token(
        secret=SECRET,
        user_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        role=Role.ATTENDEE,
        now=utcnow(),
        ttl=ttl,
    )
    return token


def test_a_good_token_is_read_and_stops_working_when_it_expires() -> None:
    token, now = issue(ttl=60), utcnow()
    claims = tokens.read_access_token(token, secret=SECRET, now=now)
    assert claims is not None
    assert claims.role == Role.ATTENDEE
    assert tokens.read_access_token(token, secret=SECRET, now=now + timedelta(seconds=59))
    # Read from the cache now, yet expiry is still checked on every call.
    assert tokens.read_access_token(token, secret=SECRET, now=now + timedelta(seconds=61)) is None


def test_forged_odd_and_oversized_tokens_are_refused_and_never_cached() -> None:
    tokens._verified.cache_clear()
    good = issue()
    refused = [
        "not-a-token",
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # signature altered
        jwt.encode({"sub": "x"}, SECRET, algorithm="HS256"),  # claims missing
        jwt.encode({"iss": "boxoffice", "typ": "refresh", "sub": str(uuid.uuid4())}, SECRET),
        good + "." * tokens.MAX_TOKEN_LENGTH,
    ]
    for token in refused:
        assert tokens.read_access_token(token, secret=SECRET, now=utcnow()) is None
    assert tokens.read_access_token(good, secret="another-secret-" + "y" * 32, now=utcnow()) is None
    assert tokens._verified.cache_info().currsize == 0
