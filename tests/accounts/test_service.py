from datetime import timedelta

from sqlalchemy import func, select

from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import AuthSession, RefreshToken, RevokedAccessToken, Role
from boxoffice.config import Settings
from boxoffice.db import Database, utcnow
from tests.factories import make_user


async def test_purging_drops_only_tokens_nobody_can_use(db: Database, settings: Settings) -> None:
    now = utcnow()
    async with db.transaction() as session:
        user = await make_user(session)
        await accounts.open_session(session, settings=settings, user=user, now=now)
        session.add(RevokedAccessToken(jti=user.id, expires_at=now + timedelta(minutes=5)))
        await session.flush()
        assert await accounts.purge_expired_tokens(session, now=now) == 0
        later = now + timedelta(seconds=settings.refresh_token_ttl + 1)
        assert await accounts.purge_expired_tokens(session, now=later) == 3
        for model in (RefreshToken, RevokedAccessToken, AuthSession):
            assert await session.scalar(select(func.count()).select_from(model)) == 0


async def test_create_admin_promotes_an_existing_account_and_resets_its_password(
    db: Database, settings: Settings
) -> None:
    async with db.transaction() as session:
        user = await make_user(session)
        admin = await accounts.create_admin(
            session, email=user.email, password="new-admin-pass", name="ignored", now=utcnow()
        )
        assert admin.id == user.id
        assert admin.role == Role.ADMIN
        checked = await accounts.check_credentials(
            session, email=user.email, password="new-admin-pass"
        )
    assert checked.id == user.id
