"""The control API's error: a status and a message, answered as ``{"error": message}``."""

from __future__ import annotations


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
