from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests import services
from tests.conftest import BACKENDS
from tests.e2e.server import JWT_SECRET


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


@pytest.fixture
def process_output(tmp_path: Path) -> Iterator[IO[bytes]]:
    """Where the child writes; printed at teardown, so a failing test shows it."""
    with (tmp_path / "process.log").open("w+b") as output:
        yield output
        output.seek(0)
        print(output.read().decode(errors="replace"))
