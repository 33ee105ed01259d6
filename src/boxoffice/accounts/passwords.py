"""argon2id hashing, off the event loop (each hash costs tens of milliseconds of CPU)."""

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified when the email is unknown, so that the answer takes as long either way.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
UNUSABLE = "!"  # never produced by argon2: no password verifies against it


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    if password_hash == UNUSABLE:
        password_hash = None
    return await anyio.to_thread.run_sync(verify)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
