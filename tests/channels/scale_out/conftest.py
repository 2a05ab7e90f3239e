"""Two ingest workers and two push workers, each its own process, on the test database: the
pipeline spread over several workers as ``docs/deployment.md`` describes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.channels.e2e.conftest import REPO_ROOT, _process_env, _wait_for_log

WORKERS = (
    ("ingest-1", "webhooks"),
    ("ingest-2", "webhooks"),
    ("push-1", "celery,push"),
    ("push-2", "celery,push"),
)


# Module scope, as the end-to-end workers (tests/channels/e2e/conftest.py says why).
@pytest.fixture(scope="module")
def scaled_out_workers(django_db_setup: Any) -> Iterator[dict[str, Path]]:
    """The four workers, as the Procfile starts them; yields each one's log by name."""
    env = _process_env()
    logs: dict[str, Path] = {}
    processes: list[subprocess.Popen] = []
    try:
        for name, queues in WORKERS:
            log_path = REPO_ROOT / ".data" / f"scale-out-{name}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "celery",
                            "-A",
                            "nventory",
                            "worker",
                            "--pool=threads",
                            "--concurrency=4",
                            f"--queues={queues}",
                            "--without-mingle",
                            "--without-gossip",
                            "--loglevel=INFO",
                            f"--hostname={name}@%h",
                        ],
                        cwd=REPO_ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            logs[name] = log_path
        for process, log_path in zip(processes, logs.values(), strict=True):
            _wait_for_log(log_path, b"ready.", process, timeout_s=180)
        yield logs
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
