"""The real `boxoffice` command: serve a fresh database over HTTP, refuse a bad configuration,
create an admin."""

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import anyio
import httpx
import pytest

from boxoffice.app import create_app
from boxoffice.db import Database
from tests import services
from tests.conftest import BACKENDS, make_client, make_settings, random_email
from tests.factories import PASSWORD, log_in

BOXOFFICE = [sys.executable, "-m", "boxoffice"]
JWT_SECRET = "e2e-secret-" + "z" * 32
STARTUP_SECONDS = 20


@pytest.fixture(params=BACKENDS)
async def fresh_database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: services.PostgresDatabases
) -> dict[str, str]:
    """Environment naming a database that exists but has never been migrated (SQLite: not
    even the file)."""
    if request.param == "sqlite":
        path = tmp_path / "data" / "boxoffice.db"
        assert not path.exists()
        return {"BOXOFFICE_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    return {"BOXOFFICE_DATABASE_URL": await postgres.create(), "BOXOFFICE_JWT_SECRET": JWT_SECRET}


def boxoffice_env(var_dir: Path, **settings: str) -> dict[str, str]:
    """The test runner's environment without its BOXOFFICE_* variables, plus `settings`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BOXOFFICE_")}
    env.update(BOXOFFICE_RATE_LIMITS="false", BOXOFFICE_VAR_DIR=str(var_dir), **settings)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def process_output(tmp_path: Path) -> Iterator[IO[bytes]]:
    """Where the child writes; printed at teardown, so a failing test shows it."""
    with (tmp_path / "process.log").open("w+b") as output:
        yield output
        output.seek(0)
        print(output.read().decode(errors="replace"))


@contextlib.asynccontextmanager
async def served(env: dict[str, str], output: IO[bytes], cwd: Path) -> AsyncIterator[str]:
    """`boxoffice serve` on a free port until the block ends; yields its base URL."""
    port = free_port()
    process = await anyio.open_process(
        [*BOXOFFICE, "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        await wait_until_healthy(base_url, process)
        yield base_url
    finally:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until_healthy(base_url: str, process: anyio.abc.Process) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=1) as client:
        with anyio.fail_after(STARTUP_SECONDS):
            while True:
                assert process.returncode is None, f"serve exited with {process.returncode}"
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        return
                await anyio.sleep(0.1)


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
