"""An ASGI app served over real HTTP by uvicorn, inside the test's own event loop (so it
can share the test's database engine), on a free port."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # the test runner keeps its own signal handlers
        yield


@contextlib.asynccontextmanager
async def serving(app: Any, *, port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields its base URL (http://127.0.0.1:port)."""
    port = port or free_port()
    # An idle connection outlives the client's keep-alive expiry (httpx: 5 s): with both at
    # 5 s the client could send a request on a connection uvicorn was closing that instant,
    # and get a ReadError (seen once in test_faults, under steady load).
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass(frozen=True)
class Callback:
    method: str
    body: Any


def callback_receiver(keep: Callable[[Callback], None]) -> FastAPI:
    """A stand-in for our callback route: hands what providers POST or PUT to it to
    `keep`, and acknowledges as we do."""
    app = FastAPI()

    @app.api_route("/callbacks/{token}", methods=["POST", "PUT"])
    async def callback(token: str, request: Request) -> dict[str, Any]:
        keep(Callback(request.method, await request.json()))
        return {"ResultCode": 0, "ResultDesc": "Accepted"}

    return app
