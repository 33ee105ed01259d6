"""The HTTP edge through the real ASGI app: problems, request ids, headers, CORS, system
routes, docs and logs."""

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from boxoffice.accounts.models import Role
from boxoffice.app import create_app
from boxoffice.db import Database
from tests.conftest import make_client, make_settings, random_email
from tests.factories import PASSWORD, auth_headers, create_user

PROBLEM = "application/problem+json"
ONE_MIB = 1024 * 1024


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert (body["status"], body["code"]) == (status, code)
    return body


def registration(**overrides: object) -> dict:
    return {"email": random_email(), "password": PASSWORD, "name": "Fan", **overrides}


def oversized_body() -> bytes:
    return b'{"name": "' + b"x" * ONE_MIB + b'"}'


# Malformed and unexpected bodies


async def test_malformed_json_is_a_400_malformed_json_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")


@pytest.mark.parametrize("body", [[1, 2], "a string"], ids=["array", "string"])
async def test_json_that_is_not_an_object_is_a_validation_error(
    client: httpx.AsyncClient, body: object
) -> None:
    response = await client.post("/api/v1/users", json=body)
    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("content_type", "content"),
    [("text/plain", b"hello"), ("application/x-www-form-urlencoded", b"email=a%40b.c")],
    ids=["text", "form"],
)
async def test_a_body_that_is_not_json_is_unsupported_media_type(
    client: httpx.AsyncClient, content_type: str, content: bytes
) -> None:
    response = await client.post(
        "/api/v1/users", content=content, headers={"Content-Type": content_type}
    )
    assert_problem(response, 415, "unsupported_media_type")


async def test_a_body_over_one_mib_with_content_length_is_payload_too_large(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/users", content=oversized_body(), headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")
    assert "x-request-id" in response.headers


async def test_a_chunked_body_over_one_mib_is_payload_too_large(
    client: httpx.AsyncClient,
) -> None:
    body = oversized_body()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = await client.post(
        "/api/v1/users", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")


async def test_an_unknown_route_is_a_not_found_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/no-such-thing"), 404, "not_found")


async def test_a_wrong_method_is_a_method_not_allowed_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/api/v1/login"), 405, "method_not_allowed")


# Validation


async def test_validation_errors_name_each_field_by_its_path(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users", json=registration(email="not-an-email", preferred_genres=[7])
    )
    body = assert_problem(response, 422, "validation_error")
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"email", "preferred_genres[0]"}
    assert all(error["message"] for error in body["errors"])


async def test_a_bad_query_parameter_is_named_in_the_validation_error(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await create_user(db, role=Role.ADMIN)
    response = await client.get(
        "/api/v1/admin/users?limit=0", headers=await auth_headers(client, admin)
    )
    body = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["limit"]


# Unhandled errors


@pytest.fixture
def boom_app(app: FastAPI) -> FastAPI:
    async def boom() -> None:
        raise RuntimeError("secret internals at /srv/boxoffice")

    app.add_api_route("/boom", boom)
    return app


async def test_an_unhandled_exception_is_a_500_problem_without_a_stack_trace(
    boom_app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get("/boom")
    assert_problem(response, 500, "internal_error")
    assert "Traceback" not in response.text
    assert "secret internals" not in response.text
    assert response.headers["x-request-id"]


# Request ids


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/health"),
        await client.get("/nowhere"),
        await client.post("/api/v1/users", json={}),
    ):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_a_valid_incoming_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "lb-7f3a:2024.01_x"})
    assert response.headers["x-request-id"] == "lb-7f3a:2024.01_x"


@pytest.mark.parametrize(
    "hostile",
    [b"x" * 129, b"two words", b"line\nbreak", "caf\u00e9".encode()],
    ids=["too-long", "space", "newline", "non-ascii"],
)
async def test_a_hostile_incoming_request_id_is_replaced(
    client: httpx.AsyncClient, hostile: bytes
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": hostile})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


# Security headers and CORS


@pytest.mark.parametrize("path", ["/health", "/nowhere"])
async def test_responses_carry_security_headers(client: httpx.AsyncClient, path: str) -> None:
    headers = (await client.get(path)).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


@pytest.fixture
async def cors_client(database_url: str, tmp_path: Path, db: Database) -> AsyncIterator:
    settings = make_settings(database_url, tmp_path, cors_origins=["https://shop.example"])
    async with make_client(create_app(settings, db=db)) as client:
        yield client


async def test_cors_allows_a_configured_origin(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get("/health", headers={"Origin": "https://shop.example"})
    assert response.headers["access-control-allow-origin"] == "https://shop.example"


async def test_cors_preflight_from_a_configured_origin_is_allowed(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.options(
        "/api/v1/login",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://shop.example"


async def test_cors_ignores_an_origin_that_is_not_configured(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


# System routes


async def test_health_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_names_the_database_dialect(client: httpx.AsyncClient, db: Database) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": db.dialect}


async def test_metrics_count_requests_by_route_template_never_by_raw_id(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    response = await client.get(
        f"/api/v1/users/{user.id}", headers=await auth_headers(client, user)
    )
    assert response.status_code == 200

    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert re.search(
        r'^boxoffice_http_requests_total\{method="GET",route="/api/v1/users/\{user_id\}",'
        r'status="200"\} [1-9]',
        metrics.text,
        re.MULTILINE,
    )
    assert "boxoffice_http_request_duration_seconds_bucket{" in metrics.text
    assert str(user.id) not in metrics.text


# OpenAPI and docs

ACCOUNTS_OPERATIONS = {
    ("post", "/api/v1/users"),
    ("post", "/api/v1/login"),
    ("post", "/api/v1/token/refresh"),
    ("post", "/api/v1/logout"),
    ("get", "/api/v1/users"),
    ("get", "/api/v1/users/me"),
    ("patch", "/api/v1/users/me"),
    ("delete", "/api/v1/users/me"),
    ("get", "/api/v1/users/{user_id}"),
    ("get", "/api/v1/users/me/export"),
    ("get", "/api/v1/admin/users"),
    ("patch", "/api/v1/admin/users/{user_id}"),
}


async def test_openapi_describes_every_accounts_operation(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    described = {(method, path) for path, item in paths.items() for method in item}
    assert described >= ACCOUNTS_OPERATIONS


async def test_openapi_declares_the_http_bearer_security_scheme(
    client: httpx.AsyncClient,
) -> None:
    schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["HTTPBearer"].items()


async def test_docs_load_swagger_ui_from_our_own_static_files(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert "http://testserver/swagger/swagger-ui-bundle.js" in assets
    assert "http://testserver/swagger/swagger-ui.css" in assets
    assert "cdn" not in response.text.lower()
    for asset in assets:
        assert asset.startswith("http://testserver/swagger/"), asset
        assert (await client.get(asset)).status_code == 200, asset


async def test_the_root_leads_to_the_api_documentation(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"].endswith("/docs")


# Logs


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_each_request_is_logged_once_with_its_id_route_status_and_duration(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path, db: Database
) -> None:
    # Built inside the test, so that the log handler writes to capsys's stderr.
    app = create_app(make_settings(database_url, tmp_path), db=db)
    async with make_client(app) as client:
        response = await client.get("/health", headers={"X-Request-ID": "trace-me-1"})

    lines = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "request"]
    assert len(lines) == 1
    assert {
        "request_id": "trace-me-1",
        "method": "GET",
        "route": "/health",
        "status": 200,
    }.items() <= lines[0].items()
    assert lines[0]["duration_ms"] >= 0
    assert response.headers["x-request-id"] == "trace-me-1"


async def test_a_login_never_logs_the_password_or_the_tokens(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    database_url: str,
    tmp_path: Path,
    db: Database,
) -> None:
    user = await create_user(db)
    app = create_app(make_settings(database_url, tmp_path), db=db)
    async with make_client(app) as client:
        response = await client.post(
            "/api/v1/login", json={"email": user.email, "password": PASSWORD}
        )
        wrong = await client.post(
            "/api/v1/login", json={"email": user.email, "password": "wrong " + PASSWORD}
        )
    assert (response.status_code, wrong.status_code) == (200, 401)

    output = capsys.readouterr().err + caplog.text
    assert '"route": "/api/v1/login"' in output
    tokens = response.json()
    for secret in (PASSWORD, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in output
