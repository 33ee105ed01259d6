"""Use cases of accounts: registration, sign-in sessions, profiles, roles."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.accounts import passwords, tokens
from boxoffice.accounts.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    LastAdmin,
    RefreshTokenReused,
    UserNotFound,
    WrongCurrentPassword,
)
from boxoffice.accounts.models import AuthSession, RefreshToken, RevokedAccessToken, Role, User
from boxoffice.accounts.schemas import (
    SessionRead,
    TokenPair,
    UserCreate,
    UserExport,
    UserRead,
    UserUpdate,
)
from boxoffice.audit import service as audit
from boxoffice.config import Settings
from boxoffice.db import insert_missing, like_pattern, lock_rows
from boxoffice.errors import Unauthenticated
from boxoffice.validation import PageParams

ROLE_RANK = {Role.ATTENDEE: 0, Role.ORGANIZER: 1, Role.ADMIN: 2}
# A rotated refresh token presented again this soon is a concurrent retry by its owner, not
# a copy in someone else's hands.
REUSE_GRACE = timedelta(seconds=10)


async def register_user(session: AsyncSession, *, data: UserCreate, now: datetime) -> User:
    # Hash before the first statement: on SQLite the write lock is taken at that statement,
    # and no one should queue behind a hash.
    password_hash = await passwords.hash_password(data.password)
    if await find_user_by_email(session, data.email) is not None:
        raise EmailTaken(f"{data.email} already has an account; sign in instead.")
    user = User(
        email=data.email,
        name=data.name,
        password_hash=password_hash,
        role=Role.ATTENDEE,
        phone=data.phone,
        preferred_genres=data.preferred_genres,
        preferred_artists=data.preferred_artists,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # two registrations with one email raced past the check
        raise EmailTaken(f"{data.email} already has an account; sign in instead.") from exc
    return user


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def get_user(session: AsyncSession, *, user_id: uuid.UUID, viewer: User) -> User:
    """The user, if the viewer is that user or an admin; others get NotFound, not Forbidden."""
    if viewer.id == user_id:
        return viewer
    user = await session.get(User, user_id)
    if user is None or user.is_deleted or viewer.role != Role.ADMIN:
        raise UserNotFound()
    return user


async def check_credentials(read_session: AsyncSession, *, email: str, password: str) -> User:
    """The user with that e-mail and password, or InvalidCredentials: the same answer, in
    the same time, for an unknown e-mail. Give it a read-only session: the argon2 check
    takes tens of milliseconds and must not hold a write lock."""
    return await verify_credentials(await find_user_by_email(read_session, email), password)


async def verify_credentials(user: User | None, password: str) -> User:
    """The user if the password is theirs, or InvalidCredentials: the same answer, in the
    same time, for no user. Call it with no transaction open: it takes tens of ms."""
    usable = user is not None and not user.is_deleted
    if not await passwords.verify_password(user.password_hash if usable else None, password):
        raise InvalidCredentials()
    assert user is not None
    return user


async def open_session(
    session: AsyncSession, *, settings: Settings, user: User, now: datetime
) -> TokenPair:
    """Start a sign-in session for a user whose credentials were checked."""
    login = AuthSession(user_id=user.id, created_at=now)
    session.add(login)
    await session.flush()
    return _issue_pair(session, settings=settings, user=user, login=login, now=now)


async def refresh_tokens(
    session: AsyncSession, *, settings: Settings, refresh_token: str, now: datetime
) -> TokenPair:
    """Rotate: the presented token stops working and a new pair is issued.

    The rotation is one conditional UPDATE, so two concurrent refreshes with one token
    cannot both succeed. A token presented after its rotation means it was copied: the
    whole session (every token rotated from that login) is revoked.
    """
    token_hash = tokens.hash_refresh_token(refresh_token)
    live_session = select(AuthSession.id).where(AuthSession.revoked_at.is_(None))
    session_id = await session.scalar(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.expires_at > now,
            RefreshToken.session_id.in_(live_session),
        )
        .values(rotated_at=now)
        .returning(RefreshToken.session_id)
    )
    if session_id is None:
        stale = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )
        if stale is not None and stale.rotated_at is not None:
            if now - stale.rotated_at <= REUSE_GRACE:
                # Two tabs, or a retry after a lost response: refuse, but don't sign out.
                raise InvalidToken("This refresh token was just used; use the newer one.")
            await _revoke_sessions(session, AuthSession.id == stale.session_id, now=now)
            raise RefreshTokenReused()
        raise InvalidToken()
    login = await session.get_one(AuthSession, session_id)
    user = await session.get_one(User, login.user_id)
    if user.is_deleted:
        raise InvalidToken()
    login.refreshed_at = now
    return _issue_pair(session, settings=settings, user=user, login=login, now=now)


def _issue_pair(
    session: AsyncSession, *, settings: Settings, user: User, login: AuthSession, now: datetime
) -> TokenPair:
    access_token, _ = tokens.issue_access_token(
        secret=settings.signing_secret,
        user_id=user.id,
        session_id=login.id,
        role=user.role,
        now=now,
        ttl=settings.access_token_ttl,
    )
    refresh_token, token_hash = tokens.new_refresh_token()
    session.add(
        RefreshToken(
            session_id=login.id,
            token_hash=token_hash,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl),
        )
    )
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl,
    )


INVALID_ACCESS = "The access token is missing, invalid or expired."
REVOKED_ACCESS = "The access token has been revoked."
# Built once: every authenticated request runs it, and composing it costs more than running it.
_LIVE_USER = (
    select(User)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(
        User.id == bindparam("user_id"),
        User.deleted_at.is_(None),
        AuthSession.id == bindparam("session_id"),
        AuthSession.revoked_at.is_(None),
        ~exists().where(RevokedAccessToken.jti == bindparam("jti")),
    )
)


async def live_user(session: AsyncSession, claims: tokens.AccessClaims) -> User:
    """The user of a token read already, unless the token or its session was revoked."""
    user = await session.scalar(
        _LIVE_USER,
        {"user_id": claims.user_id, "session_id": claims.session_id, "jti": claims.token_id},
    )
    if user is None:
        raise Unauthenticated(REVOKED_ACCESS)
    return user


async def log_out(
    session: AsyncSession,
    *,
    user: User,
    claims: tokens.AccessClaims,
    refresh_token: str | None,
    now: datetime,
) -> None:
    """Revoke this access token and the given refresh token's session, or else its own."""
    # Idempotent: a double-clicked logout revokes once and answers 204 twice.
    await insert_missing(
        session, RevokedAccessToken, [{"jti": claims.token_id, "expires_at": claims.expires_at}]
    )
    if refresh_token is None:
        await _revoke_sessions(session, AuthSession.id == claims.session_id, now=now)
        return
    session_id = await session.scalar(
        select(RefreshToken.session_id)
        .join(AuthSession)
        .where(
            RefreshToken.token_hash == tokens.hash_refresh_token(refresh_token),
            AuthSession.user_id == user.id,
        )
    )
    if session_id is None:
        raise InvalidToken("That refresh token is not one of yours.")
    await _revoke_sessions(session, AuthSession.id == session_id, now=now)


async def _revoke_sessions(session: AsyncSession, *where: object, now: datetime) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.revoked_at.is_(None), *where)  # type: ignore[arg-type]
        .values(revoked_at=now)
    )


async def update_profile(
    session: AsyncSession, *, caller: tokens.AccessClaims, data: UserUpdate, now: datetime
) -> User:
    user = await _get_active_user(session, caller.user_id)
    new_hash = None
    if data.password is not None:
        if not await passwords.verify_password(user.password_hash, data.current_password or ""):
            raise WrongCurrentPassword()
        new_hash = await passwords.hash_password(data.password)
    changes = data.model_dump(exclude_unset=True, exclude={"password", "current_password"})
    for field in ("name", "preferred_genres", "preferred_artists"):
        if changes.get(field, "") is None:  # these cannot be cleared, only replaced
            del changes[field]
    for field, value in changes.items():
        setattr(user, field, value)
    if new_hash is not None:
        user.password_hash = new_hash
        # Whoever else knew the old password is signed out; this device stays in.
        await _revoke_sessions(
            session, AuthSession.user_id == user.id, AuthSession.id != caller.session_id, now=now
        )
    user.updated_at = now
    return user


async def _get_active_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    """The user's current row, in this transaction (not the copy authentication read)."""
    user = await session.get(User, user_id, populate_existing=True)
    if user is None or user.is_deleted:
        raise UserNotFound()
    return user


async def export_user(session: AsyncSession, *, user: User, now: datetime) -> UserExport:
    logins = await session.scalars(
        select(AuthSession).where(AuthSession.user_id == user.id).order_by(AuthSession.created_at)
    )
    return UserExport(
        exported_at=now,
        user=UserRead.model_validate(user),
        sessions=[SessionRead.model_validate(login) for login in logins],
    )


async def delete_user(session: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> None:
    """Erase personal data and sign out everywhere; the row stays for the sales ledger."""
    user = await _get_active_user(session, user_id)
    if user.role == Role.ADMIN:
        await _ensure_another_admin(session, besides=user.id)
    user.email = f"deleted-{user.id.hex}@deleted.invalid"
    user.name = "Deleted user"
    user.phone = None
    user.preferred_genres = []
    user.preferred_artists = []
    user.password_hash = passwords.UNUSABLE
    user.deleted_at = now
    user.updated_at = now
    await _revoke_sessions(session, AuthSession.user_id == user.id, now=now)
    await audit.record(  # no personal data here: the erasure must be complete
        session,
        actor_id=user.id,
        action="user.deleted",
        target_type="user",
        target_id=user.id,
        before=None,
        after=None,
        now=now,
    )


async def list_users(
    session: AsyncSession, *, page: PageParams, role: Role | None = None, q: str | None = None
) -> tuple[Sequence[User], int]:
    query = select(User).where(User.deleted_at.is_(None))
    if role is not None:
        query = query.where(User.role == role)
    if q:
        pattern = like_pattern(q.lower())
        query = query.where(
            or_(
                User.email.like(pattern, escape="\\"),
                func.lower(User.name).like(pattern, escape="\\"),
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    users = await session.scalars(
        query.order_by(User.created_at.desc(), User.id).offset(page.offset).limit(page.limit)
    )
    return users.all(), total or 0


async def change_role(
    session: AsyncSession, *, actor: User, user_id: uuid.UUID, role: Role, now: datetime
) -> User:
    user = await _get_active_user(session, user_id)
    previous = user.role
    if previous == role:
        return user
    if previous == Role.ADMIN:
        await _ensure_another_admin(session, besides=user.id)
    user.role = role
    user.updated_at = now
    if ROLE_RANK[role] < ROLE_RANK[previous]:
        # A demoted user keeps no session that was granted under the old role.
        await _revoke_sessions(session, AuthSession.user_id == user.id, now=now)
    await audit.record(
        session,
        actor_id=actor.id,
        action="user.role_changed",
        target_type="user",
        target_id=user.id,
        before={"role": previous.value},
        after={"role": role.value},
        now=now,
    )
    return user


async def _ensure_another_admin(session: AsyncSession, *, besides: uuid.UUID) -> None:
    # Locking every admin row first serialises concurrent demotions on PostgreSQL: the
    # second one waits, re-reads, and sees the first admin already gone. (SQLite writers
    # are serialised by BEGIN IMMEDIATE.)
    admins = await lock_rows(
        session, select(User.id).where(User.role == Role.ADMIN, User.deleted_at.is_(None))
    )
    if not any(admin_id != besides for admin_id in admins):
        raise LastAdmin("Promote another admin before removing this one.")


async def create_admin(
    session: AsyncSession, *, email: str, password: str, name: str, now: datetime
) -> User:
    """Create an admin, or promote and reset the password of an existing account."""
    user = await find_user_by_email(session, email)
    password_hash = await passwords.hash_password(password)
    if user is None:
        user = User(email=email, name=name, created_at=now, password_hash=password_hash)
        session.add(user)
    user.role = Role.ADMIN
    user.password_hash = password_hash
    user.deleted_at = None
    user.updated_at = now
    await session.flush()
    await _revoke_sessions(session, AuthSession.user_id == user.id, now=now)  # password reset
    return user


async def purge_expired_tokens(session: AsyncSession, *, now: datetime) -> int:
    """Housekeeping: drop revocation entries and refresh tokens nobody can use any more."""
    revoked = await session.execute(
        delete(RevokedAccessToken).where(RevokedAccessToken.expires_at <= now)
    )
    expired = await session.execute(delete(RefreshToken).where(RefreshToken.expires_at <= now))
    dead_logins = await session.execute(
        delete(AuthSession).where(
            ~exists().where(RefreshToken.session_id == AuthSession.id),
            AuthSession.created_at <= now - timedelta(days=1),
        )
    )
    return revoked.rowcount + expired.rowcount + dead_logins.rowcount
