"""Catalogue reads under load: N events with three tiers each, the real server, wrk.

    .venv/bin/python benchmarks/catalog.py [--database sqlite|postgresql] [--events 10000]
                                           [--duration 10] [--connections 64]

Creates its own database (a SQLite file in a temporary directory, or a uniquely named
PostgreSQL database on 127.0.0.1:5432 as user postgres), migrates it, loads the events,
starts `python -m boxoffice serve --workers 2`, and drives each scenario with wrk, first with
the catalogue cache on (default settings), then off (BOXOFFICE_CATALOG_CACHE_TTL=0). Prints a
Markdown table. Everything it made is removed at the end, also on Ctrl-C or an error.
"""

import argparse
import asyncio
import contextlib
import os
import random
import resource
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, too

from benchmarks.common import (
    CpuMeter,
    Server,
    ensure_wrk,
    interrupted,
    machine,
    machine_jiffies,
    parse_wrk,
    server_env,
    wait_for_idle,
    workspace,
)
from boxoffice import demo
from boxoffice.accounts.models import Role, User
from boxoffice.catalog import search
from boxoffice.catalog.models import Category, Event, EventStatus, TicketType
from boxoffice.db import Database, utcnow
from boxoffice.inventory.models import TicketStock

BATCH = 2_000  # events per transaction while loading
RARE_WORD = "marimba"  # in 1 event description of 100: the keyword-search scenario
VENUES = sorted({event.venue for event in demo.EVENTS}, key=lambda venue: venue.name)
REGULAR_PRICE = {  # a regular ticket, in minor units
    "UGX": 50_000,
    "KES": 150_000,
    "TZS": 2_000_000,
    "RWF": 10_000,
    "ETB": 50_000,
    "NGN": 1_500_000,
    "GHS": 15_000,
    "XOF": 10_000,
}
TITLE_WORDS = ("Live", "Nights", "Festival", "Sessions", "Showcase", "Weekend", "Jam", "Gala")
NAMES = ("Amani", "Kofi", "Zuri", "Tunde", "Nia", "Juma", "Ama", "Chidi", "Wanjiru", "Moussa")
GROUPS = ("Band", "Collective", "Quartet", "Trio", "Crew", "Ensemble", "Orchestra", "Choir")
MOODS = ("An evening of", "A night of", "An afternoon of", "A weekend of", "Three stages of")


# Loading


async def load(url: str, events: int, now: datetime) -> list[uuid.UUID]:
    """N events (3 tiers each) in a few transactions; the ids of the listed ones."""
    db = Database.from_url(url)
    rng = random.Random(20_26)
    try:
        async with db.transaction() as session:
            organizers = [_organizer(index, now) for index in range(20)]
            session.add_all(organizers)
            categories = [
                Category(id=uuid.uuid4(), slug=slug, name=name, created_at=now)
                for slug, name in demo.CATEGORIES
            ]
            session.add_all(categories)
        started = time.monotonic()
        for first in range(0, events, BATCH):
            rows: tuple[list[dict[str, Any]], ...] = ([], [], [])
            for index in range(first, min(first + BATCH, events)):
                _add_event_rows(rows, index, rng, now, organizers, categories)
            async with db.transaction() as session:
                for model, batch in zip((Event, TicketType, TicketStock), rows, strict=True):
                    await session.execute(insert(model), batch)
            done = min(first + BATCH, events)
            print(f"  loaded {done:,}/{events:,} events ({time.monotonic() - started:.1f} s)")
        if db.dialect == "postgresql":
            # What autovacuum does within a minute or so of a bulk load: planner statistics,
            # and the GIN pending list merged (until then every keyword search scans it).
            async with db.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.exec_driver_sql("VACUUM ANALYZE")
        async with db.read_transaction() as session:
            listed = await session.scalars(
                select(Event.id).where(Event.status == EventStatus.PUBLISHED, Event.ends_at > now)
            )
            return list(listed)
    finally:
        await db.dispose()


def _organizer(index: int, now: datetime) -> User:
    return User(
        id=uuid.uuid4(),
        email=f"bench-organizer-{index}@boxoffice.local",
        name=f"Bench Organizer {index}",
        role=Role.ORGANIZER,
        password_hash="!",  # noqa: S106 (matches no password: nobody signs in as them)
        preferred_genres=[],
        preferred_artists=[],
        created_at=now,
        updated_at=now,
    )


def _add_event_rows(
    rows: tuple[list[dict[str, Any]], ...],
    index: int,
    rng: random.Random,
    now: datetime,
    organizers: list[User],
    categories: list[Category],
) -> None:
    """One event, its tiers and their stock shards, with the derived search fields filled
    by catalog.search.index_fields (SQLite's FTS table follows by trigger)."""
    venue = rng.choice(VENUES)
    category = rng.choice(categories)
    currency, timezone = demo.COUNTRIES[venue.country]
    past = index % 25 == 1  # 4 % already over, 4 % drafts
    days = -rng.uniform(1, 60) if past else rng.uniform(0.5, 180)
    starts_at = (now + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    lead = rng.choice(NAMES)
    description = f"{rng.choice(MOODS)} {category.name.lower()} with {lead} and friends."
    if index % 100 == 0:
        description += f" Featuring the {RARE_WORD} orchestra."
    event = Event(
        id=uuid.uuid4(),
        organizer_id=rng.choice(organizers).id,
        category_id=category.id,
        title=f"{lead} {category.name} {rng.choice(TITLE_WORDS)} #{index}",
        artists=[f"{lead} {rng.choice(GROUPS)}", f"DJ {rng.choice(NAMES)}"],
        description=description,
        venue_name=venue.name,
        venue_address=venue.address,
        city=venue.city,
        country=venue.country,
        latitude=venue.lat,
        longitude=venue.lng,
        timezone=timezone,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=4),
        sales_start=None,
        sales_end=None,
        status=EventStatus.DRAFT if index % 25 == 2 else EventStatus.PUBLISHED,
        on_sale=True,
        currency=currency,
        image_url=None,
        max_tickets_per_user=10,
        cancellation_deadline_hours=48,
        created_at=now,
        updated_at=now,
    )
    search.index_fields(event, category)
    rows[0].append({column.key: getattr(event, column.key) for column in Event.__table__.columns})
    price = REGULAR_PRICE[currency] * rng.choice((0.5, 0.8, 1, 1.5, 2))
    tiers = (("Regular", 1, 500, 3_000), ("VIP", 3, 50, 300), ("VVIP", 10, 5, 20))
    for position, (name, factor, low, high) in enumerate(tiers):
        tier_id, capacity = uuid.uuid4(), rng.randint(low, high)
        rows[1].append(
            {
                "id": tier_id,
                "event_id": event.id,
                "name": name,
                "price_cents": int(price * factor),
                "capacity": capacity,
                "max_per_order": 10,
                "sales_start": None,
                "sales_end": None,
                "sort_order": position,
                "created_at": now,
            }
        )
        rows[2].append(
            {
                "id": uuid.uuid4(),
                "ticket_type_id": tier_id,
                "shard": 0,
                "capacity": capacity,
                "sold": 0,
                "held": 0,
            }
        )


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    script: Path | None = None  # a wrk Lua script that picks each request's path
    connections: int | None = None  # None: --connections


@dataclass
class Result:
    scenario: str
    cache: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    wrk_cpu: float  # share of the machine (all CPUs) during the run
    server_ms: float  # CPU milliseconds per request, web processes
    database_ms: float  # the same, PostgreSQL backends (SQLite runs inside the web processes)
    machine_cpu: float  # share of the machine busy during the run, whoever used it
    busy_before: float  # share busy in the seconds before, with the server idle: other work


def run_wrk(
    base_url: str, args: argparse.Namespace, scenario: Scenario, seconds: int
) -> tuple[str, float, float]:
    """wrk's report, its CPU seconds and the wall time."""
    connections = scenario.connections or args.connections
    command = ["wrk", f"-t{min(args.threads, connections)}", f"-c{connections}", f"-d{seconds}s"]
    command += ["--timeout", "5s", "--latency"]
    command += ["-s", str(scenario.script)] if scenario.script else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    output = subprocess.run(
        [*command, base_url + scenario.path], capture_output=True, text=True, check=True
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return output.stdout, cpu, wall


def measure_one(
    server: Server, args: argparse.Namespace, scenario: Scenario, database: str | None
) -> dict[str, float]:
    busy_before = wait_for_idle(args.wait_idle)
    if args.warmup:
        run_wrk(server.base_url, args, scenario, args.warmup)
    cpus = len(os.sched_getaffinity(0))
    jiffies = machine_jiffies()
    assert server.process is not None
    with CpuMeter(server.process.pid, database) as meter:
        output, wrk_cpu, wall = run_wrk(server.base_url, args, scenario, args.duration)
    jiffies_after = machine_jiffies()
    figures = parse_wrk(output)
    requests = max(1, figures.pop("requests"))
    return {
        **figures,
        "wrk_cpu": wrk_cpu / (wall * cpus),
        "server_ms": 1000 * meter.seconds("server") / requests,
        "database_ms": 1000 * meter.seconds("postgres") / requests,
        "machine_cpu": (jiffies_after[0] - jiffies[0]) / max(1, jiffies_after[1] - jiffies[1]),
        "busy_before": busy_before,
    }


def rotating_script(directory: Path, ids: list[uuid.UUID]) -> Path:
    """A wrk script that asks for the events in turn, each thread from its own offset."""
    listed = ",\n".join(f'"{event_id}"' for event_id in ids)
    script = directory / "rotate.lua"
    script.write_text(
        f"local ids = {{\n{listed}\n}}\n"
        "local count, threads = #ids, 0\n"
        "function setup(thread) thread:set('offset', threads * 7919); threads = threads + 1 end\n"
        "function init(args) position = offset or 0 end\n"
        "function request()\n"
        "  position = position % count + 1\n"
        "  return wrk.format('GET', '/api/v1/events/' .. ids[position])\n"
        "end\n"
    )
    return script


# The run


def scenarios(ids: list[uuid.UUID], script: Path, now: datetime) -> list[Scenario]:
    today = now.date()
    combined = (
        f"/api/v1/events?genre=jazz&city=Nairobi&date_from={today + timedelta(days=7)}"
        f"&date_to={today + timedelta(days=90)}&price_min=100000&price_max=400000"
    )
    return [
        Scenario("default listing", "/api/v1/events"),
        Scenario(f"keyword search (q={RARE_WORD})", f"/api/v1/events?q={RARE_WORD}"),
        Scenario("combined filter", combined),
        # One client: the time the request itself takes, without queueing behind others.
        Scenario("combined filter, 1 connection", combined, connections=1),
        Scenario(f"event page, {len(ids):,} ids in turn", f"/api/v1/events/{ids[0]}", script),
        Scenario("event page, one hot id", f"/api/v1/events/{ids[0]}"),
    ]


def measure(
    server: Server,
    args: argparse.Namespace,
    cache: str,
    plan: list[Scenario],
    database: str | None,
) -> list[Result]:
    results = []
    for scenario in plan:
        if scenario.script is None and "?" in scenario.path:
            print(f"  {scenario.name}: {server.total(scenario.path):,} matching events")
        figures = measure_one(server, args, scenario, database)
        results.append(Result(scenario.name, cache, **figures))
        print(
            f"  {scenario.name} [{cache}]: {figures['requests_per_second']:,.0f} req/s, "
            f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms "
            f"(machine {figures['busy_before']:.0%} busy before)"
        )
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| scenario | cache | req/s | p50 ms | p99 ms | non-2xx | socket errors | wrk CPU "
        "| server CPU ms/req | PG CPU ms/req | machine busy | busy before |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.scenario} | {r.cache} | {r.requests_per_second:,.0f} | {r.p50_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.non_2xx} | {r.socket_errors} | {r.wrk_cpu:.0%} "
            f"| {r.server_ms:.2f} | {r.database_ms:.2f} | {r.machine_cpu:.0%} "
            f"| {r.busy_before:.0%} |"
        )
    return "\n".join(lines)


def verdicts(results: list[Result], connections: int) -> list[str]:
    """Issue 3's targets as it words them, then two harder readings, measured but not
    targets: pages that are mostly not in the cache, and uncached searches queueing behind
    each other."""

    def find(prefix: str, cache: str) -> Result:
        return next(r for r in results if r.scenario.startswith(prefix) and r.cache == cache)

    hot, listing = find("event page, one hot id", "cached"), find("default listing", "cached")
    alone = find("combined filter, 1 connection", "uncached")
    in_turn = find("event page,", "cached")  # the ids-in-turn scenario comes first
    queued = find("combined filter", "uncached")
    targets = [
        ("event page from the cache ≥ 3,000 req/s", hot.requests_per_second >= 3000),
        ("default listing from the cache ≥ 3,000 req/s", listing.requests_per_second >= 3000),
        (
            "uncached combined filter p99 < 50 ms (one client: the request's own time)",
            alone.p99_ms < 50,
        ),
    ]
    lines = [f"- {'met' if ok else 'MISSED'}: {label}" for label, ok in targets]
    lines += [
        f"- also measured: {in_turn.scenario}, cache on: {in_turn.requests_per_second:,.0f} req/s"
        " (not 'from the cache': each process keeps a page 2 s, the TTL that bounds stale"
        " availability, and rebuilds it on the next request after that)",
        f"- also measured: uncached combined filter at {connections} connections: p99"
        f" {queued.p99_ms:,.0f} ms (requests queue behind each other on 2 cores)",
    ]
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each scenario")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--ids", type=int, default=1_000, help="event pages taken in turn")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each scenario, wait up to this long for the machine to be < 20%% busy",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (&)
        signal.signal(signum, interrupted)
    ensure_wrk()
    now = utcnow()
    with contextlib.ExitStack() as cleanup:
        workdir, url, database = workspace(args.database, cleanup)
        print(f"Loading {args.events:,} events, 3 tiers each …")
        listed = asyncio.run(load(url, args.events, now))
        print(f"  {len(listed):,} of them published and not over")
        ids = random.Random(7).sample(listed, min(args.ids, len(listed)))
        plan = scenarios(ids, rotating_script(workdir, ids), now)
        results: list[Result] = []
        for cache, ttl in (("cached", None), ("uncached", "0")):
            print(f"Serving ({cache}), {args.duration} s per scenario, {args.connections} conns")
            server = Server(server_env(url, workdir, cache_ttl=ttl), workdir / "serve.log")
            with contextlib.ExitStack() as serving:
                serving.callback(server.stop)
                server.start()
                results += measure(server, args, cache, plan, database)
        print(f"\n{args.database}, {args.events:,} events, 2 web processes, {machine()}")
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s\n")
        print(table(results))
        print("\n" + "\n".join(verdicts(results, args.connections)))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted; cleaned up")
