"""Flash sale: holds under wrk, then a whole sale to concurrent fans, against the real server.

    .venv/bin/python benchmarks/flash_sale.py [--database postgresql|sqlite] [--workers 2]
        [--variant free|paid] [--capacity 5000] [--fans 500] [--connections 128]
        [--duration 10] [--shards K] [--calibrate]
        [--provider momo|mpesa|both] [--simulator-delay 2]    (--variant paid)

Creates its own database (as benchmarks/catalog.py does), migrates it, writes an organizer and
--fans fans straight into it (one password hash for all), starts
`python -m boxoffice serve --workers N`, and creates two published events through the API as
the organizer: one with a tier of 1,000,000 seats for step 1, one with a tier of --capacity
seats for step 2 (free, or 50,000 UGX for --variant paid; 500 KES when M-Pesa pays). Every
fan logs in first (timed apart).

Step 1: wrk at --connections for --duration seconds against POST /api/v1/holds, one seat per
hold, each request as the next fan in turn: successful holds/s (201s), latency, every answer by
status and problem code, and the CPU that wrk, the server and PostgreSQL used.
Step 2: the whole sale, from a lean asyncio client in a separate process: all fans at once over
at most --connections connections, each holding 1-4 seats and booking them, until the API
answers 409 sold_out with available 0. Wall time, rates, latency per step (hold, book), errors
by status and code, the client's CPU.
With --variant paid the server mounts the payment simulators (BOXOFFICE_SIMULATORS, answering
after --simulator-delay seconds) and runs the worker in each web process (reconciliation,
refunds), and every booking pays: by MoMo from its "succeeds" number, or by M-Pesa from a
Kenyan number of the booking's own (the simulator refuses a second prompt to a phone), or,
with --provider both, every other fan by M-Pesa. A booking stays pending_payment until the
simulator's callback confirms it. After the sale the benchmark waits (at most the delay plus
60 s) until no booking waits for a pending payment and no refund is pending, then reads from
the database: confirmed bookings/s (first booking made to last confirmed), the time from hold
to confirmation (p50/p90/p99/max), payments and refunds by status, and the money invariant:
a confirmed booking keeps exactly one payment, with nothing of it refunded; any other booking
got back all that its payments took.
Then the database itself is read: every seat sold once, none held, a ticket per seat, no shard
oversold (and, paid, the money right). Prints Markdown with verdicts against the targets
(issue 4). With --calibrate, runs /work/shared/calibration/run.sh first and compares the hold
rate with its bare endpoint. Everything it made is removed at the end, also on Ctrl-C or an
error.
"""

import argparse
import asyncio
import contextlib
import itertools
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
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    exists,
    func,
    insert,
    inspect,
)
from sqlalchemy import select as sql_select

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
from boxoffice.accounts.models import Role, User
from boxoffice.accounts.passwords import hash_password
from boxoffice.db import Database, UTCDateTime, utcnow
from boxoffice.payments.money import to_major

CALIBRATION = Path("/work/shared/calibration/run.sh")
HOLD_EVENT_SEATS = 1_000_000  # step 1's tier: never sells out during a run
PAID_PRICE = 50_000  # minor units: 50,000 UGX (MoMo), 500.00 KES (M-Pesa: whole shillings)
MAX_PER_USER = 100  # the API's ceiling for max_tickets_per_user
MOMO_PHONE = "+256772123456"  # the MoMo simulator's "succeeds" number (API.md)
MPESA_PHONE_PREFIX = "+2547083"  # and five digits: a Kenyan mobile number per booking
MPESA_OUTCOME_ENDINGS = {"0001", "1032", "1037", "2001", "1019", "9999", "2040"}  # not "paid"
SETTLE_GRACE = 60  # seconds past the simulator's delay that payments may take to settle
MONEY_TAKEN = {"successful", "refunded", "partially_refunded"}  # payment statuses
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
HOLDS = Table(
    "holds",
    _TABLES,
    Column("id", Uuid),
    Column("event_id", Uuid),
    Column("status", String),
    Column("created_at", UTCDateTime),
)
BOOKINGS = Table(
    "bookings",
    _TABLES,
    Column("id", Uuid),
    Column("event_id", Uuid),
    Column("hold_id", Uuid),
    Column("status", String),
    Column("created_at", UTCDateTime),
    Column("confirmed_at", UTCDateTime),
)
PAYMENTS = Table(
    "payments",
    _TABLES,
    Column("id", Uuid),
    Column("booking_id", Uuid),
    Column("provider", String),
    Column("status", String),
    Column("amount_cents", Integer),
)
REFUNDS = Table(
    "refunds",
    _TABLES,
    Column("payment_id", Uuid),
    Column("status", String),
    Column("amount_cents", Integer),
)


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


def currency(args: argparse.Namespace) -> str:
    """M-Pesa takes Kenyan shillings only; the MoMo simulator takes any currency."""
    return "UGX" if args.variant == "free" or args.provider == "momo" else "KES"


def price_label(args: argparse.Namespace) -> str:
    if args.variant == "free":
        return "free"
    return f"{to_major(PAID_PRICE, currency(args)):,} {currency(args)}"


def create_event(
    client: httpx.Client,
    token: str,
    *,
    title: str,
    capacity: int,
    price: int,
    currency: str,
    shards: int | None,
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
        "currency": currency,
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


def mpesa_phones() -> Iterator[str]:
    """Kenyan numbers the M-Pesa simulator lets pay, each once in turn: it refuses a push to
    a phone whose prompt is still open, and a fan books again before their first prompt is
    answered, so every booking gets a number of its own."""
    numbers = (f"{MPESA_PHONE_PREFIX}{n:05d}" for n in range(100_000))
    return itertools.cycle(phone for phone in numbers if phone[-4:] not in MPESA_OUTCOME_ENDINGS)


def payment_choice(provider: str, fan: int, phones: Iterator[str]) -> dict[str, str]:
    """How a fan pays for one booking; with --provider both, odd fans pay by M-Pesa."""
    if provider == "both":
        provider = "mpesa" if fan % 2 else "momo"
    if provider == "momo":
        return {"method": "momo", "phone": MOMO_PHONE}
    return {"method": "mpesa", "phone": next(phones)}


async def sale(config: dict[str, Any]) -> dict[str, Any]:
    """Every fan at once: hold 1-4 seats, book them, again, until sold_out with available 0."""
    split = urlsplit(config["base_url"])
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(config["connections"]):
        pool.put_nowait(Connection(split.hostname or "127.0.0.1", split.port or 80))
    stats = SaleStats()
    paid = config["variant"] == "paid"
    phones = mpesa_phones()
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
                    booking["payment"] = payment_choice(config["provider"], index, phones)
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


def percentiles(values: list[float], ranks: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    ordered = sorted(values)

    def rank(p: float) -> float:  # nearest rank
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan

    return {**{f"p{p}": rank(p) for p in ranks}, "max": rank(100)}


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
        "provider": args.provider,
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


# Paid tier: the payments settle, then their figures and the money invariant


def simulator_env(args: argparse.Namespace) -> dict[str, str]:
    """The payment simulators mounted in the server, answering after --simulator-delay, and
    the worker (callbacks' follow-ups, reconciliation, refunds) in every web process."""
    return {
        "BOXOFFICE_SIMULATORS": "true",
        "BOXOFFICE_SIMULATOR_DELAY": str(args.simulator_delay),
        "BOXOFFICE_IN_PROCESS_WORKER": "true",
    }


def _of_event(event: uuid.UUID) -> Any:
    """Payments of the event's bookings."""
    return PAYMENTS.c.booking_id.in_(sql_select(BOOKINGS.c.id).where(BOOKINGS.c.event_id == event))


async def unsettled(db: Database, event: uuid.UUID) -> dict[str, int]:
    """Bookings of the event waiting for a pending payment, and their refunds pending."""
    waiting = exists().where(PAYMENTS.c.booking_id == BOOKINGS.c.id, PAYMENTS.c.status == "pending")
    async with db.engine.connect() as connection:  # a new snapshot each time (SQLite)
        bookings = await connection.scalar(
            sql_select(func.count()).where(
                BOOKINGS.c.event_id == event, BOOKINGS.c.status == "pending_payment", waiting
            )
        )
        refunds = await connection.scalar(
            sql_select(func.count())
            .select_from(REFUNDS.join(PAYMENTS, REFUNDS.c.payment_id == PAYMENTS.c.id))
            .where(_of_event(event), REFUNDS.c.status == "pending")
        )
    return {"bookings": bookings or 0, "refunds": refunds or 0}


async def settle(url: str, event_id: str, patience: float) -> dict[str, Any]:
    """Wait up to `patience` seconds for every payment of the sale to settle (and every
    refund it caused); then the paid figures, read from the database."""
    db = Database.from_url(url)
    event = uuid.UUID(event_id)
    started = time.monotonic()
    try:
        while True:
            left = await unsettled(db, event)
            waited = time.monotonic() - started
            if not any(left.values()) or waited >= patience:
                break
            await asyncio.sleep(0.5)
        async with db.engine.connect() as connection:
            figures = await paid_figures(connection, event)
    finally:
        await db.dispose()
    return {"waited": waited, "patience": patience, "left_pending": left, **figures}


async def paid_figures(connection: Any, event: uuid.UUID) -> dict[str, Any]:
    bookings = (
        await connection.execute(
            sql_select(
                BOOKINGS.c.id,
                BOOKINGS.c.status,
                BOOKINGS.c.created_at,
                BOOKINGS.c.confirmed_at,
                HOLDS.c.created_at.label("held_at"),
            )
            .join(HOLDS, HOLDS.c.id == BOOKINGS.c.hold_id)
            .where(BOOKINGS.c.event_id == event)
        )
    ).all()
    payments = (
        await connection.execute(
            sql_select(
                PAYMENTS.c.id,
                PAYMENTS.c.booking_id,
                PAYMENTS.c.provider,
                PAYMENTS.c.status,
                PAYMENTS.c.amount_cents,
            ).where(_of_event(event))
        )
    ).all()
    refunds = (
        await connection.execute(
            sql_select(REFUNDS.c.payment_id, REFUNDS.c.status, REFUNDS.c.amount_cents).where(
                REFUNDS.c.payment_id.in_(sql_select(PAYMENTS.c.id).where(_of_event(event)))
            )
        )
    ).all()
    refunded: Counter[uuid.UUID] = Counter()
    for refund in refunds:
        if refund.status == "successful":
            refunded[refund.payment_id] += refund.amount_cents
    return {
        **confirmation(bookings),
        "payments": dict(Counter(f"{p.provider} {p.status}" for p in payments).most_common()),
        "refunds": dict(Counter(refund.status for refund in refunds).most_common()),
        "money": money(payments, refunded),
        "money_violations": money_violations(bookings, payments, refunded),
    }


def confirmation(bookings: list[Any]) -> dict[str, Any]:
    """Confirmed bookings/s, from the first booking made to the last one confirmed, and the
    time from each confirmed booking's hold to its confirmation (s)."""
    confirmed = [b for b in bookings if b.status == "confirmed" and b.confirmed_at is not None]
    span = math.nan
    if confirmed:
        first = min(b.created_at for b in bookings)
        span = (max(b.confirmed_at for b in confirmed) - first).total_seconds()
    waits = [(b.confirmed_at - b.held_at).total_seconds() for b in confirmed]
    return {
        "confirmed": len(confirmed),
        "confirmation_seconds": span,
        "confirmed_per_second": len(confirmed) / span if span > 0 else math.nan,
        "hold_to_confirmed": percentiles(waits, ranks=(50, 90, 99)),
    }


def money(payments: list[Any], refunded: Counter[uuid.UUID]) -> dict[str, int]:
    """Minor units taken from the fans, and given back."""
    taken = sum(p.amount_cents for p in payments if p.status in MONEY_TAKEN)
    return {"taken": taken, "refunded": sum(refunded.values())}


def money_violations(
    bookings: list[Any], payments: list[Any], refunded: Counter[uuid.UUID]
) -> list[str]:
    """Bookings whose money is wrong. A confirmed booking keeps exactly one payment, with
    nothing of it refunded; any other gives back (at least) all that every payment took."""
    kept: dict[uuid.UUID, list[Any]] = {booking.id: [] for booking in bookings}
    for payment in payments:
        if payment.status in MONEY_TAKEN and refunded[payment.id] < payment.amount_cents:
            kept[payment.booking_id].append(payment)
    violations = []
    for booking in bookings:
        payments_kept = kept[booking.id]
        if booking.status == "confirmed":
            whole = [p for p in payments_kept if p.status == "successful" and not refunded[p.id]]
            if len(payments_kept) == 1 and len(whole) == 1:
                continue
        elif not payments_kept:
            continue
        states = ", ".join(f"{p.status} {refunded[p.id]}/{p.amount_cents}" for p in payments_kept)
        violations.append(
            f"{booking.id} {booking.status}: {len(payments_kept)} payment(s) keep money "
            f"({states or 'none'}; refunded/amount)"
        )
    return violations


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
    found: dict[str, Any],
    args: argparse.Namespace,
    server_errors: int,
    paid: dict[str, Any] | None = None,
) -> list[tuple[str, str, bool | None]]:
    """(check, what was found, ok or None when it could not be checked). A paid sale is
    checked once its payments settled: every seat paid for, none held, the money right."""
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
        else:
            paid_for = f"{sold:,} of {capacity:,}"
            results.append(("Σ sold == capacity (all paid for)", paid_for, sold == capacity))
            holding = f"{held:,} (holds active: {found.get('holds', {}).get('active', 0):,})"
            results.append(("Σ held == 0 (no payment pending)", holding, held == 0))
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
    if paid is not None:
        results += money_checks(paid)
    results.append(("zero 5xx (logins, step 1, step 2)", f"{server_errors}", server_errors == 0))
    return results


def money_checks(paid: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    left, violations = paid["left_pending"], paid["money_violations"]
    wrong = f"{len(violations)} booking(s) wrong"
    if violations:
        wrong += ", e.g. " + "; ".join(violations[:3])
    return [
        (
            f"payments settled within {paid['patience']:.0f} s of the sale",
            f"{left['bookings']} booking(s) and {left['refunds']} refund(s) pending",
            not any(left.values()),
        ),
        (
            "money: a confirmed booking keeps exactly one payment, whole; any other is refunded",
            wrong,
            not violations,
        ),
    ]


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


def _s(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


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
    paid: dict[str, Any] | None = None,
) -> str:
    shards = found.get("shards")
    shard_note = f"{len(shards)} shard(s)" if shards is not None else "shards unknown"
    asked = f"--shards {args.shards}" if args.shards else "server default"
    hold_shards = found.get("hold_tier_shards")
    price = price_label(args)
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
    if paid is not None:
        lines += paid_report(args, paid, found, server_log)
    results = checks(found, args, server_errors, paid)
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


def failed_callbacks(server_log: str) -> int:
    """Payment callbacks the server failed (5xx): the provider gives up on them, and
    reconciliation must find those payments."""
    return sum(
        '"request.failed"' in line and "/payments/callbacks/" in line
        for line in server_log.splitlines()
    )


def paid_report(
    args: argparse.Namespace, paid: dict[str, Any], found: dict[str, Any], server_log: str
) -> list[str]:
    left = paid["left_pending"]
    settled = f"{paid['waited']:.1f} s"
    if any(left.values()):
        settled = (
            f"not within {paid['patience']:.0f} s: {left['bookings']} booking(s) "
            f"and {left['refunds']} refund(s) still pending"
        )
    waits = paid["hold_to_confirmed"]
    money_ = {key: f"{to_major(n, currency(args)):,}" for key, n in paid["money"].items()}
    return [
        "",
        f"### Step 2, paid: the payments through the {args.provider} simulator(s), "
        f"answering after {args.simulator_delay:g} s",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| every payment settled after the sale in | {settled} |",
        f"| bookings by final status | {_answers(found.get('bookings', {}))} |",
        f"| **confirmed bookings/s** (first booking to last confirmation) | "
        f"**{paid['confirmed_per_second']:,.1f}** ({paid['confirmed']:,} in "
        f"{_s(paid['confirmation_seconds'])} s) |",
        f"| hold to confirmed p50 / p90 / p99 / max | {_s(waits['p50'])} / {_s(waits['p90'])} "
        f"/ {_s(waits['p99'])} / {_s(waits['max'])} s |",
        f"| payments by provider, status | {_answers(paid['payments'])} |",
        f"| refunds by status | {_answers(paid['refunds'])} |",
        f"| callbacks the server failed (request.failed in its log) | "
        f"{failed_callbacks(server_log):,} |",
        f"| money taken / refunded | {money_['taken']} / {money_['refunded']} {currency(args)} |",
    ]


def log_records(text: str) -> list[str]:
    """The server's log without its start-up banner; JSON records shortened to one line each
    plus the last lines of their traceback."""
    banner = ("Database at revision", "boxoffice is at", "Payment simulators", "all simulator at")
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
    parser.add_argument(
        "--provider",
        choices=("momo", "mpesa", "both"),
        default="momo",
        help="how --variant paid pays (both: every other fan by M-Pesa; M-Pesa prices in KES)",
    )
    parser.add_argument(
        "--simulator-delay",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long the simulated payers take to pay (--variant paid)",
    )
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
        workdir, url, database = workspace(args.database, cleanup)
        password = secrets.token_urlsafe(16)
        print(f"Writing an organizer and {args.fans:,} fans …")
        organizer, emails = asyncio.run(seed_users(url, args.fans, password))
        env = server_env(url, workdir)
        env["BOXOFFICE_ACCESS_TOKEN_TTL"] = str(3600)  # the tokens outlive a long run
        if args.variant == "paid":
            env.update(simulator_env(args))
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
                currency=currency(args),
                shards=args.shards,
            )
            sale_event, sale_tier = create_event(
                client,
                token,
                title="Flash Sale",
                capacity=args.capacity,
                price=0 if args.variant == "free" else PAID_PRICE,
                currency=currency(args),
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
        paid = None
        if args.variant == "paid":
            patience = args.simulator_delay + SETTLE_GRACE
            print(f"Waiting up to {patience:.0f} s for the payments to settle …")
            paid = asyncio.run(settle(url, sale_event, patience))
            print(
                f"  {paid['waited']:.1f} s; {paid['confirmed']:,} bookings confirmed, "
                f"{paid['confirmed_per_second']:,.1f}/s"
            )
        found = asyncio.run(final_check(url, sale_event, sale_tier, hold_tier))
        server_log = log.read_text(errors="replace") if log.exists() else ""
        text = report(args, logins, step1, step2, found, calibration, server_log, paid)
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
            if paid is not None:
                figures["payments"] = paid
            args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted; cleaned up")
