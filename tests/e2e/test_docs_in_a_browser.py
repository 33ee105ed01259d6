"""Swagger UI in a real browser: offline assets, and Authorize then Try it out works."""

from pathlib import Path
from typing import IO

import httpx

from tests.conftest import random_email
from tests.e2e.browser import PHONE, chromium
from tests.e2e.server import boxoffice_env, served
from tests.factories import PASSWORD, log_in


async def test_swagger_ui_authorizes_with_a_token_and_calls_the_api(
    tmp_path: Path, process_output: IO[bytes]
) -> None:
    env = boxoffice_env(tmp_path, BOXOFFICE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/b.db")
    email = random_email()
    async with served(env, process_output, cwd=tmp_path) as base_url, chromium() as browser:
        async with httpx.AsyncClient(base_url=base_url) as client:
            await client.post(
                "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Docs Reader"}
            )
            token = (await log_in(client, email))["access_token"]

        page = await browser.new_page(viewport=PHONE)
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        await page.goto(f"{base_url}/docs")
        await page.get_by_role("button", name="Authorize").first.click()
        modal = page.locator(".modal-ux")
        await modal.locator("#auth-bearer-value").fill(token)
        await modal.get_by_role("button", name="Apply credentials").click()
        await modal.get_by_role("button", name="Close").click()

        operation = page.locator("#operations-accounts-whoami_api_v1_users_get")
        await operation.locator(".opblock-summary").first.click()
        await operation.get_by_role("button", name="Try it out").click()
        await operation.get_by_role("button", name="Execute").click()
        response = operation.locator(".live-responses-table .response")
        await response.first.wait_for()
        status = await response.locator(".response-col_status").first.inner_text()
        body = await response.locator(".response-col_description").first.inner_text()
        await page.screenshot(path=tmp_path / "docs.png")

    assert status.strip() == "200"
    assert email in body
    assert failed == []  # every asset came from our own server
