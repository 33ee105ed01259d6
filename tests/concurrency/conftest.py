from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.concurrency.helpers import server
from tests.conftest import empty_tables


@pytest.fixture
def process_output(tmp_path: Path) -> Iterator[IO[bytes]]:
    """Where served processes write; printed at teardown, so a failing test shows it."""
    with (tmp_path / "process.log").open("w+b") as output:
        yield output
        output.seek(0)
        print(output.read().decode(errors="replace"))


@dataclass(frozen=True)
class LiveServer:
    url: str
    log: Path


@pytest.fixture(scope="module")
async def live_server(
    database_url: str, engine: AsyncEngine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    """One real `boxoffice serve` on the test database for a whole module (starting one
    costs seconds); the tests' committing_db empties the tables between them, and the
    fixture once more when the server has stopped: its recorder writes what it still had
    (the fans' interactions) as it shuts down, after the last test's clean-up."""
    var_dir = tmp_path_factory.mktemp("served")
    log = var_dir / "process.log"
    with log.open("wb") as output:
        async with server(database_url, var_dir, output) as url:
            yield LiveServer(url, log)
    await empty_tables(engine)


@pytest.fixture
def served_url(live_server: LiveServer) -> Iterator[str]:
    """The module's server; what it logged during the test is printed, so a failure shows."""
    start = live_server.log.stat().st_size
    yield live_server.url
    print(live_server.log.read_bytes()[start:].decode(errors="replace"))
