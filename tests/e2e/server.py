"""Running the real `boxoffice serve` for end-to-end tests."""

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import anyio
import httpx

BOXOFFICE = [sys.executable, "-m", "boxoffice"]
JWT_SECRET = "e2e-secret-" + "z" * 32
STARTUP_SECONDS = 20


def boxoffice_env(var_dir: Path, **settings: str) -> dict[str, str]:
    """The test runner's environment without its BOXOFFICE_* variables, plus `settings`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BOXOFFICE_")}
    env.update(BOXOFFICE_RATE_LIMITS="false", BOXOFFICE_VAR_DIR=str(var_dir), **settings)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
