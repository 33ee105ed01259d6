"""What the benchmarks share: their own database, the real server, the machine, wrk.

Each benchmark creates its own database (a SQLite file in a temporary directory, or a uniquely
named PostgreSQL database on 127.0.0.1:5432 as user postgres), starts
`python -m boxoffice serve --workers N` on a free port, and measures the CPU that the server,
the PostgreSQL backends and the load generator use.
"""

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import httpx

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# Databases


async def create_postgres_database() -> str:
    name = f"boxoffice_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_postgres_database(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# The machine, the server and the load generator


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{len(os.sched_getaffinity(0))} CPUs (nproc), {model}"


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk is missing; trying: apt-get install -y wrk")
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed and could not be installed: `sudo apt-get install wrk`")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CpuMeter:
    """CPU seconds that the server's processes and the PostgreSQL backends of `database`
    use while the block runs. /proc is sampled four times a second, so that a process which
    exits in the middle (a pool closing an overflow connection) still counts."""

    def __init__(self, server_pid: int, database: str | None) -> None:
        self.server_pid = server_pid
        self.database = f" {database} ".encode() if database else None
        self.first: dict[int, int] = {}
        self.last: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "CpuMeter":
        self.first = {pid: ticks for pid, (_, ticks) in self._sample().items()}
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._record()

    def seconds(self, group: str) -> float:
        ticks = sum(t - self.first.get(pid, 0) for pid, (g, t) in self.last.items() if g == group)
        return ticks / os.sysconf("SC_CLK_TCK")

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._record()

    def _record(self) -> None:
        self.last.update(self._sample())

    def _sample(self) -> dict[int, tuple[str, int]]:
        """pid: ("server" or "postgres", CPU ticks so far) for the processes measured."""
        processes: dict[int, tuple[int, int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    # after "pid (comm)": state ppid … utime stime (fields 4, 14, 15 of stat(5))
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    processes[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in processes.items():
            children.setdefault(parent, []).append(pid)
        measured, todo = {}, [self.server_pid]
        while todo:
            pid = todo.pop()
            if pid in processes:
                measured[pid] = ("server", processes[pid][1])
            todo += children.get(pid, [])
        if self.database:
            for pid, (_, ticks) in processes.items():
                if self._is_backend(pid):
                    measured[pid] = ("postgres", ticks)
        return measured

    def _is_backend(self, pid: int) -> bool:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return title.startswith(b"postgres: ") and self.database in title


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def machine_busy(seconds: float) -> float:
    """The share of the machine busy over the next `seconds`."""
    before = machine_jiffies()
    time.sleep(seconds)
    after = machine_jiffies()
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def wait_for_idle(patience: float, idle_below: float = 0.2) -> float:
    """Wait up to `patience` seconds for other work to leave the machine mostly idle (on a
    shared machine); how busy it was at the last look."""
    deadline = time.monotonic() + patience
    while (busy := machine_busy(2)) >= idle_below and time.monotonic() < deadline:
        print(f"    machine {busy:.0%} busy with other work; waiting")
        time.sleep(3)
    return busy


class Server:
    """`python -m boxoffice serve --workers N` in its own session, stopped on exit."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2) -> None:
        self.env = env
        self.workers = workers
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "boxoffice", "serve", "--workers", str(self.workers)]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self, seconds: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self._tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    time.sleep(1)  # every worker up, not just the first
                    return
            time.sleep(0.2)
        raise RuntimeError(f"serve did not answer /health in {seconds:.0f} s:\n{self._tail()}")

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def total(self, path: str) -> int:
        response = httpx.get(f"{self.base_url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()["total"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only its workers
                self.process.wait()


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> dict[str, float]:
    """The figures of a `wrk --latency` report; latencies in ms (NaN when none finished)."""
    latency = {
        int(match[1]): float(match[2]) * _UNITS_MS[match[3]]
        for match in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    }
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": int(re.search(r"(\d+) requests in", output)[1]),
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),
        "p50_ms": latency.get(50, float("nan")),  # absent when no request finished
        "p99_ms": latency.get(99, float("nan")),
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


# Databases and the run


def interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def workspace(kind: str, cleanup: contextlib.ExitStack) -> tuple[Path, str, str | None]:
    """A scratch directory and a fresh, migrated database, both removed by `cleanup`: the
    directory, the database's URL, and its name if it is PostgreSQL's."""
    from boxoffice import migrations

    workdir = Path(tempfile.mkdtemp(prefix="boxoffice-bench-"))
    cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
    url, database = fresh_database(kind, workdir, cleanup)
    print(f"Machine: {machine()}\nDatabase: {url}")
    migrations.upgrade(url)
    return workdir, url, database


def fresh_database(
    kind: str, workdir: Path, cleanup: contextlib.ExitStack
) -> tuple[str, str | None]:
    """The new database's URL, and its name if it is PostgreSQL's (to find its backends)."""
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / 'boxoffice.db'}", None
    try:
        name = asyncio.run(create_postgres_database())
    except (OSError, asyncpg.PostgresError) as exc:
        sys.exit(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not usable: {exc}")
    cleanup.callback(lambda: asyncio.run(drop_postgres_database(name)))
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name


def server_env(url: str, workdir: Path, *, cache_ttl: str | None = None) -> dict[str, str]:
    """This process's environment without its BOXOFFICE_* variables, plus the server's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env.update(
        BOXOFFICE_DATABASE_URL=url,
        BOXOFFICE_JWT_SECRET=secrets.token_urlsafe(48),
        BOXOFFICE_VAR_DIR=str(workdir / "var"),
        BOXOFFICE_RATE_LIMITS="false",
        BOXOFFICE_LOG_LEVEL="WARNING",
        BOXOFFICE_IN_PROCESS_WORKER="false",
    )
    if cache_ttl is not None:
        env["BOXOFFICE_CATALOG_CACHE_TTL"] = cache_ttl
    return env
