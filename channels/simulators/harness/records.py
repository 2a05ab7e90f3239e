"""Bounded, sequence-numbered logs (requests, changes) and read-after-write lag."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Hashable
from typing import Any

# A long demo at 50 orders/s must not grow the logs without bound.
MAX_LOG_ENTRIES = 100_000


class SequencedLog:
    """Entries numbered from 1 (``seq``), oldest dropped past ``limit``; read by ``since``."""

    def __init__(self, limit: int = MAX_LOG_ENTRIES) -> None:
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)
        self._seq = itertools.count(1)

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry["seq"] = next(self._seq)
        self._entries.append(entry)
        return entry

    def since(self, seq: int = 0) -> list[dict[str, Any]]:
        if seq <= 0:
            return [dict(entry) for entry in self._entries]
        # Entries are in seq order: skip from the right end backwards.
        newer: list[dict[str, Any]] = []
        for entry in reversed(self._entries):
            if entry["seq"] <= seq:
                break
            newer.append(dict(entry))
        newer.reverse()
        return newer

    def __len__(self) -> int:
        return len(self._entries)


def store_bounded(store: dict[Any, Any], key: Hashable, value: object) -> None:
    """Insert, dropping the oldest entry past ``MAX_LOG_ENTRIES`` (dicts keep insertion order)."""
    store[key] = value
    if len(store) > MAX_LOG_ENTRIES:
        del store[next(iter(store))]


class ReadLag:
    """Reads that lag writes by ``lag_s``: what an eventually consistent read endpoint shows.

    A writer calls ``before_write(key, old_value, now)`` before it changes a value; a reader
    calls ``visible(key, current, now)`` and gets the value as it was ``lag_s`` ago. Nothing
    is recorded while ``lag_s`` is 0, so the setting costs nothing when unused.
    """

    def __init__(self, lag_s: float = 0.0) -> None:
        self.lag_s = lag_s
        self._history: dict[Hashable, collections.deque[tuple[float, Any]]] = {}

    def before_write(self, key: Hashable, old_value: Any, now: float) -> None:
        if self.lag_s <= 0:
            return
        history = self._history.setdefault(key, collections.deque())
        # A write older than the lag is visible to every later read: forget it.
        horizon = now - self.lag_s
        while history and history[0][0] <= horizon:
            history.popleft()
        history.append((now, old_value))

    def visible(self, key: Hashable, current: Any, now: float) -> Any:
        """``current``, or the value before the oldest write younger than ``lag_s``."""
        if self.lag_s <= 0 or key not in self._history:
            return current
        horizon = now - self.lag_s
        for written_at, old_value in self._history[key]:
            if written_at > horizon:
                return old_value
        return current

    def clear(self) -> None:
        self._history.clear()
