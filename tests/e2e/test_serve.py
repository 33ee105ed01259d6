"""The real `boxoffice` command: serve a fresh database over HTTP, refuse a bad configuration,
create an admin."""

import subprocess
from pathlib import Path
from typing import IO

import anyio
import httpx

from boxoffice.app import create_app
from boxoffice.db import Database
from tests.conftest import make_client, make_settings, random_email
from tests.e2e.server import BOXOFFICE, boxoffice_env, free_port, served
from tests.factories import PASSWORD, log_in


async def test_serve_migrates_a_fresh_database_and_serves_the_api_over_http(
    fresh_database: dict[str, str], tmp_path: Path, process_output: IO[bytes]
) -> None:
    env = boxoffice_env(tmp_path, **fresh_database)
    email = random_email()
    async with (
        served(env, process_output, cwd=tmp_path) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        registered = await client.post(
            "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Fan"}
        )
        assert registered.status_code == 201, registered.text
        tokens = await log_in(client, email)
        me = await client.get(
            "/api/v1/users", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        ready = await client.get("/ready")

    assert me.status_code == 200, me.text
    assert me.json() == registered.json()
    assert ready.json()["database"] == fresh_database["BOXOFFICE_DATABASE_URL"].split("+")[0]


def test_serve_on_postgresql_without_a_jwt_secret_exits_naming_the_variable(
    tmp_path: Path,
) -> None:
    env = boxoffice_env(
        tmp_path, BOXOFFICE_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1/boxoffice"
    )
    result = subprocess.run(
        [*BOXOFFICE, "serve", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "BOXOFFICE_JWT_SECRET" in result.stderr, result.stderr


async def test_create_admin_makes_an_account_that_signs_in_as_admin(
    fresh_database: dict[str, str], tmp_path: Path
) -> None:
    email, password = random_email(), "admin password 1"
    result = await anyio.run_process(
        [*BOXOFFICE, "create-admin", "--email", email, "--password", password],
        env=boxoffice_env(tmp_path, **fresh_database),
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()

    url = fresh_database["BOXOFFICE_DATABASE_URL"]
    database = Database.from_url(url)
    try:
        app = create_app(make_settings(url, tmp_path), db=database)
        async with make_client(app) as client:
            tokens = await log_in(client, email, password)
            me = await client.get(
                "/api/v1/users", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
    finally:
        await database.dispose()
    assert me.status_code == 200, me.text
    assert (me.json()["email"], me.json()["role"]) == (email, "admin")


async def test_simulate_serves_a_providers_real_paths_alone(
    tmp_path: Path, process_output: IO[bytes]
) -> None:
    port = free_port()
    process = await anyio.open_process(
        [*BOXOFFICE, "simulate", "momo", "--port", str(port)],
        env=boxoffice_env(tmp_path),
        stdout=process_output,
        stderr=process_output,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            with anyio.fail_after(20):
                while True:
                    try:
                        refused = await client.post("/collection/token/")
                        break
                    except httpx.TransportError:
                        await anyio.sleep(0.1)
    finally:
        process.terminate()
        await process.wait()

    assert refused.status_code == 401  # no subscription key, no credentials: MoMo's answer
