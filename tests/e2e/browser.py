"""Headless Chromium from Debian's package, driven by Playwright (no browser download)."""

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, async_playwright

from tests import services

CHROMIUM = (
    os.environ.get("BOXOFFICE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
# Without the background-networking flags Chromium keeps dialling out of a closed network.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        services.unavailable("Chromium", "no chromium on PATH; `make test` installs it")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()
