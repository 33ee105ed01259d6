"""boxoffice serve | worker | migrate | demo | simulate | audit | create-admin"""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import Progress

from boxoffice import migrations
from boxoffice.config import ConfigError, Settings

app = typer.Typer(help="boxoffice: concert tickets paid with mobile money.", no_args_is_help=True)
console = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings()
    except (ConfigError, ValidationError) as exc:
        console.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _migrate(settings: Settings) -> None:
    with console.status(f"Migrating {_safe_url(settings.database_url)} …"):
        migrations.upgrade(settings.database_url)
    console.print(f"Database at revision {migrations.current_head()}.")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def migrate() -> None:
    """Apply every pending migration (SQLite or PostgreSQL)."""
    _migrate(_settings())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Web processes")] = 1,
    demo: Annotated[bool, typer.Option(help="Load the demo data first (idempotent)")] = False,
) -> None:
    """Migrate the database if needed, then serve the site and the API."""
    import uvicorn

    settings = _settings()
    _migrate(settings)
    if demo:
        _load_demo(settings)
    url = settings.public_url or f"http://{host}:{port}"
    # The web processes build payment callback URLs (and find the simulators) from it.
    os.environ.setdefault("BOXOFFICE_PUBLIC_URL", url)
    console.print(f"\n[bold]boxoffice[/bold] is at {url}  (API docs: {url}/docs)")
    if demo:
        from boxoffice.demo import DEMO_PASSWORD, PEOPLE

        console.print(f"Demo admin: {PEOPLE[0].email} / {DEMO_PASSWORD}")
        console.print(f"Demo fan:   fan@boxoffice.local / {DEMO_PASSWORD}\n")
    simulator = None
    if workers > 1 and settings.run_simulators and not settings.simulator_url:
        simulator = _start_shared_simulators()
    metrics_dir = None
    if workers > 1:
        # Each process counts on its own; prometheus-client adds up their files on /metrics.
        metrics_dir = tempfile.mkdtemp(prefix="boxoffice-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "boxoffice.app:serving_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if simulator is not None:
            simulator.terminate()
            simulator.wait(timeout=10)


def _start_shared_simulators() -> subprocess.Popen[bytes]:
    """The simulators keep their state in memory, so several web processes must share one
    process of them: `boxoffice simulate all` on a free port, which the web processes'
    providers are pointed at instead of mounting their own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(  # noqa: S603 (our own command)
        [sys.executable, "-m", "boxoffice", "simulate", "all", "--port", str(port)]
    )
    for _ in range(100):  # until it listens, at most 10 s
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    os.environ["BOXOFFICE_SIMULATOR_URL"] = f"http://127.0.0.1:{port}"
    os.environ["BOXOFFICE_SIMULATORS"] = "false"
    console.print(f"Payment simulators shared by the web processes at http://127.0.0.1:{port}")
    return process


@app.command()
def worker() -> None:
    """Run background jobs (hold expiry, e-mail, refunds…) until stopped."""
    from boxoffice.db import Database
    from boxoffice.logging import configure_logging
    from boxoffice.worker.runner import Worker

    settings = _settings()
    configure_logging(level=settings.log_level, json=settings.log_json)

    from boxoffice.payments import setup as payment_setup

    payments = payment_setup.build(settings)
    payment_setup.configure(payments)
    if not settings.public_url:
        console.print(
            "[yellow]BOXOFFICE_PUBLIC_URL is not set: payment jobs cannot reach providers' "
            "simulators or give callback URLs.[/yellow]"
        )

    async def run() -> None:
        db = Database.from_url(settings.database_url)
        runner = Worker(
            db,
            poll_interval=settings.worker_poll_interval,
            lease_seconds=settings.job_lease_seconds,
            backoff_seconds=settings.job_backoff_seconds,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stop)
        try:
            await runner.run()
        finally:
            await payments.providers.aclose()
            await db.dispose()

    asyncio.run(run())


@app.command()
def simulate(
    provider: Annotated[str, typer.Argument(help="momo, mpesa, or all")],
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8100,
) -> None:
    """Run a provider's simulator alone: its real API paths at the root (or, for `all`,
    both under /_sim/momo and /_sim/mpesa)."""
    import uvicorn

    from boxoffice import simulators

    settings = _settings()
    factories = {**simulators.factories(), "all": simulators.create_all}
    if provider not in factories:
        console.print(f"[red]Unknown provider {provider!r}[/red]: use momo, mpesa or all.")
        raise typer.Exit(2)
    console.print(f"{provider} simulator at http://{host}:{port}")
    uvicorn.run(factories[provider](settings), host=host, port=port, log_config=None)


@app.command()
def demo() -> None:
    """Load the demo data (an admin, organizers, fans, genres, events). Safe to run again."""
    settings = _settings()
    _migrate(settings)
    _load_demo(settings)


def _load_demo(settings: Settings) -> None:
    from boxoffice.db import Database
    from boxoffice.demo import demo_steps, load_demo

    async def run() -> int:
        db = Database.from_url(settings.database_url)
        try:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("Loading demo data", total=demo_steps())
                return await load_demo(db, on_step=lambda _: progress.advance(task))
        finally:
            await db.dispose()

    created = asyncio.run(run())
    console.print(f"Demo data loaded ({created} new records).")


@app.command()
def audit() -> None:
    """Check the selling invariants and the money on the database; report any drift, and
    refunds or payments stuck for a person to look at (exit 1 if so)."""
    from datetime import timedelta

    from boxoffice.db import Database, utcnow
    from boxoffice.inventory import audit as stock_audit
    from boxoffice.payments import audit as money_audit

    settings = _settings()

    async def run() -> tuple[list[stock_audit.Drift], list[money_audit.Stuck]]:
        db = Database.from_url(settings.database_url)
        try:
            with console.status("Checking every stock shard and tier, refunds and payments…"):
                async with db.read_transaction() as session:
                    drifts = await stock_audit.check(session)
                    stuck = await money_audit.stuck(
                        session,
                        now=utcnow(),
                        payment_window=timedelta(seconds=settings.payment_window),
                    )
                    return drifts, stuck
        finally:
            await db.dispose()

    drifts, stuck = asyncio.run(run())
    for drift in drifts:
        console.print(f"[red]drift[/red] {drift}")
    for item in stuck:
        console.print(f"[red]stuck[/red] {item}")
    if drifts or stuck:
        console.print(
            f"[red]{len(drifts)} drift(s), {len(stuck)} stuck refund(s)/payment(s).[/red]"
        )
        raise typer.Exit(1)
    console.print("Stock, holds and tickets agree (no drift); no refund or payment is stuck.")


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="Admin's e-mail address")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    name: Annotated[str, typer.Option(help="Display name")] = "Administrator",
) -> None:
    """Create an admin account, or promote an existing one and set its password."""
    from boxoffice.accounts import service as accounts
    from boxoffice.accounts.schemas import Email, Password
    from boxoffice.db import Database, utcnow

    try:
        email = TypeAdapter(Email).validate_python(email)
        password = TypeAdapter(Password).validate_python(password)
    except ValidationError as exc:
        console.print(f"[red]{exc.errors()[0]['msg']}[/red]")
        raise typer.Exit(2) from exc
    settings = _settings()
    _migrate(settings)

    async def run() -> None:
        db = Database.from_url(settings.database_url)
        try:
            async with db.transaction() as session:
                await accounts.create_admin(
                    session, email=email, password=password, name=name, now=utcnow()
                )
        finally:
            await db.dispose()

    asyncio.run(run())
    console.print(f"{email} is an admin.")


def main() -> None:
    app()
