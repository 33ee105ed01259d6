"""Accounts over HTTP: registration, sign-in, tokens, profiles, admin, rate limits."""

import uuid
from datetime import timedelta

import jwt
import pytest
from httpx import AsyncClient

from boxoffice.accounts.models import Role
from boxoffice.app import create_app
from boxoffice.db import Database, utcnow
from boxoffice.web.deps import get_now
from tests.conftest import make_client, make_settings, random_email
from tests.factories import PASSWORD, auth_headers, create_user, log_in

API = "/api/v1"


def registration(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "email": random_email(),
        "password": "a-long-password",
        "name": "Amani Okello",
        "phone": "+256772123456",
        "preferred_genres": ["afrobeats"],
        "preferred_artists": ["Sauti Sol"],
    }
    body.update(overrides)
    return body


def bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    return body


def error_fields(response) -> set[str]:
    return {error["field"] for error in assert_problem(response, 422, "validation_error")["errors"]}


# Registration


async def test_registering_returns_the_new_attendee_without_secrets(client: AsyncClient) -> None:
    body = registration(email="Amani.Okello@Example.COM")
    response = await client.post(f"{API}/users", json=body)
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["email"] == "amani.okello@example.com"
    assert user["role"] == "attendee"
    assert user["phone"] == "+256772123456"
    assert user["preferred_genres"] == ["afrobeats"]
    assert set(user) == {"id", "email", "name", "phone", "role", "created_at"} | {
        "preferred_genres",
        "preferred_artists",
    }


async def test_registering_ignores_a_requested_role(client: AsyncClient) -> None:
    response = await client.post(f"{API}/users", json=registration(role="admin"))
    assert response.json()["role"] == "attendee"


async def test_registering_normalises_the_phone_to_e164(client: AsyncClient) -> None:
    response = await client.post(f"{API}/users", json=registration(phone="+254 708-374 149"))
    assert response.json()["phone"] == "+254708374149"


async def test_registering_an_email_again_in_any_case_is_a_conflict(client: AsyncClient) -> None:
    email = random_email()
    assert (await client.post(f"{API}/users", json=registration(email=email))).status_code == 201
    again = await client.post(f"{API}/users", json=registration(email=email.upper()))
    assert_problem(again, 409, "email_taken")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "short"),
        ("password", "x" * 129),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("email", "x" * 400 + "@example.com"),
        ("phone", "0772123456"),
        ("phone", "+999123"),
        ("phone", "+256 phone"),
        ("name", ""),
        ("name", "   "),
        ("name", "x" * 121),
        ("name", "Null\x00Byte"),
        ("preferred_genres", "rock"),
        ("preferred_genres", ["x" * 81]),
        ("preferred_genres", ["rock"] * 51),
        ("email", 12345),
    ],
)
async def test_registering_with_a_bad_field_names_that_field(
    client: AsyncClient, field: str, value: object
) -> None:
    response = await client.post(f"{API}/users", json=registration(**{field: value}))
    fields = error_fields(response)
    assert any(f == field or f.startswith(f"{field}[") for f in fields), fields


async def test_registering_with_nothing_lists_every_missing_field(client: AsyncClient) -> None:
    response = await client.post(f"{API}/users", json={})
    assert error_fields(response) == {"email", "password", "name"}


async def test_registering_with_odd_unicode_and_sql_keeps_it_as_text(client: AsyncClient) -> None:
    name = "Zoë 'Robert'); DROP TABLE users;-- 🎶"
    response = await client.post(f"{API}/users", json=registration(name=name))
    assert response.status_code == 201
    assert response.json()["name"] == name


# Login and tokens


async def test_logging_in_returns_a_bearer_pair(client: AsyncClient, db: Database) -> None:
    user = await create_user(db)
    tokens = await log_in(client, user.email.upper())
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    me = await client.get(f"{API}/users", headers=bearer(tokens))
    assert me.json()["id"] == str(user.id)


async def test_unknown_email_and_wrong_password_get_the_same_answer(
    client: AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    wrong_password = await client.post(
        f"{API}/login", json={"email": user.email, "password": "not-the-password"}
    )
    unknown_email = await client.post(
        f"{API}/login", json={"email": random_email(), "password": "not-the-password"}
    )
    assert_problem(wrong_password, 401, "invalid_credentials")
    assert wrong_password.json() == unknown_email.json()


async def test_a_deleted_account_cannot_log_in(client: AsyncClient, db: Database) -> None:
    user = await create_user(db, deleted_at=utcnow())
    response = await client.post(f"{API}/login", json={"email": user.email, "password": PASSWORD})
    assert_problem(response, 401, "invalid_credentials")


async def test_requests_without_a_token_are_unauthenticated(client: AsyncClient) -> None:
    assert_problem(await client.get(f"{API}/users"), 401, "unauthenticated")
    assert_problem(
        await client.get(f"{API}/users", headers={"Authorization": "Basic abc"}),
        401,
        "unauthenticated",
    )


async def test_an_expired_access_token_is_refused(app, client: AsyncClient, db: Database) -> None:
    tokens = await log_in(client, (await create_user(db)).email)
    app.dependency_overrides[get_now] = lambda: utcnow() + timedelta(seconds=901)
    assert_problem(await client.get(f"{API}/users", headers=bearer(tokens)), 401, "unauthenticated")


async def test_a_tampered_access_token_is_refused(client: AsyncClient, db: Database) -> None:
    tokens = await log_in(client, (await create_user(db)).email)
    header, _payload, signature = tokens["access_token"].split(".")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    claims["role"] = "admin"
    forged_payload = jwt.encode(claims, "w" * 32, algorithm="HS256").split(".")[1]
    forged = f"{header}.{forged_payload}.{signature}"
    assert_problem(
        await client.get(f"{API}/users", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "unauthenticated",
    )


async def test_a_token_signed_with_another_secret_is_refused(
    client: AsyncClient, db: Database
) -> None:
    tokens = await log_in(client, (await create_user(db)).email)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    other = jwt.encode(claims, "another-secret-" + "y" * 32, algorithm="HS256")
    response = await client.get(f"{API}/users", headers={"Authorization": f"Bearer {other}"})
    assert_problem(response, 401, "unauthenticated")


async def test_an_unsigned_alg_none_token_is_refused(client: AsyncClient, db: Database) -> None:
    tokens = await log_in(client, (await create_user(db)).email)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    response = await client.get(f"{API}/users", headers={"Authorization": f"Bearer {unsigned}"})
    assert_problem(response, 401, "unauthenticated")


async def test_garbage_tokens_are_refused(client: AsyncClient) -> None:
    for token in ("garbage", "a.b.c", "x" * 5000, "eyJhbGciOiJIUzI1NiJ9..."):
        response = await client.get(f"{API}/users", headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401, "unauthenticated")


async def test_refreshing_rotates_the_refresh_token(client: AsyncClient, db: Database) -> None:
    first = await log_in(client, (await create_user(db)).email)
    response = await client.post(
        f"{API}/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get(f"{API}/users", headers=bearer(second))).status_code == 200
    again = await client.post(
        f"{API}/token/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert again.status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(
    app,
    client: AsyncClient,
    db: Database,
) -> None:
    first = await log_in(client, (await create_user(db)).email)
    second = (
        await client.post(f"{API}/token/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    app.dependency_overrides[get_now] = lambda: utcnow() + timedelta(seconds=11)  # past the grace
    reuse = await client.post(
        f"{API}/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert_problem(reuse, 401, "invalid_token")
    # The thief's copy and the rightful holder's newer tokens die together.
    newer = await client.post(
        f"{API}/token/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert_problem(newer, 401, "invalid_token")
    me = await client.get(f"{API}/users", headers=bearer(second))
    assert_problem(me, 401, "unauthenticated")


async def test_a_rotated_token_sent_again_at_once_is_refused_without_signing_out(
    client: AsyncClient, db: Database
) -> None:
    first = await log_in(client, (await create_user(db)).email)
    body = {"refresh_token": first["refresh_token"]}
    second = (await client.post(f"{API}/token/refresh", json=body)).json()
    retry = await client.post(f"{API}/token/refresh", json=body)
    assert_problem(retry, 401, "invalid_token")
    assert (await client.get(f"{API}/users", headers=bearer(second))).status_code == 200


async def test_changing_the_password_signs_out_every_other_session(
    client: AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    thief, owner = await log_in(client, user.email), await log_in(client, user.email)
    response = await client.patch(
        f"{API}/users/me",
        headers=bearer(owner),
        json={"password": "a-fresh-secret", "current_password": PASSWORD},
    )
    assert response.status_code == 200
    assert_problem(await client.get(f"{API}/users", headers=bearer(thief)), 401, "unauthenticated")
    assert (await client.get(f"{API}/users", headers=bearer(owner))).status_code == 200


async def test_a_nul_character_in_the_login_email_is_a_validation_error(
    client: AsyncClient,
) -> None:
    response = await client.post(f"{API}/login", json={"email": "a\u0000@b.co", "password": "x"})
    assert error_fields(response) == {"email"}


async def test_an_unknown_or_expired_refresh_token_is_invalid(
    app,
    client: AsyncClient,
    db: Database,
) -> None:
    unknown = await client.post(f"{API}/token/refresh", json={"refresh_token": "nope"})
    assert_problem(unknown, 401, "invalid_token")
    tokens = await log_in(client, (await create_user(db)).email)
    app.dependency_overrides[get_now] = lambda: utcnow() + timedelta(days=31)
    expired = await client.post(
        f"{API}/token/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert_problem(expired, 401, "invalid_token")


async def test_logging_out_revokes_the_access_and_refresh_tokens(
    client: AsyncClient, db: Database
) -> None:
    tokens = await log_in(client, (await create_user(db)).email)
    assert (await client.post(f"{API}/logout", headers=bearer(tokens))).status_code == 204
    assert_problem(await client.get(f"{API}/users", headers=bearer(tokens)), 401, "unauthenticated")
    refresh = await client.post(
        f"{API}/token/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert_problem(refresh, 401, "invalid_token")


async def test_logging_out_leaves_the_users_other_logins_working(
    client: AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    phone, laptop = await log_in(client, user.email), await log_in(client, user.email)
    await client.post(f"{API}/logout", headers=bearer(phone))
    assert (await client.get(f"{API}/users", headers=bearer(laptop))).status_code == 200
    refresh = await client.post(
        f"{API}/token/refresh", json={"refresh_token": laptop["refresh_token"]}
    )
    assert refresh.status_code == 200


async def test_logging_out_with_a_refresh_token_revokes_that_one(
    client: AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    phone, laptop = await log_in(client, user.email), await log_in(client, user.email)
    response = await client.post(
        f"{API}/logout", headers=bearer(phone), json={"refresh_token": laptop["refresh_token"]}
    )
    assert response.status_code == 204
    refresh = await client.post(
        f"{API}/token/refresh", json={"refresh_token": laptop["refresh_token"]}
    )
    assert_problem(refresh, 401, "invalid_token")
    assert_problem(await client.get(f"{API}/users", headers=bearer(phone)), 401, "unauthenticated")


async def test_logging_out_with_someone_elses_refresh_token_is_refused(
    client: AsyncClient, db: Database
) -> None:
    mine = await log_in(client, (await create_user(db)).email)
    theirs = await log_in(client, (await create_user(db)).email)
    response = await client.post(
        f"{API}/logout", headers=bearer(mine), json={"refresh_token": theirs["refresh_token"]}
    )
    assert_problem(response, 401, "invalid_token")
    refresh = await client.post(
        f"{API}/token/refresh", json={"refresh_token": theirs["refresh_token"]}
    )
    assert refresh.status_code == 200


async def test_logging_out_needs_an_access_token(client: AsyncClient) -> None:
    assert_problem(await client.post(f"{API}/logout"), 401, "unauthenticated")


# Profile


async def test_users_and_users_me_both_return_the_caller(client: AsyncClient, db: Database) -> None:
    user = await create_user(db)
    headers = await auth_headers(client, user)
    assert (await client.get(f"{API}/users", headers=headers)).json()["id"] == str(user.id)
    assert (await client.get(f"{API}/users/me", headers=headers)).json()["id"] == str(user.id)


async def test_updating_the_profile_changes_only_what_was_sent(
    client: AsyncClient, db: Database
) -> None:
    user = await create_user(db, name="Old Name", phone="+256772123456")
    headers = await auth_headers(client, user)
    response = await client.patch(
        f"{API}/users/me", headers=headers, json={"name": "New Name", "preferred_genres": ["jazz"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["phone"], body["preferred_genres"]) == (
        "New Name",
        "+256772123456",
        ["jazz"],
    )
    assert (await client.get(f"{API}/users/me", headers=headers)).json()["name"] == "New Name"


async def test_the_phone_can_be_cleared(client: AsyncClient, db: Database) -> None:
    user = await create_user(db, phone="+256772123456")
    response = await client.patch(
        f"{API}/users/me", headers=await auth_headers(client, user), json={"phone": None}
    )
    assert response.json()["phone"] is None


async def test_changing_the_password_needs_the_current_one(
    client: AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    headers = await auth_headers(client, user)
    missing = await client.patch(
        f"{API}/users/me", headers=headers, json={"password": "brand-new-pass"}
    )
    assert_problem(missing, 422, "validation_error")
    wrong = await client.patch(
        f"{API}/users/me",
        headers=headers,
        json={"password": "brand-new-pass", "current_password": "not-it-at-all"},
    )
    assert_problem(wrong, 422, "invalid_current_password")
    right = await client.patch(
        f"{API}/users/me",
        headers=headers,
        json={"password": "brand-new-pass", "current_password": PASSWORD},
    )
    assert right.status_code == 200
    await log_in(client, user.email, "brand-new-pass")
    old = await client.post(f"{API}/login", json={"email": user.email, "password": PASSWORD})
    assert_problem(old, 401, "invalid_credentials")


async def test_a_profile_update_with_bad_values_names_them(
    client: AsyncClient, db: Database
) -> None:
    headers = await auth_headers(client, await create_user(db))
    response = await client.patch(
        f"{API}/users/me", headers=headers, json={"phone": "12", "name": "", "password": "short"}
    )
    assert {"phone", "name", "password"} <= error_fields(response)


# Reading other users


async def test_another_users_profile_is_not_found(client: AsyncClient, db: Database) -> None:
    me, other = await create_user(db), await create_user(db)
    headers = await auth_headers(client, me)
    assert (await client.get(f"{API}/users/{me.id}", headers=headers)).status_code == 200
    assert_problem(await client.get(f"{API}/users/{other.id}", headers=headers), 404, "not_found")
    assert_problem(
        await client.get(f"{API}/users/{uuid.uuid4()}", headers=headers), 404, "not_found"
    )


async def test_an_admin_can_read_any_user(client: AsyncClient, db: Database) -> None:
    admin, other = await create_user(db, role=Role.ADMIN), await create_user(db)
    response = await client.get(
        f"{API}/users/{other.id}", headers=await auth_headers(client, admin)
    )
    assert response.json()["email"] == other.email


async def test_a_malformed_user_id_is_a_validation_error(client: AsyncClient, db: Database) -> None:
    headers = await auth_headers(client, await create_user(db))
    response = await client.get(f"{API}/users/not-a-uuid", headers=headers)
    assert error_fields(response) == {"user_id"}


# Export and deletion


async def test_the_export_holds_the_profile_and_sign_in_sessions(
    client: AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    headers = await auth_headers(client, user)
    export = (await client.get(f"{API}/users/me/export", headers=headers)).json()
    assert export["user"]["email"] == user.email
    assert len(export["sessions"]) == 1
    assert "password_hash" not in str(export)


async def test_deleting_the_account_erases_it_and_signs_out(
    client: AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    tokens = await log_in(client, user.email)
    assert (await client.delete(f"{API}/users/me", headers=bearer(tokens))).status_code == 204
    assert_problem(await client.get(f"{API}/users", headers=bearer(tokens)), 401, "unauthenticated")
    login = await client.post(f"{API}/login", json={"email": user.email, "password": PASSWORD})
    assert_problem(login, 401, "invalid_credentials")
    again = await client.post(f"{API}/users", json=registration(email=user.email))
    assert again.status_code == 201


async def test_the_last_admin_cannot_delete_their_account(
    client: AsyncClient, db: Database
) -> None:
    admin = await create_user(db, role=Role.ADMIN)
    response = await client.delete(f"{API}/users/me", headers=await auth_headers(client, admin))
    assert_problem(response, 409, "last_admin")


# Admin


async def test_attendees_and_organizers_cannot_use_admin_endpoints(
    client: AsyncClient, db: Database
) -> None:
    for role in (Role.ATTENDEE, Role.ORGANIZER):
        headers = await auth_headers(client, await create_user(db, role=role))
        assert_problem(await client.get(f"{API}/admin/users", headers=headers), 403, "forbidden")
        response = await client.patch(
            f"{API}/admin/users/{uuid.uuid4()}", headers=headers, json={"role": "admin"}
        )
        assert_problem(response, 403, "forbidden")


async def test_admins_list_users_a_page_at_a_time(client: AsyncClient, db: Database) -> None:
    admin = await create_user(db, role=Role.ADMIN)
    for _ in range(4):
        await create_user(db)
    headers = await auth_headers(client, admin)
    first = (await client.get(f"{API}/admin/users?limit=2", headers=headers)).json()
    assert (first["page"], first["limit"], first["total"], len(first["items"])) == (1, 2, 5, 2)
    last = (await client.get(f"{API}/admin/users?limit=2&page=3", headers=headers)).json()
    assert len(last["items"]) == 1
    beyond = (await client.get(f"{API}/admin/users?limit=2&page=9", headers=headers)).json()
    assert (beyond["items"], beyond["total"]) == ([], 5)
    ids = {u["id"] for p in (1, 2, 3) for u in (
        await client.get(f"{API}/admin/users?limit=2&page={p}", headers=headers)
    ).json()["items"]}  # fmt: skip
    assert len(ids) == 5


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "page=0", "page=-1", "limit=abc", "role=king"]
)
async def test_admin_user_list_refuses_bad_paging_and_filters(
    client: AsyncClient, db: Database, query: str
) -> None:
    headers = await auth_headers(client, await create_user(db, role=Role.ADMIN))
    response = await client.get(f"{API}/admin/users?{query}", headers=headers)
    assert error_fields(response) == {query.split("=")[0]}


async def test_admins_filter_users_by_role_and_text(client: AsyncClient, db: Database) -> None:
    admin = await create_user(db, role=Role.ADMIN, name="Root")
    organizer = await create_user(db, role=Role.ORGANIZER, name="Nyege Nyege Festival")
    await create_user(db, name="Percent 100% Fan")
    headers = await auth_headers(client, admin)
    by_role = (await client.get(f"{API}/admin/users?role=organizer", headers=headers)).json()
    assert [u["id"] for u in by_role["items"]] == [str(organizer.id)]
    by_text = (await client.get(f"{API}/admin/users?q=nyege", headers=headers)).json()
    assert [u["id"] for u in by_text["items"]] == [str(organizer.id)]
    wildcard = (await client.get(f"{API}/admin/users?q=%25", headers=headers)).json()
    assert [u["name"] for u in wildcard["items"]] == ["Percent 100% Fan"]
    hostile = await client.get(f"{API}/admin/users?q=' OR 1=1 --", headers=headers)
    assert hostile.json()["total"] == 0
    nul = await client.get(f"{API}/admin/users?q=a%00b", headers=headers)
    assert error_fields(nul) == {"q"}


async def test_an_admin_promotes_a_user(client: AsyncClient, db: Database) -> None:
    admin, fan = await create_user(db, role=Role.ADMIN), await create_user(db)
    response = await client.patch(
        f"{API}/admin/users/{fan.id}",
        headers=await auth_headers(client, admin),
        json={"role": "organizer"},
    )
    assert response.json()["role"] == "organizer"
    fan_login = await log_in(client, fan.email)
    claims = jwt.decode(fan_login["access_token"], options={"verify_signature": False})
    assert claims["role"] == "organizer"


async def test_a_demotion_revokes_the_users_sessions(client: AsyncClient, db: Database) -> None:
    admin, organizer = (
        await create_user(db, role=Role.ADMIN),
        await create_user(db, role=Role.ORGANIZER),
    )
    organizer_tokens = await log_in(client, organizer.email)
    await client.patch(
        f"{API}/admin/users/{organizer.id}",
        headers=await auth_headers(client, admin),
        json={"role": "attendee"},
    )
    refresh = await client.post(
        f"{API}/token/refresh", json={"refresh_token": organizer_tokens["refresh_token"]}
    )
    assert_problem(refresh, 401, "invalid_token")


async def test_the_last_admin_cannot_be_demoted(client: AsyncClient, db: Database) -> None:
    admin = await create_user(db, role=Role.ADMIN)
    response = await client.patch(
        f"{API}/admin/users/{admin.id}",
        headers=await auth_headers(client, admin),
        json={"role": "attendee"},
    )
    assert_problem(response, 409, "last_admin")


async def test_role_changes_are_validated_and_need_a_real_user(
    client: AsyncClient, db: Database
) -> None:
    headers = await auth_headers(client, await create_user(db, role=Role.ADMIN))
    missing = await client.patch(
        f"{API}/admin/users/{uuid.uuid4()}", headers=headers, json={"role": "admin"}
    )
    assert_problem(missing, 404, "not_found")
    fan = await create_user(db)
    bad = await client.patch(f"{API}/admin/users/{fan.id}", headers=headers, json={"role": "root"})
    assert error_fields(bad) == {"role"}


# Rate limits


def limited_app(database_url: str, tmp_path, db: Database, **overrides: object):
    settings = make_settings(
        database_url, tmp_path, rate_limits=True, rate_limit_login="3/minute", **overrides
    )
    return create_app(settings, db=db)


async def test_too_many_logins_from_one_ip_are_rate_limited(
    database_url: str,
    tmp_path,
    db: Database,
) -> None:
    async with make_client(limited_app(database_url, tmp_path, db)) as client:
        for _ in range(3):
            response = await client.post(
                f"{API}/login", json={"email": random_email(), "password": "x"}
            )
            assert response.status_code == 401
        limited = await client.post(f"{API}/login", json={"email": random_email(), "password": "x"})
    assert_problem(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


async def test_too_many_logins_to_one_email_are_limited_across_ips(
    database_url: str,
    tmp_path,
    db: Database,
) -> None:
    app = limited_app(database_url, tmp_path, db)
    email = random_email()
    statuses = []
    for n in range(4):
        async with make_client(app, ip=f"10.0.0.{n + 1}") as client:
            response = await client.post(f"{API}/login", json={"email": email, "password": "x"})
            statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429]


async def test_registrations_are_rate_limited(database_url: str, tmp_path, db: Database) -> None:
    app = limited_app(database_url, tmp_path, db, rate_limit_register="2/minute")
    async with make_client(app) as client:
        statuses = [
            (await client.post(f"{API}/users", json=registration())).status_code for _ in range(3)
        ]
    assert statuses == [201, 201, 429]


@pytest.mark.services
async def test_two_app_instances_share_one_limit_through_redis(
    database_url: str,
    tmp_path,
    db: Database,
    redis_service: tuple[str, str],
) -> None:
    redis_url, prefix = redis_service
    prefix = f"{prefix}{uuid.uuid4().hex[:6]}:"
    first = limited_app(database_url, tmp_path, db, redis_url=redis_url, redis_prefix=prefix)
    second = limited_app(database_url, tmp_path, db, redis_url=redis_url, redis_prefix=prefix)
    statuses = []
    for app in (first, second, first, second):
        async with make_client(app) as client:
            response = await client.post(
                f"{API}/login", json={"email": random_email(), "password": "x"}
            )
            statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429]
