"""Flash sale: holds under wrk, then a whole sale to concurrent fans, against the real server.

    .venv/bin/python benchmarks/flash_sale.py [--database postgresql|sqlite] [--workers 2]
        [--variant free|paid] [--capacity 5000] [--fans 500] [--connections 128]
        [--duration 10] [--shards K] [--calibrate]

Creates its own database (as benchmarks/catalog.py does), migrates it, writes an organizer and
--fans fans straight into it (one password hash for all), starts
`python -m boxoffice serve --workers N`, and creates two published events through the API as
the organizer: one with a tier of 1,000,000 seats for step 1, one with a tier of --capacity
seats for step 2 (free, or 50,000 UGX for --variant paid). Every fan logs in first (timed apart).

Step 1: wrk at --connections for --duration seconds against POST /api/v1/holds, one seat per
hold, each request as the next fan in turn: successful holds/s (201s), latency, every answer by
status and problem code, and the CPU that wrk, the server and PostgreSQL used.
Step 2: the whole sale, from a lean asyncio client in a separate process: all fans at once over
at most --connections connections, each holding 1-4 seats and booking them, until the API
answers 409 sold_out with available 0. Wall time, rates, latency per step (hold, book), errors
by status and code, the client's CPU.
Then the database itself is read: every seat sold once, none held, a ticket per seat, no shard
oversold. Prints Markdown with verdicts against the targets (issue 4). With --calibrate, runs
/work/shared/calibration/run.sh first and compares the hold rate with its bare endpoint.
Everything it made is removed at the end, also on Ctrl-C or an error.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, insert, inspect
from sqlalchemy import select as sql_select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, too

from benchmarks.common import (
    CpuMeter,
    Server,
    ensure_wrk,
    fresh_database,
    interrupted,
    machine,
    machine_jiffies,
    parse_wrk,
    server_env,
    wait_for_idle,
)
from boxoffice import migrations
from boxoffice.accounts.models import Role, User
from boxoffice.accounts.passwords import hash_password
from boxoffice.db import Database, utcnow

CALIBRATION = Path("/work/shared/calibration/run.sh")
HOLD_EVENT_SEATS = 1_000_000  # step 1's tier: never sells out during a run
PAID_PRICE = 50_000  # UGX, minor units
MAX_PER_USER = 100  # the API's ceiling for max_tickets_per_user
MOMO_PHONE = "+256772123456"  # the MoMo simulator's "succeeds" number (API.md)
# Logins are setup, not measured: a few at a time keep the CPUs busy with argon2. (More at
# once can exhaust a web process's connection pool: a login holds a read connection while it
# waits for a write one.)
LOGIN_CONCURRENCY = 8
TARGET_HOLDS_PER_SECOND = 800
TARGET_P99_MS = 300
TARGET_SALE_SECONDS = 15
TARGET_SETUP = {"database": "postgresql", "workers": 2, "connections": 128, "capacity": 5000}

# The tables the final check reads, declared here with just the columns it needs: the check
# works whatever the state of the application's models, and says so when a table is missing.
_TABLES = MetaData()
STOCK = Table(
    "ticket_stock",
    _TABLES,
    Column("ticket_type_id", Uuid),
    Column("shard", Integer),
    Column("capacity", Integer),
    Column("sold", Integer),
    Column("held", Integer),
)
TICKETS = Table(
    "tickets",
    _TABLES,
    Column("ticket_type_id", Uuid),
    Column("user_id", Uuid),
    Column("status", String),
)
HOLDS = Table("holds", _TABLES, Column("event_id", Uuid), Column("status", String))
BOOKINGS = Table("bookings", _TABLES, Column("event_id", Uuid), Column("status", String))


# Fans and events


async def seed_users(url: str, fans: int, password: str) -> tuple[str, list[str]]:
    """An organizer and the fans, written straight into the database: their e-mails."""
    db = Database.from_url(url)
    password_hash = await hash_password(password)  # once: argon2 costs tens of ms a time
    now = utcnow()

    def row(email: str, name: str, role: Role) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "email": email,
            "name": name,
            "password_hash": password_hash,
            "role": role,
            "phone": None,
            "preferred_genres": [],
            "preferred_artists": [],
            "created_at": now,
            "updated_at": now,
        }

    organizer = "flash-organizer@boxoffice.local"
    emails = [f"flash-fan-{index}@boxoffice.local" for index in range(fans)]
    try:
        async with db.transaction() as session:
            rows = [row(organizer, "Flash Organizer", Role.ORGANIZER)]
            rows += [row(email, f"Fan {i}", Role.ATTENDEE) for i, email in enumerate(emails)]
            await session.execute(insert(User), rows)
    finally:
        await db.dispose()
    return organizer, emails


def log_in(client: httpx.Client, email: str, password: str) -> str:
    response = client.post("/api/v1/login", json={"email": email, "password": password})
    if response.status_code != 200:
        raise RuntimeError(f"login as {email}: {response.status_code} {response.text}")
    return response.json()["access_token"]


def create_event(
    client: httpx.Client, token: str, *, title: str, capacity: int, price: int, shards: int | None
) -> tuple[str, str]:
    """A published event in 30 days with one tier, made through the API: (event, tier) ids."""
    tier: dict[str, Any] = {
        "name": "General",
        "price": price,
        "capacity": capacity,
        "max_per_order": 4,
    }
    if shards is not None:  # left out, the server's default applies
        tier["shards"] = shards
    starts_at = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    body = {
        "title": title,
        "artists": ["The Benchmarks"],
        "starts_at": starts_at.isoformat(),
        "venue": {"name": "Kololo Ceremonial Grounds", "city": "Kampala", "country": "UG"},
        "currency": "UGX",
        "status": "published",
        "max_tickets_per_user": MAX_PER_USER,
        "ticket_types": [tier],
    }
    response = client.post(
        "/api/v1/admin/events", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    if response.status_code != 201:
        raise RuntimeError(f"creating {title!r}: {response.status_code} {response.text}")
    event = response.json()
    return event["id"], event["ticket_types"][0]["id"]


@dataclass
class Logins:
    count: int
    seconds: float
    statuses: dict[str, int]


async def log_in_fans(base_url: str, emails: list[str], password: str) -> tuple[list[str], Logins]:
    """Every fan's access token, a few logins at a time (each costs an argon2 verification)."""
    limits = httpx.Limits(max_connections=LOGIN_CONCURRENCY)
    statuses: Counter[str] = Counter()
    gate = asyncio.Semaphore(LOGIN_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one(email: str) -> str:
            async with gate:
                response = await client.post(
                    "/api/v1/login", json={"email": email, "password": password}
                )
            statuses[str(response.status_code)] += 1
            if response.status_code != 200:
                raise RuntimeError(f"login as {email}: {response.status_code} {response.text}")
            return response.json()["access_token"]

        started = time.monotonic()
        tokens = await asyncio.gather(*(one(email) for email in emails))
        seconds = time.monotonic() - started
    return list(tokens), Logins(len(emails), seconds, dict(statuses))


# Step 1: holds under wrk


def holds_script(
    directory: Path, tokens: list[str], event_id: str, tier_id: str, threads: int
) -> Path:
    """A wrk script: POST /holds for one seat, each request as the next fan; counts every
    answer by status and problem code and prints them (and a 5xx body or two) when done."""
    body = json.dumps({"event_id": event_id, "items": [{"ticket_type_id": tier_id, "quantity": 1}]})
    listed = ",\n".join(f'"{token}"' for token in tokens)
    script = directory / "holds.lua"
    script.write_text(
        f"local tokens = {{\n{listed}\n}}\n"
        f"local body = {json.dumps(body)}\n"
        f"local count, threads, started = #tokens, {{}}, {threads}\n"
        "function setup(thread)\n"
        "  thread:set('offset', #threads)\n"
        "  table.insert(threads, thread)\n"
        "end\n"
        "function init(args)\n"
        "  statuses, samples = {}, {}\n"
        "  position = math.floor(offset * count / started)  -- the threads apart\n"
        "end\n"
        "function request()\n"
        "  position = position % count + 1\n"
        "  local headers = {['Authorization'] = 'Bearer ' .. tokens[position],\n"
        "                   ['Content-Type'] = 'application/json'}\n"
        "  return wrk.format('POST', nil, headers, body)\n"
        "end\n"
        "function response(status, headers, body)\n"
        "  local key = tostring(status)\n"
        "  if status ~= 201 then\n"
        "    key = key .. ' ' .. (string.match(body, '\"code\"%s*:%s*\"([^\"]*)\"') or '-')\n"
        "    if status >= 500 and not samples[key] then\n"
        "      samples[key] = string.gsub(string.sub(body, 1, 400), '%s+', ' ')\n"
        "    end\n"
        "  end\n"
        "  statuses[key] = (statuses[key] or 0) + 1\n"
        "end\n"
        "function done(summary, latency, requests)\n"
        "  local total, shown = {}, {}\n"
        "  for _, thread in ipairs(threads) do\n"
        "    for key, n in pairs(thread:get('statuses')) do\n"
        "      total[key] = (total[key] or 0) + n\n"
        "    end\n"
        "    for key, text in pairs(thread:get('samples')) do shown[key] = text end\n"
        "  end\n"
        "  for key, n in pairs(total) do io.write('flash-status ', key, ' = ', n, '\\n') end\n"
        "  for key, text in pairs(shown) do\n"
        "    io.write('flash-sample ', key, ' = ', text, '\\n')\n"
        "  end\n"
        "  io.write('flash-duration-us = ', summary.duration, '\\n')\n"
        "end\n"
    )
    return script


def run_wrk(url: str, args: argparse.Namespace, script: Path, seconds: int) -> tuple[str, float]:
    """wrk's report and its CPU seconds."""
    command = ["wrk", f"-t{min(args.threads, args.connections)}", f"-c{args.connections}"]
    command += [f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return output, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def script_statuses(output: str) -> tuple[Counter[str], dict[str, str], float]:
    """What holds.lua printed: answers by "status[ code]", 5xx samples, wrk's duration (s)."""
    statuses: Counter[str] = Counter()
    for match in re.finditer(r"^flash-status (.+?) = (\d+)$", output, re.M):
        statuses[match[1]] += int(match[2])
    samples = dict(re.findall(r"^flash-sample (.+?) = (.*)$", output, re.M))
    duration = re.search(r"^flash-duration-us = (\d+)", output, re.M)
    return statuses, samples, int(duration[1]) / 1e6 if duration else float("nan")


@dataclass
class HoldThroughput:
    connections: int
    seconds: float
    holds: int  # 201 answers
    holds_per_second: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]  # "409 sold_out": n, …, "201": n
    warmup_statuses: dict[str, int]
    samples: dict[str, str]  # a body per 5xx status and code
    socket_errors: str  # "connect 0, read 0, write 0, timeout 0" as wrk says
    wrk_cpu_seconds: float
    wrk_cpu: float  # share of the machine (all CPUs)
    server_ms: float  # CPU ms per request, web processes
    database_ms: float  # CPU ms per request, PostgreSQL backends
    machine_cpu: float
    busy_before: float


def hold_throughput(
    server: Server,
    args: argparse.Namespace,
    database: str | None,
    script: Path,
) -> HoldThroughput:
    url = server.base_url + "/api/v1/holds"
    busy_before = wait_for_idle(args.wait_idle)
    warmup: Counter[str] = Counter()
    if args.warmup:
        output, _ = run_wrk(url, args, script, args.warmup)
        warmup = script_statuses(output)[0]
    cpus = len(os.sched_getaffinity(0))
    jiffies = machine_jiffies()
    assert server.process is not None
    with CpuMeter(server.process.pid, database) as meter:
        started = time.monotonic()
        output, wrk_cpu = run_wrk(url, args, script, args.duration)
        wall = time.monotonic() - started
    jiffies_after = machine_jiffies()
    figures = parse_wrk(output)
    statuses, samples, seconds = script_statuses(output)
    socket_errors = re.search(r"Socket errors: (.*)$", output, re.M)
    holds = statuses.get("201", 0)
    requests = max(1, figures["requests"])
    return HoldThroughput(
        connections=args.connections,
        seconds=seconds,
        holds=holds,
        holds_per_second=holds / seconds,
        requests_per_second=figures["requests_per_second"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        statuses=dict(statuses.most_common()),
        warmup_statuses=dict(warmup.most_common()),
        samples=samples,
        socket_errors=socket_errors[1] if socket_errors else "none",
        wrk_cpu_seconds=wrk_cpu,
        wrk_cpu=wrk_cpu / (wall * cpus),
        server_ms=1000 * meter.seconds("server") / requests,
        database_ms=1000 * meter.seconds("postgres") / requests,
        machine_cpu=(jiffies_after[0] - jiffies[0]) / max(1, jiffies_after[1] - jiffies[1]),
        busy_before=busy_before,
    )


# Step 2: the whole sale, in a client process of its own


class Connection:
    """One keep-alive HTTP/1.1 connection: just enough HTTP for JSON in and out."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, token: str, payload: dict[str, Any]) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None or self.reader.at_eof():
            self.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line, _, header_block = (await self.reader.readuntil(b"\r\n\r\n"))[:-4].partition(
            b"\r\n"
        )
        status = int(status_line.split(b" ", 2)[1])
        headers = {}
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"content-length" in headers:
            content = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            content = b""
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                content += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")  # no trailers are sent
        else:
            content = await self.reader.read()
            self.close()
        if headers.get(b"connection") == b"close":
            self.close()
        return status, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class SaleStats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"hold": [], "book": []})
    answers: Counter[str] = field(default_factory=Counter)  # "hold 409 sold_out": n
    samples: dict[str, str] = field(default_factory=dict)  # a body per unexpected answer
    holds: int = 0
    seats_held: int = 0
    bookings: Counter[str] = field(default_factory=Counter)  # by the booking's status
    tickets: int = 0  # in confirmed bookings' answers
    last_booked: float = 0.0  # seconds into the sale
    sold_out_despite_available: int = 0  # 409 sold_out with available >= the quantity asked
    fans: Counter[str] = field(default_factory=Counter)  # how each fan's loop ended


async def sale(config: dict[str, Any]) -> dict[str, Any]:
    """Every fan at once: hold 1-4 seats, book them, again, until sold_out with available 0."""
    split = urlsplit(config["base_url"])
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(config["connections"]):
        pool.put_nowait(Connection(split.hostname or "127.0.0.1", split.port or 80))
    stats = SaleStats()
    paid = config["variant"] == "paid"
    timeout = config["request_timeout"]

    async def call(step: str, path: str, token: str, payload: dict[str, Any]) -> tuple[int, Any]:
        connection = await pool.get()
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                status, content = await connection.post(path, token, payload)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,  # not HTTP
        ) as exc:
            connection.close()
            stats.answers[f"{step} transport {type(exc).__name__}"] += 1
            return 0, None
        finally:
            pool.put_nowait(connection)
        stats.latencies[step].append(1000 * (time.monotonic() - started))
        try:
            data = json.loads(content) if content else None
        except ValueError:
            data = None
        code = data.get("code") if isinstance(data, dict) else None
        key = f"{step} {status}" + (f" {code}" if code else "")
        if status == 201 and step == "book" and isinstance(data, dict):
            key += f" {data.get('status')}"
        stats.answers[key] += 1
        if status != 201 and key not in stats.samples:
            stats.samples[key] = content[:400].decode(errors="replace")
        return status, data

    async def fan(index: int, token: str) -> None:
        rng = random.Random(config["seed"] + index)
        quantity, failures = rng.randint(1, 4), 0
        while time.monotonic() < deadline:
            item = {"ticket_type_id": config["tier_id"], "quantity": quantity}
            hold = {"event_id": config["event_id"], "items": [item]}
            status, data = await call("hold", "/api/v1/holds", token, hold)
            code = data.get("code") if isinstance(data, dict) else None
            if status == 201 and isinstance(data, dict):
                stats.holds += 1
                stats.seats_held += quantity
                booking: dict[str, Any] = {"hold_id": data["id"]}
                if paid:
                    booking["payment"] = {"method": "momo", "phone": MOMO_PHONE}
                status, data = await call("book", "/api/v1/bookings", token, booking)
                if status == 201 and isinstance(data, dict):
                    stats.bookings[str(data.get("status"))] += 1
                    stats.tickets += len(data.get("tickets") or [])
                    stats.last_booked = time.monotonic() - started
                    failures = 0
                else:
                    failures += 1
                quantity = rng.randint(1, 4)
            elif status == 409 and code == "sold_out":
                available = data.get("available")
                if not isinstance(available, int) or available <= 0:
                    stats.fans["saw sold_out, available 0"] += 1
                    return
                if available >= quantity:
                    stats.sold_out_despite_available += 1
                quantity = rng.randint(1, min(4, available))
            elif status == 409 and code == "ticket_limit_exceeded":
                stats.fans["reached the per-user limit"] += 1
                return
            else:
                failures += 1
            if failures >= 20:
                stats.fans["gave up after 20 failed requests in a row"] += 1
                return
        stats.fans["stopped at the sale timeout"] += 1

    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    deadline = started + config["sale_timeout"]
    await asyncio.gather(*(fan(index, token) for index, token in enumerate(config["tokens"])))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    while not pool.empty():
        pool.get_nowait().close()
    return {
        "wall": wall,
        "cpu_seconds": cpu,
        "latencies": {step: percentiles(values) for step, values in stats.latencies.items()},
        "requests": {step: len(values) for step, values in stats.latencies.items()},
        "answers": dict(stats.answers.most_common()),
        "samples": stats.samples,
        "holds": stats.holds,
        "seats_held": stats.seats_held,
        "bookings": dict(stats.bookings),
        "tickets": stats.tickets,
        "last_booked": stats.last_booked,
        "sold_out_despite_available": stats.sold_out_despite_available,
        "fans": dict(stats.fans),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def rank(p: float) -> float:  # nearest rank
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": rank(100)}


def sale_client(config_path: Path) -> None:
    """The client process: runs the sale, writes its figures next to its configuration."""
    config = json.loads(config_path.read_text())
    try:
        import uvloop  # a leaner event loop, installed with uvicorn[standard]
    except ImportError:
        result = asyncio.run(sale(config))
    else:
        result = uvloop.run(sale(config))
    Path(config["result"]).write_text(json.dumps(result))


def whole_sale(
    server: Server,
    args: argparse.Namespace,
    database: str | None,
    workdir: Path,
    tokens: list[str],
    event_id: str,
    tier_id: str,
) -> dict[str, Any]:
    config = {
        "base_url": server.base_url,
        "tokens": tokens,
        "event_id": event_id,
        "tier_id": tier_id,
        "variant": args.variant,
        "connections": args.connections,
        "sale_timeout": args.sale_timeout,
        "request_timeout": 30,
        "seed": 4,
        "result": str(workdir / "sale-result.json"),
    }
    config_path = workdir / "sale-config.json"
    config_path.write_text(json.dumps(config))
    command = [sys.executable, str(Path(__file__).resolve()), "--client", str(config_path)]
    busy_before = wait_for_idle(args.wait_idle)
    cpus = len(os.sched_getaffinity(0))
    jiffies = machine_jiffies()
    assert server.process is not None
    with CpuMeter(server.process.pid, database) as meter:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.sale_timeout + 120
        )
    jiffies_after = machine_jiffies()
    if done.returncode != 0:
        raise RuntimeError(f"the sale client failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(Path(config["result"]).read_text())
    result["client_cpu_core"] = result["cpu_seconds"] / result["wall"]  # it is one thread
    result["client_cpu"] = result["client_cpu_core"] / cpus
    result["server_cpu_seconds"] = meter.seconds("server")
    result["database_cpu_seconds"] = meter.seconds("postgres")
    result["machine_cpu"] = (jiffies_after[0] - jiffies[0]) / max(1, jiffies_after[1] - jiffies[1])
    result["busy_before"] = busy_before
    return result


# The final check, in the database itself


async def final_check(url: str, event_id: str, tier_id: str, hold_tier_id: str) -> dict[str, Any]:
    db = Database.from_url(url)
    event, tier, hold_tier = uuid.UUID(event_id), uuid.UUID(tier_id), uuid.UUID(hold_tier_id)
    found: dict[str, Any] = {}
    try:
        async with db.engine.connect() as connection:
            tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
            found["missing"] = sorted({"ticket_stock", "tickets", "holds", "bookings"} - tables)
            if "ticket_stock" in tables:
                rows = await connection.execute(
                    sql_select(STOCK.c.shard, STOCK.c.capacity, STOCK.c.sold, STOCK.c.held)
                    .where(STOCK.c.ticket_type_id == tier)
                    .order_by(STOCK.c.shard)
                )
                found["shards"] = [row._asdict() for row in rows]
                found["hold_tier_shards"] = await connection.scalar(
                    sql_select(func.count()).where(STOCK.c.ticket_type_id == hold_tier)
                )
            if "tickets" in tables:
                by_status = await connection.execute(
                    sql_select(TICKETS.c.status, func.count())
                    .where(TICKETS.c.ticket_type_id == tier)
                    .group_by(TICKETS.c.status)
                )
                found["tickets"] = dict(by_status.all())
                per_user = (
                    sql_select(func.count().label("n"))
                    .where(TICKETS.c.ticket_type_id == tier)
                    .group_by(TICKETS.c.user_id)
                    .subquery()
                )
                found["most_tickets_one_fan"] = await connection.scalar(
                    sql_select(func.max(per_user.c.n))
                )
            for name, table in (("holds", HOLDS), ("bookings", BOOKINGS)):
                if name in tables:
                    by_status = await connection.execute(
                        sql_select(table.c.status, func.count())
                        .where(table.c.event_id == event)
                        .group_by(table.c.status)
                    )
                    found[name] = dict(by_status.all())
    finally:
        await db.dispose()
    return found


def checks(
    found: dict[str, Any], args: argparse.Namespace, server_errors: int
) -> list[tuple[str, str, bool | None]]:
    """(check, what was found, ok or None when it could not be checked)."""
    results: list[tuple[str, str, bool | None]] = []
    shards = found.get("shards")
    if shards is None:
        results.append(("ticket_stock rows", "table ticket_stock does not exist", None))
    else:
        sold = sum(row["sold"] for row in shards)
        held = sum(row["held"] for row in shards)
        capacity = sum(row["capacity"] for row in shards)
        over = [row for row in shards if row["sold"] + row["held"] > row["capacity"]]
        results.append(("Σ capacity == --capacity", f"{capacity:,}", capacity == args.capacity))
        if args.variant == "free":
            results.append(("Σ sold == capacity", f"{sold:,} of {capacity:,}", sold == capacity))
            results.append(("Σ held == 0", f"{held:,}", held == 0))
        else:  # paid: seats wait in pending bookings (held) until their payment succeeds
            taken = f"{sold:,} sold + {held:,} held of {capacity:,}"
            results.append(("Σ sold + Σ held == capacity", taken, sold + held == capacity))
        results.append(
            (
                "no oversell: sold + held ≤ capacity on every shard",
                f"{len(shards)} shard(s), {len(over)} over",
                not over,
            )
        )
        tickets = found.get("tickets")
        if tickets is None:
            results.append(("tickets valid/used == Σ sold", "table tickets does not exist", None))
        else:
            live = tickets.get("valid", 0) + tickets.get("used", 0)
            results.append(("tickets valid/used == Σ sold", f"{live:,} / {sold:,}", live == sold))
    most = found.get("most_tickets_one_fan")
    if most is not None:
        results.append(
            (f"no fan over max_tickets_per_user ({MAX_PER_USER})", f"{most}", most <= MAX_PER_USER)
        )
    results.append(("zero 5xx (logins, step 1, step 2)", f"{server_errors}", server_errors == 0))
    return results


# Calibration


def calibrate() -> dict[str, dict[str, float]]:
    """Runs the machine's yardstick; its bare endpoint's figures by label ("one hot row")."""
    print(f"Calibrating: {CALIBRATION} (about a minute) …")
    done = subprocess.run(["bash", str(CALIBRATION)], capture_output=True, text=True, timeout=900)
    for line in done.stdout.splitlines():
        print(f"  {line}")
    if done.returncode != 0:
        print(f"  calibration exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    figures = {}
    for match in re.finditer(r"^bare endpoint POST /hold \(([^)]*)\).*$", done.stdout, re.M):
        rate = re.search(r"Requests/sec:\s*([\d.]+)", match[0])
        p99 = re.search(r"99%\s*([\d.]+)(us|ms|s)\b", match[0])
        if rate:
            unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
            figures[match[1]] = {
                "requests_per_second": float(rate[1]),
                "p99_ms": float(p99[1]) * unit[p99[2]] if p99 else math.nan,
            }
    return figures


# The report


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _answers(answers: dict[str, int]) -> str:
    return ", ".join(f"{key}: {n:,}" for key, n in answers.items()) or "none"


def count_5xx(answers: dict[str, int]) -> int:
    return sum(n for key, n in answers.items() if re.search(r"(^| )5\d\d( |$)", key))


def report(
    args: argparse.Namespace,
    logins: Logins,
    step1: HoldThroughput,
    step2: dict[str, Any],
    found: dict[str, Any],
    calibration: dict[str, dict[str, float]] | None,
    server_log: str,
) -> str:
    shards = found.get("shards")
    shard_note = f"{len(shards)} shard(s)" if shards is not None else "shards unknown"
    asked = f"--shards {args.shards}" if args.shards else "server default"
    hold_shards = found.get("hold_tier_shards")
    price = "free" if args.variant == "free" else f"{PAID_PRICE:,} UGX"
    lines = [
        f"## Flash sale: {args.database}, {args.workers} web process(es), {args.variant} tier",
        "",
        f"- Machine: {machine()}",
        f"- Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"- Fans: {args.fans:,}, logged in beforehand in {logins.seconds:.1f} s "
        f"({logins.count / logins.seconds:,.0f} logins/s, {LOGIN_CONCURRENCY} at a time)",
        "",
        f"### Step 1: POST /holds under wrk ({HOLD_EVENT_SEATS:,}-seat tier, "
        f"{hold_shards if hold_shards is not None else '?'} shard(s), {asked}; one seat a hold)",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| wrk | `-t{min(args.threads, args.connections)} -c{step1.connections} "
        f"-d{args.duration}s`, {args.warmup} s warm-up before |",
        f"| successful holds (201) | {step1.holds:,} in {step1.seconds:.1f} s |",
        f"| **successful holds/s** | **{step1.holds_per_second:,.0f}** |",
        f"| all answers/s | {step1.requests_per_second:,.0f} |",
        f"| latency p50 / p99 (all answers) | {_ms(step1.p50_ms)} / {_ms(step1.p99_ms)} ms |",
        f"| answers by status (code) | {_answers(step1.statuses)} |",
        f"| socket errors (timeout: no answer within 5 s) | {step1.socket_errors} |",
        f"| wrk CPU | {step1.wrk_cpu_seconds:.1f} s = {step1.wrk_cpu:.0%} of the machine |",
        f"| server CPU per request | {step1.server_ms:.2f} ms |",
        f"| PostgreSQL CPU per request | {step1.database_ms:.2f} ms |",
        f"| machine busy during / before | {step1.machine_cpu:.0%} / {step1.busy_before:.0%} |",
    ]
    if step1.warmup_statuses:
        lines.append(f"| warm-up answers | {_answers(step1.warmup_statuses)} |")
    if calibration:
        for label, figures in calibration.items():
            ratio = step1.holds_per_second / figures["requests_per_second"]
            lines.append(
                f"| vs bare endpoint POST /hold ({label}): {figures['requests_per_second']:,.0f}"
                f" req/s, p99 {_ms(figures['p99_ms'])} ms | **{ratio:.2f} times** |"
            )
    wall = step2["wall"]
    lat = step2["latencies"]
    lines += [
        "",
        f"### Step 2: the whole sale ({args.capacity:,} seats, {price}, {shard_note}, {asked})",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| fans / connections | {args.fans:,} / {args.connections} |",
        f"| **wall time, first hold to every fan told sold out** | **{wall:.2f} s** |",
        f"| last successful booking answered at | {step2['last_booked']:.2f} s |",
        f"| successful holds | {step2['holds']:,} ({step2['holds'] / wall:,.0f}/s), "
        f"{step2['seats_held']:,} seats |",
        f"| bookings by status | {_answers(step2['bookings'])} |",
        f"| tickets in confirmed bookings | {step2['tickets']:,} "
        f"({step2['tickets'] / wall:,.0f}/s) |",
    ]
    for step in ("hold", "book"):
        figures = lat[step]
        lines.append(
            f"| {step} latency p50 / p95 / p99 / max ({step2['requests'][step]:,} requests) "
            f"| {_ms(figures['p50'])} / {_ms(figures['p95'])} / {_ms(figures['p99'])} "
            f"/ {_ms(figures['max'])} ms |"
        )
    lines += [
        f"| answers by step, status (code) | {_answers(step2['answers'])} |",
        f"| sold_out with available ≥ quantity asked | {step2['sold_out_despite_available']:,} |",
        f"| how the fans stopped | {_answers(step2['fans'])} |",
        f"| client CPU (one process, one thread) | {step2['cpu_seconds']:.1f} s = "
        f"{step2['client_cpu_core']:.0%} of a core, {step2['client_cpu']:.0%} of the machine |",
        f"| server / PostgreSQL CPU | {step2['server_cpu_seconds']:.1f} s / "
        f"{step2['database_cpu_seconds']:.1f} s |",
        f"| machine busy during / before | {step2['machine_cpu']:.0%} / "
        f"{step2['busy_before']:.0%} |",
    ]
    server_errors = count_5xx(step1.statuses) + count_5xx(step1.warmup_statuses)
    server_errors += count_5xx(step2["answers"]) + count_5xx(logins.statuses)
    results = checks(found, args, server_errors)
    lines += [
        "",
        "### Final check (the database itself)",
        "",
        "| check | found | |",
        "|---|---|---|",
    ]
    for label, value, ok in results:
        lines.append(f"| {label} | {value} | {'ok' if ok else 'FAILED' if ok is False else '?'} |")
    for name in ("holds", "bookings"):
        if name in found:
            lines.append(f"| {name} of the sale by status | {_answers(found[name])} | |")
    for name in found.get("missing", []):
        lines.append(f"| table {name} | does not exist | ? |")
    lines += ["", "### Verdicts", ""]
    lines += verdicts(args, step1, step2, found, results)
    samples = {**step1.samples, **step2["samples"]}
    if samples:
        lines += ["", "### A response body per answer other than 201", ""]
        lines += [f"- {key}: `{text}`" for key, text in samples.items()]
    logged = log_records(server_log)
    if logged:
        lines += ["", "### Server log (WARNING and above), last records", "", "```"]
        lines += logged[-40:]
        lines.append("```")
    return "\n".join(lines)


def log_records(text: str) -> list[str]:
    """The server's log without its start-up banner; JSON records shortened to one line each
    plus the last lines of their traceback."""
    banner = ("Database at revision", "boxoffice is at")
    records = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(banner):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            records.append(line)
            continue
        if not isinstance(record, dict):
            records.append(line)
            continue
        exception = record.pop("exception", None)
        records.append(" ".join(f"{key}={value}" for key, value in record.items()))
        if exception:
            records += [f"    {row}" for row in str(exception).splitlines()[-3:]]
    return records


def verdicts(
    args: argparse.Namespace,
    step1: HoldThroughput,
    step2: dict[str, Any],
    found: dict[str, Any],
    results: list[tuple[str, str, bool | None]],
) -> list[str]:
    shards = found.get("shards") or []
    sold = sum(row["sold"] for row in shards)
    taken = sold + sum(row["held"] for row in shards)
    completed = (sold if args.variant == "free" else taken) == args.capacity and bool(shards)
    oversell = [ok for label, _, ok in results if label.startswith("no oversell")]
    fives = [ok for label, _, ok in results if label.startswith("zero 5xx")]
    sale = "sold" if args.variant == "free" else "taken (sold or held for payment)"
    checks_ = [
        (
            f"≥ {TARGET_HOLDS_PER_SECOND} successful holds/s at {args.connections} connections",
            f"{step1.holds_per_second:,.0f}/s",
            step1.holds_per_second >= TARGET_HOLDS_PER_SECOND,
        ),
        (f"hold p99 < {TARGET_P99_MS} ms", f"{_ms(step1.p99_ms)} ms", step1.p99_ms < TARGET_P99_MS),
        (
            f"{args.capacity:,}-seat sale completed (every seat {sale}) "
            f"in < {TARGET_SALE_SECONDS} s",
            f"{step2['wall']:.2f} s, {taken if args.variant == 'paid' else sold:,} seats",
            completed and step2["wall"] < TARGET_SALE_SECONDS,
        ),
        ("zero oversell", "see the final check", bool(oversell) and all(oversell)),
        ("zero 5xx", "see the final check", bool(fives) and all(fives)),
    ]
    lines = [f"- {'met' if ok else 'MISSED'}: {label} — {value}" for label, value, ok in checks_]
    differs = [
        f"{name} {getattr(args, name)}"
        for name, value in TARGET_SETUP.items()
        if getattr(args, name) != value
    ]
    if differs:
        lines.append(
            "- (the targets are set for PostgreSQL, 2 web processes, 128 connections, 5,000 seats;"
            f" this run differs: {', '.join(differs)})"
        )
    return lines


# The run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--workers", type=int, default=2, help="web processes")
    parser.add_argument("--variant", choices=("free", "paid"), default="free")
    parser.add_argument("--capacity", type=int, default=5_000, help="seats on sale in step 2")
    parser.add_argument("--fans", type=int, default=500, help="distinct users")
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--duration", type=int, default=10, help="seconds of step 1")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of holds before step 1")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--shards", type=int, help="stock shards per tier (default: server's)")
    parser.add_argument(
        "--calibrate", action="store_true", help=f"run {CALIBRATION} first (about a minute)"
    )
    parser.add_argument(
        "--sale-timeout", type=float, default=300, help="seconds before step 2 gives up"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before calibrating and before each step, wait up to this long for the machine "
        "to be < 20%% busy",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--server-log", type=Path, help="keep a copy of the server's log here")
    parser.add_argument("--client", type=Path, help=argparse.SUPPRESS)  # the sale process
    args = parser.parse_args()
    if args.fans < 1 or args.capacity < 1 or args.connections < 1 or args.workers < 1:
        parser.error("--fans, --capacity, --connections and --workers must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    if args.client:
        sale_client(args.client)
        return
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (&)
        signal.signal(signum, interrupted)
    ensure_wrk()
    calibration = None
    if args.calibrate:
        wait_for_idle(args.wait_idle)
        calibration = calibrate()
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="boxoffice-bench-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        url, database = fresh_database(args.database, workdir, cleanup)
        print(f"Machine: {machine()}\nDatabase: {url}")
        migrations.upgrade(url)
        password = secrets.token_urlsafe(16)
        print(f"Writing an organizer and {args.fans:,} fans …")
        organizer, emails = asyncio.run(seed_users(url, args.fans, password))
        env = server_env(url, workdir)
        env["BOXOFFICE_ACCESS_TOKEN_TTL"] = str(3600)  # the tokens outlive a long run
        log = workdir / "serve.log"
        server = Server(env, log, workers=args.workers)
        if args.server_log:
            cleanup.callback(lambda: log.exists() and shutil.copyfile(log, args.server_log))
        cleanup.callback(server.stop)
        print(f"Serving with {args.workers} web process(es) …")
        server.start()
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            token = log_in(client, organizer, password)
            hold_event, hold_tier = create_event(
                client,
                token,
                title="Flash Sale Holds Benchmark",
                capacity=HOLD_EVENT_SEATS,
                price=0 if args.variant == "free" else PAID_PRICE,
                shards=args.shards,
            )
            sale_event, sale_tier = create_event(
                client,
                token,
                title="Flash Sale",
                capacity=args.capacity,
                price=0 if args.variant == "free" else PAID_PRICE,
                shards=args.shards,
            )
        print(f"Logging {args.fans:,} fans in …")
        tokens, logins = asyncio.run(log_in_fans(server.base_url, emails, password))
        print(f"  {logins.seconds:.1f} s")
        print(f"Step 1: holds, wrk -c{args.connections} for {args.duration} s …")
        threads = min(args.threads, args.connections)
        script = holds_script(workdir, tokens, hold_event, hold_tier, threads)
        step1 = hold_throughput(server, args, database, script)
        print(
            f"  {step1.holds_per_second:,.0f} successful holds/s, p50 {_ms(step1.p50_ms)} ms, "
            f"p99 {_ms(step1.p99_ms)} ms; {_answers(step1.statuses)}"
        )
        print(f"Step 2: selling {args.capacity:,} seats to {args.fans:,} fans …")
        step2 = whole_sale(server, args, database, workdir, tokens, sale_event, sale_tier)
        print(f"  {step2['wall']:.2f} s; {_answers(step2['answers'])}")
        found = asyncio.run(final_check(url, sale_event, sale_tier, hold_tier))
        server_log = log.read_text(errors="replace") if log.exists() else ""
        text = report(args, logins, step1, step2, found, calibration, server_log)
        print("\n" + text)
        if args.json:
            figures = {
                "args": {k: str(v) for k, v in vars(args).items()},
                "machine": machine(),
                "logins": asdict(logins),
                "step1": asdict(step1),
                "step2": step2,
                "final_check": found,
                "calibration": calibration,
            }
            args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted; cleaned up")
