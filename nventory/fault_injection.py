"""Faults on purpose, for the chaos suite (tests/reliability) only: off unless the
environment variable NVENTORY_FAULT_INJECTION names them.

Two faults land where nothing from outside a process can time them:

- ``push-exit-after-answer=N``: a process exits (``os._exit``, as a kill -9 would leave
  things) right after the Nth push call the channel has answered, before anything of the
  answer is recorded or the task acknowledged.
- ``ingest-raise-on=TEXT``: applying a webhook receipt whose body contains TEXT raises,
  every time (a poison receipt).

Several are separated by commas. An unknown name stops the process at start, so a typo
never passes for a run without faults; a process with any fault set logs a warning at
start, and ``manage.py check --deploy`` fails while the variable is set (channels.E002).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

ENV_VAR = "NVENTORY_FAULT_INJECTION"
PUSH_EXIT_AFTER_ANSWER = "push-exit-after-answer"
INGEST_RAISE_ON = "ingest-raise-on"
# What a process killed by the first fault exits with (EX_SOFTWARE), to tell it in logs.
EXIT_STATUS = 70

logger = logging.getLogger(__name__)


class InjectedFault(RuntimeError):
    """Raised by a fault of NVENTORY_FAULT_INJECTION."""


def _parse(spec: str) -> dict[str, str]:
    faults = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, _, argument = item.partition("=")
        if name not in (PUSH_EXIT_AFTER_ANSWER, INGEST_RAISE_ON) or not argument:
            raise ImproperlyConfigured(f"{ENV_VAR}: {item!r} is not a fault this build knows")
        if name == PUSH_EXIT_AFTER_ANSWER and not argument.isdigit():
            raise ImproperlyConfigured(f"{ENV_VAR}: {name} takes a whole number, not {argument!r}")
        faults[name] = argument
    return faults


FAULTS = _parse(os.environ.get(ENV_VAR, ""))
if FAULTS:
    logger.warning("Fault injection is on (%s=%s): never in production", ENV_VAR, FAULTS)

_answered = itertools.count(1)
_answered_lock = threading.Lock()


def after_push_answered(sent: Callable[[], object]) -> None:
    """Where a push worker dies for ``push-exit-after-answer``; ``sent()`` (what the
    answered call wrote) is logged first, so the scenario can find it sent again."""
    limit = FAULTS.get(PUSH_EXIT_AFTER_ANSWER)
    if limit is None:
        return
    with _answered_lock:
        number = next(_answered)
    if number == int(limit):
        logger.error("Fault injection: exiting after push answer %s: %s", number, sent())
        logging.shutdown()
        os._exit(EXIT_STATUS)


def before_applying_receipt(body: bytes) -> None:
    """Where a receipt is poison for ``ingest-raise-on``."""
    marker = FAULTS.get(INGEST_RAISE_ON)
    if marker is not None and marker.encode() in body:
        raise InjectedFault(f"receipt body contains {marker!r} ({ENV_VAR})")
