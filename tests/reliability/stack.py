"""The system under fault, as real processes: its own Redis server, gunicorn, the worker
kinds of the Procfile, beat; all on the test database.

The Redis server is this stack's own (never the shared one): scenarios stop it, pause it
with SIGSTOP and empty it. Every process runs in a session of its own, so a kill reaches
its children too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from nventory.embedded import (
    _chown_tree,
    _postgres_account,
    _postgres_bin_dir,
    _redis_server_binary,
)
from tests.channels.e2e.conftest import REPO_ROOT, _free_port, _process_env, wait_until

LOG_DIR = REPO_ROOT / ".data" / "chaos"

# Which queues each worker kind consumes (as the Procfile starts them).
WORKER_QUEUES = {"ingest": "webhooks", "push": "celery,push"}
# The application_name of every database connection the stack's processes open (libpq
# reads PGAPPNAME), so a scenario can drop theirs and not the test's own.
APPLICATION_NAME = "nventory-chaos-stack"


class RedisServer:
    """A redis-server process on a free loopback port; stopped, restarted (same port),
    paused and resumed on demand."""

    def __init__(self, log_dir: Path) -> None:
        self.port = _free_port()
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with (self.log_dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(_redis_server_binary()),
                    *("--bind", "127.0.0.1", "--port", str(self.port)),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.log_dir)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._answers, timeout_s=30)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=15)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def flushall(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(b"FLUSHALL\r\n")
            assert conn.recv(16).startswith(b"+OK")


class Stack:
    """gunicorn, workers and beat of the system, against ``redis`` and the test database."""

    def __init__(self, name: str, **env: str) -> None:
        self.name = name
        self.log_dir = LOG_DIR / name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.log_dir)
        self.redis.start()
        self.env = {
            **_process_env(),
            "REDIS_URL": self.redis.url,
            # A dead worker's claims lapse within seconds (production: 60 s).
            "PUSH_CLAIM_LEASE_S": "5",
            "DEBUG": "false",
            "SECRET_KEY": "chaos-only-not-a-secret",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "PGAPPNAME": APPLICATION_NAME,
            **env,
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._kinds: dict[str, tuple[str, int, int]] = {}
        self.web_url = ""
        # Workers started again by the supervisor after they exited on their own.
        self.restarts = 0
        # (process key, exit status) of each of those exits.
        self.exits: list[tuple[str, int]] = []
        self._lock = threading.RLock()
        self._killed: set[str] = set()
        self._stopping = threading.Event()
        threading.Thread(target=self._supervise, daemon=True).start()

    def _start(self, key: str, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{key}.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[key] = process
        return process

    @property
    def broker_url(self) -> str:
        """The Celery broker: ``CELERY_BROKER_URL`` when set (RabbitMQ), else this
        stack's Redis (as the settings choose)."""
        return self.env.get("CELERY_BROKER_URL") or self.redis.url

    def set_env(self, name: str, value: str | None) -> None:
        """For the processes started from now on, the supervisor's restarts included."""
        with self._lock:
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value

    def start_web(self, *, workers: int = 2, threads: int = 8) -> None:
        port = _free_port()
        self._start(
            "web",
            [
                *(sys.executable, "-m", "gunicorn", "nventory.wsgi"),
                *("--bind", f"127.0.0.1:{port}"),
                *("--workers", str(workers), "--threads", str(threads)),
            ],
        )
        self.web_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _port_open(port), timeout_s=60)

    def start_worker(self, kind: str, *, index: int = 1, concurrency: int = 4) -> str:
        """A worker of ``kind`` (ingest or push); its key in ``processes``."""
        with self._lock:
            return self._start_worker(kind, index=index, concurrency=concurrency)

    def _start_worker(self, kind: str, *, index: int, concurrency: int) -> str:
        key = f"{kind}-{index}"
        self._killed.discard(key)
        self._kinds[key] = (kind, index, concurrency)
        log = self.log_dir / f"{key}.log"
        marker = log.stat().st_size if log.exists() else 0
        self._start(
            key,
            [
                *(sys.executable, "-m", "celery", "-A", "nventory", "worker"),
                *("--pool=threads", f"--concurrency={concurrency}"),
                f"--queues={WORKER_QUEUES[kind]}",
                *("--without-mingle", "--without-gossip", "--loglevel=INFO"),
                f"--hostname={self.name}-{key}@%h",
            ],
        )
        wait_until(lambda: b"ready." in log.read_bytes()[marker:], timeout_s=90)
        return key

    def start_beat(self, *, index: int = 1) -> str:
        key = f"beat-{index}"
        self._start(
            key,
            [
                *(sys.executable, "-m", "celery", "-A", "nventory", "beat"),
                "--loglevel=INFO",
                f"--schedule={self.log_dir / key}.db",
            ],
        )
        return key

    def kill(self, key: str) -> None:
        """SIGKILL: no warm shutdown, claims and unacknowledged tasks left as they are."""
        with self._lock:
            self._killed.add(key)
            process = self.processes[key]
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def pause(self, key: str) -> None:
        """SIGSTOP: the process holds what it has (connections, claims, prefetched tasks)."""
        os.killpg(self.processes[key].pid, signal.SIGSTOP)

    def resume(self, key: str) -> None:
        os.killpg(self.processes[key].pid, signal.SIGCONT)

    def _supervise(self) -> None:
        """What a process manager does in production (systemd's Restart=always, a
        Kubernetes pod): a worker that exits on its own is started again."""
        while not self._stopping.wait(1.0):
            with self._lock:
                for key, (kind, index, concurrency) in list(self._kinds.items()):
                    if key in self._killed or self.processes[key].poll() is None:
                        continue
                    self.restarts += 1
                    self.exits.append((key, self.processes[key].returncode))
                    self._start_worker(kind, index=index, concurrency=concurrency)

    def stop(self) -> None:
        self._stopping.set()
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.redis.stop()


class PostgresServer:
    """A PostgreSQL cluster of the scenario's own (the pip package ``make run`` embeds),
    on a free loopback port, with the project's schema migrated; restarted on demand."""

    DATABASE = "nventory"

    def __init__(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.cluster_dir = log_dir / "postgres"
        self.log_file = log_dir / "postgres.log"
        self.account = _postgres_account(log_dir)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.DATABASE}"

    def _pg(self, *args: str, timeout_s: float = 120) -> None:
        subprocess.run(
            [str(_postgres_bin_dir() / args[0]), *args[1:]],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            user=self.account.uid,
            group=self.account.gid,
            extra_groups=self.account.extra_groups,
            timeout=timeout_s,
        )

    def start(self) -> None:
        """A fresh cluster (whatever an earlier run left is removed first)."""
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        self.cluster_dir.mkdir(parents=True)
        _chown_tree(self.cluster_dir, self.account)
        self._pg(
            "initdb",
            *("-D", str(self.cluster_dir), "-U", "postgres"),
            *("--auth=trust", "--encoding=UTF8", "--no-instructions"),
        )
        self.log_file.touch()
        if self.account.uid is not None and self.account.gid is not None:
            os.chown(self.log_file, self.account.uid, self.account.gid)
        self._pg("pg_ctl", *self._ctl_args(), "start")
        self._pg(
            "createdb", *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"), self.DATABASE
        )

    def _ctl_args(self) -> list[str]:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        return [
            "-D",
            str(self.cluster_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.log_file),
            "-o",
            options,
        ]

    def restart_fast(self) -> None:
        """``pg_ctl restart -m fast``: every session ended, the server back at once."""
        self._pg("pg_ctl", *self._ctl_args(), "-m", "fast", "restart")

    def stop(self) -> None:
        subprocess.run(
            [
                str(_postgres_bin_dir() / "pg_ctl"),
                "-D",
                str(self.cluster_dir),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            user=self.account.uid,
            group=self.account.gid,
            extra_groups=self.account.extra_groups,
        )


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def elapsed_since(started: float) -> float:
    return time.monotonic() - started
