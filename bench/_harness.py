"""What every benchmark shares: servers, a database of its own, Django, progress, JSON.

A bench script runs as ``.venv/bin/python bench/<name>.py``. With no DATABASE_URL it
re-runs itself under the embedded runner (``.data/bench``). It always works in a database
of its own (``<name of DATABASE_URL's database>_bench``) so it never touches real data.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))


# Benches that sell a few SKUs fast to measure throughput turn the velocity guard off on
# their channels: at their rates every SKU is a spike by the default limit, the guard would
# hold units back (shops showing less than the master's figure), and the bench measures
# propagation, not the guard (``viral_burst`` measures that).
VELOCITY_GUARD_OFF = {"velocity_units_per_min": 0}


def ensure_servers() -> None:
    """Re-execute this script under the embedded runner when no servers are configured."""
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return
    command = [
        sys.executable,
        "-m",
        "nventory.embedded",
        "--data-dir",
        str(PROJECT_DIR / ".data" / "bench"),
        "--",
        sys.executable,
        *sys.argv,
    ]
    os.chdir(PROJECT_DIR)
    os.execv(sys.executable, command)  # noqa: S606


def setup_django() -> None:
    """Point Django at the bench database (created if missing), migrate it, set it up."""
    import dj_database_url
    import psycopg

    base = dj_database_url.parse(os.environ["DATABASE_URL"])
    bench_name = f"{base['NAME']}_bench"
    admin_kwargs: dict[str, Any] = {
        "dbname": base["NAME"],
        "user": base.get("USER") or None,
        "host": base.get("HOST") or None,
        "port": base.get("PORT") or None,
        "password": base.get("PASSWORD") or None,
    }
    with psycopg.connect(
        **{k: v for k, v in admin_kwargs.items() if v}, autocommit=True
    ) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (bench_name,)
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{bench_name}"')
    os.environ["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{bench_name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nventory.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[round(fraction * 1000) - 1]


def emit(figures: dict[str, Any]) -> None:
    """The last line of every bench: its figures as one line of JSON."""
    print(json.dumps(figures, sort_keys=True), flush=True)


# --- processes of the system under test -----------------------------------------------


def production_env() -> dict[str, str]:
    """The environment of the processes under test: configured as in production.

    DEBUG on would have Django record every query of every request and task in memory,
    which costs more CPU than some of the statements themselves. Plain HTTP on loopback,
    so no redirect to https.
    """
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-not-a-secret",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
    }


def start_process(
    command: list[str], log_path: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """A process in a session of its own (stopped with its children), output to a log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_web(
    *, port: int, log_path: Path, env: dict[str, str], workers: int = 2, threads: int = 8
) -> subprocess.Popen[bytes]:
    """gunicorn serving the system under test on 127.0.0.1:``port``."""
    return start_process(
        [
            *(sys.executable, "-m", "gunicorn", "nventory.wsgi"),
            *("--bind", f"127.0.0.1:{port}"),
            *("--workers", str(workers), "--threads", str(threads)),
        ],
        log_path,
        env,
    )


def web_answers(port: int) -> bool:
    """Whether the web process on ``port`` answers HTTP yet (any status)."""
    import http.client

    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/admin/login/")
        connection.getresponse().read()
        return True
    except OSError:
        return False


def start_worker(
    *,
    name: str,
    queues: str,
    log_path: Path,
    env: dict[str, str],
    pool: str,
    concurrency: int,
    beat: bool = False,
    niceness: int = 0,
) -> subprocess.Popen[bytes]:
    """A Celery worker of the system under test; ``wait_for_worker`` tells when it is up.

    ``niceness`` > 0 runs it at a lower CPU priority (every thread of it).
    """
    return start_process(
        [
            *(["nice", "-n", str(niceness)] if niceness else []),
            sys.executable,
            "-m",
            "celery",
            "-A",
            "nventory",
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            f"--queues={queues}",
            *(["--beat"] if beat else []),
            "--without-mingle",
            "--without-gossip",
            # INFO: the "ready." line is how we know it has started.
            "--loglevel=INFO",
            f"--hostname=bench-{name}@%h",
        ],
        log_path,
        env,
    )


def wait_for_worker(log_path: Path, name: str = "worker") -> None:
    wait_for(lambda: b"ready" in log_path.read_bytes(), 60, f"{name} ready")


def http_session() -> Any:
    """A requests session for the load generator that does not read the environment on
    every call (proxies, .netrc): that scan cost more CPU than the request itself."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def start_simulator(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """The Shopify simulator on a free port; its URL, read from its first line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "channels.simulators", "--shopify", "0"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline().decode().strip()
    prefix = "Shopify simulator listening on "
    if not first_line.startswith(prefix):
        raise RuntimeError(f"simulator did not start: {first_line!r}")
    return process, first_line.removeprefix(prefix)


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process group, then SIGKILL what is still there after 15 s."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_for(
    predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(interval_s)


def simulator_post(
    session: Any, base: str, path: str, body: dict[str, Any], timeout_s: float = 30
) -> Any:
    """One call of the simulator's control API (``path`` starts with ``/_sim/``)."""
    response = session.post(base + path, json=body, timeout=timeout_s)
    response.raise_for_status()
    return response.json()


# --- the bench database and the processes' figures ------------------------------------

# The apps whose tables a bench empties before it starts: its catalog, channels and what
# they produced. Beat's schedules (django_celery_beat) stay: the sweeps run on them.
_APPS_RESET = ("inventory", "bundles", "channels", "reconciliation")


def reset_data() -> None:
    """Empty every table of the project's apps (ids restart at 1) in one statement."""
    from django.apps import apps
    from django.db import connection

    tables = sorted(
        {
            model._meta.db_table
            for label in _APPS_RESET
            for model in apps.get_app_config(label).get_models(include_auto_created=True)
        }
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(named: dict[str, subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU seconds so far of each named process tree, of PostgreSQL ("postgres") and of this
    bench ("bench").

    PostgreSQL is the embedded server's process tree when the bench runs one (its exited
    backends included, through the postmaster's reaped children), else every PostgreSQL
    process of the machine, whoever else uses that server.
    """
    import psutil

    def tree_cpu(process: psutil.Process) -> float:
        total = 0.0
        for member in [process, *process.children(recursive=True)]:
            try:
                times = member.cpu_times()
                total += times.user + times.system
                # Children already exited and reaped: a postmaster's finished backends.
                total += times.children_user + times.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    used = {name: tree_cpu(psutil.Process(process.pid)) for name, process in named.items()}
    data_dir = str(PROJECT_DIR / ".data")
    postgres_processes = [
        process
        for process in psutil.process_iter(["name", "cmdline"])
        if process.info["name"] in {"postgres", "postmaster"}
    ]
    embedded = [
        process
        for process in postgres_processes
        if any(data_dir in part for part in process.info["cmdline"] or [])
    ]
    postgres = 0.0
    if embedded:
        postgres = sum(tree_cpu(postmaster) for postmaster in embedded)
    else:
        for process in postgres_processes:
            try:
                times = process.cpu_times()
                postgres += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    used["postgres"] = postgres
    own = psutil.Process().cpu_times()
    used["bench"] = own.user + own.system
    return used
