import uuid
from typing import Annotated

from fastapi import Query, Response

from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import Role
from boxoffice.accounts.schemas import (
    Login,
    Logout,
    RefreshTokenBody,
    RoleUpdate,
    TokenPair,
    UserCreate,
    UserExport,
    UserRead,
    UserUpdate,
)
from boxoffice.validation import Page, SearchText
from boxoffice.web.api import api_router
from boxoffice.web.deps import (
    AdminUser,
    CallerDep,
    ClientIP,
    Clock,
    CurrentUser,
    DbDep,
    LimiterDep,
    PageDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
)
from boxoffice.web.errors import problems

router = api_router("accounts")


@router.post("/users", status_code=201, responses=problems(409, 429))
async def register(
    body: UserCreate,
    session: SessionDep,
    now: Clock,
    limiter: LimiterDep,
    settings: SettingsDep,
    ip: ClientIP,
) -> UserRead:
    await limiter.check("register", settings.rate_limit_register, f"ip:{ip}", f"email:{body.email}")
    user = await accounts.register_user(session, data=body, now=now)
    return UserRead.model_validate(user)


@router.post("/login", responses=problems(401, 429))
async def log_in(
    body: Login,
    db: DbDep,
    now: Clock,
    limiter: LimiterDep,
    settings: SettingsDep,
    ip: ClientIP,
) -> TokenPair:
    email = body.email.strip().lower()
    await limiter.check("login", settings.rate_limit_login, f"ip:{ip}", f"email:{email}")
    # One connection at a time: holding the read one while waiting for a write one let a
    # burst of logins take every pooled connection and wait on each other until timeout.
    async with db.read_transaction() as read_session:
        found = await accounts.find_user_by_email(read_session, email)
    user = await accounts.verify_credentials(found, body.password)
    async with db.transaction() as session:
        return await accounts.open_session(session, settings=settings, user=user, now=now)


@router.post("/token/refresh", responses=problems(401))
async def refresh(
    body: RefreshTokenBody, session: SessionDep, now: Clock, settings: SettingsDep
) -> TokenPair:
    return await accounts.refresh_tokens(
        session, settings=settings, refresh_token=body.refresh_token, now=now
    )


@router.post("/logout", status_code=204, responses=problems(401))
async def log_out(
    caller: CallerDep, session: SessionDep, now: Clock, body: Logout | None = None
) -> Response:
    await accounts.log_out(
        session,
        user=caller.user,
        claims=caller.claims,
        refresh_token=body.refresh_token if body else None,
        now=now,
    )
    return Response(status_code=204)


@router.get("/users", responses=problems(401))
async def whoami(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.get("/users/me", responses=problems(401))
async def read_profile(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.patch("/users/me", responses=problems(401))
async def update_profile(
    body: UserUpdate, caller: CallerDep, session: SessionDep, now: Clock
) -> UserRead:
    user = await accounts.update_profile(session, caller=caller.claims, data=body, now=now)
    return UserRead.model_validate(user)


@router.get("/users/me/export", responses=problems(401))
async def export_personal_data(
    user: CurrentUser, session: ReadSessionDep, now: Clock
) -> UserExport:
    return await accounts.export_user(session, user=user, now=now)


@router.delete("/users/me", status_code=204, responses=problems(401, 409))
async def delete_account(user: CurrentUser, session: SessionDep, now: Clock) -> Response:
    await accounts.delete_user(session, user_id=user.id, now=now)
    return Response(status_code=204)


@router.get("/users/{user_id}", responses=problems(401, 404))
async def read_user(user_id: uuid.UUID, viewer: CurrentUser, session: ReadSessionDep) -> UserRead:
    user = await accounts.get_user(session, user_id=user_id, viewer=viewer)
    return UserRead.model_validate(user)


@router.get("/admin/users", responses=problems(401, 403))
async def list_users(
    admin: AdminUser,
    session: ReadSessionDep,
    page: PageDep,
    role: Role | None = None,
    q: Annotated[SearchText | None, Query()] = None,
) -> Page[UserRead]:
    users, total = await accounts.list_users(session, page=page, role=role, q=q)
    return Page(
        items=[UserRead.model_validate(u) for u in users],
        page=page.page,
        limit=page.limit,
        total=total,
    )


@router.patch("/admin/users/{user_id}", responses=problems(401, 403, 404, 409))
async def change_role(
    user_id: uuid.UUID, body: RoleUpdate, admin: AdminUser, session: SessionDep, now: Clock
) -> UserRead:
    user = await accounts.change_role(
        session, actor=admin, user_id=user_id, role=body.role, now=now
    )
    return UserRead.model_validate(user)
