"""A clock that runs in real time until a test moves it, and a scheduler that runs on it.

Every simulator reads the time from one ``Clock``: timestamps it writes, token lifetimes,
rate-limit buckets, webhook retry schedules and asynchronous processing all follow it.
``advance`` jumps it forward (a four-hour retry schedule passes in a test in milliseconds);
``freeze`` stops it, so that nothing scheduled fires until the next ``advance``.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class Clock:
    """Real time plus an offset; optionally frozen. Thread-safe."""

    def __init__(self) -> None:
        self._offset_s = 0.0
        self._frozen_at: float | None = None
        # Waiters (the scheduler) are woken whenever the clock is moved.
        self.changed = threading.Condition()

    def time(self) -> float:
        """Seconds since the epoch, as the simulated platform sees them."""
        frozen = self._frozen_at
        return frozen if frozen is not None else time.time() + self._offset_s

    def iso(self) -> str:
        """``time()`` as ISO 8601 UTC with milliseconds, the way the platforms write it."""
        return dt.datetime.fromtimestamp(self.time(), dt.UTC).isoformat(timespec="milliseconds")

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("The clock only moves forward.")
        with self.changed:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset_s += seconds
            self.changed.notify_all()

    def set_time(self, epoch_s: float) -> None:
        """Jump to an absolute time (forward only, as ``advance``)."""
        self.advance(max(0.0, epoch_s - self.time()))

    def freeze(self) -> None:
        with self.changed:
            if self._frozen_at is None:
                self._frozen_at = time.time() + self._offset_s
            self.changed.notify_all()

    def resume(self) -> None:
        """Run in real time again from where the frozen clock stands."""
        with self.changed:
            if self._frozen_at is not None:
                self._offset_s = self._frozen_at - time.time()
                self._frozen_at = None
            self.changed.notify_all()

    def reset(self) -> None:
        with self.changed:
            self._offset_s, self._frozen_at = 0.0, None
            self.changed.notify_all()

    def state(self) -> dict[str, Any]:
        return {
            "time": self.time(),
            "iso": self.iso(),
            "offset_s": round(self.time() - time.time(), 6),
            "frozen": self.frozen,
        }


class Scheduler:
    """Runs callbacks when the clock reaches their time, on a pool of worker threads.

    One thread watches the clock; the callbacks (webhook attempts, which may block for
    seconds) run on the pool, so a slow receiver delays no other callback.
    """

    def __init__(self, clock: Clock, *, workers: int = 32, name: str = "sim") -> None:
        self.clock = clock
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stopping = False
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{name}-worker")
        self._thread = threading.Thread(target=self._run, name=f"{name}-scheduler", daemon=True)
        self._thread.start()

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the clock's ``time()`` reaches ``when``."""
        with self.clock.changed:
            heapq.heappush(self._queue, (when, next(self._seq), callback))
            self.clock.changed.notify_all()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        if delay_s <= 0:
            self.submit(callback)
        else:
            self.call_at(self.clock.time() + delay_s, callback)

    def submit(self, callback: Callable[[], None]) -> None:
        """Run now, on the pool (never on the caller's thread)."""
        if not self._stopping:
            self.pool.submit(callback)

    def pending(self) -> int:
        with self.clock.changed:
            return len(self._queue)

    def clear(self) -> None:
        with self.clock.changed:
            self._queue.clear()

    def stop(self) -> None:
        with self.clock.changed:
            self._stopping = True
            self._queue.clear()
            self.clock.changed.notify_all()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        changed = self.clock.changed
        while True:
            with changed:
                if self._stopping:
                    return
                due: list[Callable[[], None]] = []
                now = self.clock.time()
                while self._queue and self._queue[0][0] <= now:
                    due.append(heapq.heappop(self._queue)[2])
                if not due:
                    timeout = None
                    if self._queue and not self.clock.frozen:
                        timeout = self._queue[0][0] - now
                    changed.wait(timeout)
                    continue
            for callback in due:
                self.submit(callback)
