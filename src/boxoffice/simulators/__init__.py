"""Local stand-ins for the payment providers, speaking their real HTTP APIs."""

import contextlib
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from boxoffice.config import Settings
from boxoffice.simulators.base import Simulator


def factories() -> dict[str, Callable[[Settings], FastAPI]]:
    from boxoffice.simulators.momo import create_momo_simulator
    from boxoffice.simulators.mpesa import create_mpesa_simulator

    return {"momo": create_momo_simulator, "mpesa": create_mpesa_simulator}


def mount(app: FastAPI, settings: Settings) -> dict[str, Simulator]:
    """Every provider's simulator under /_sim/<provider> of `app` (API.md); by name."""
    simulators = {}
    for name, create in factories().items():
        simulator_app = create(settings)
        app.mount(f"/_sim/{name}", simulator_app)
        simulators[name] = simulator_app.state.simulator
    return simulators


def create_all(settings: Settings) -> FastAPI:
    """Both simulators in one app of their own, for `boxoffice simulate all`: the one
    place several web processes share, since a simulator keeps its state in memory."""
    simulators: dict[str, Simulator] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        for simulator in simulators.values():
            await simulator.stop()

    app = FastAPI(
        title="boxoffice payment simulators", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    simulators.update(mount(app, settings))
    return app
