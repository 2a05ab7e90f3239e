"""A platform simulator as a real process for the tests: started once, its URL read from
its first line (``<Platform> simulator listening on <url>``), stopped at the end."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
LISTENING = " simulator listening on "


@contextlib.contextmanager
def simulator_process(platform: str) -> Iterator[str]:
    """``python -m channels.simulators --<platform> 0`` on a free port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "channels.simulators", "--host", "127.0.0.1", f"--{platform}", "0"],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline().strip()
        if LISTENING not in first_line:
            raise RuntimeError(f"The {platform} simulator did not start: {first_line!r}")
        yield first_line.split(LISTENING, 1)[1]
    finally:
        stop(process)


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Terminate, and kill what does not end within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
