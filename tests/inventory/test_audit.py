"""`boxoffice audit` and the worker's audit job find drift between stock, holds and tickets."""

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from boxoffice.cli import app as cli
from boxoffice.db import Database, utcnow
from boxoffice.inventory import audit, tasks
from boxoffice.inventory.models import TicketStock
from tests.orders.helpers import free_event


def _audit(database_url: str, tmp_path: Path) -> tuple[int, str]:
    env = {
        "BOXOFFICE_DATABASE_URL": database_url,
        "BOXOFFICE_JWT_SECRET": "test-secret-" + "x" * 32,
        "BOXOFFICE_VAR_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(cli, ["audit"], env=env)
    return result.exit_code, result.output


async def test_audit_reports_drift(
    committing_db: Database,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, tiers = await free_event(committing_db, capacity=10)
    code, output = await asyncio.to_thread(_audit, database_url, tmp_path)
    assert code == 0, output
    assert "no drift" in output

    async with committing_db.transaction() as session:  # a seat held by no hold
        await session.execute(
            update(TicketStock).where(TicketStock.ticket_type_id == tiers[0]).values(held=1)
        )
    code, output = await asyncio.to_thread(_audit, database_url, tmp_path)
    assert code == 1
    assert "held 1, active holds 0" in output

    async with committing_db.transaction() as session:
        assert len(await audit.check(session)) == 1
        logged: list[tuple[str, dict]] = []
        monkeypatch.setattr(
            tasks.log, "critical", lambda event, **kw: logged.append((event, kw)), raising=False
        )
        await tasks.audit_stock(session, {}, utcnow())
    assert logged == [("inventory.audit_failed", {"drifts": 1})]
