"""System checks of the channels app."""

from __future__ import annotations

from typing import Any

from django.core import checks


def every_offered_platform_has_a_connector(**kwargs: Any) -> list[checks.CheckMessage]:
    """channels.E001: a platform an operator may choose that no connector serves."""
    from channels.connectors.registry import CONNECTORS
    from channels.models import Channel

    return [
        checks.Error(
            f"Platform {platform!r} is offered for channels but has no connector.",
            hint="Register its connector in channels.connectors.registry.CONNECTORS, "
            "or take it out of Channel.Platform.",
            obj=Channel,
            id="channels.E001",
        )
        for platform in Channel.Platform.values
        if platform not in CONNECTORS
    ]


def no_fault_injection(**kwargs: Any) -> list[checks.CheckMessage]:
    """channels.E002 (deploy): faults injected on purpose (nventory.fault_injection)."""
    import os

    from nventory import fault_injection

    if not os.environ.get(fault_injection.ENV_VAR):
        return []
    return [
        checks.Error(
            f"{fault_injection.ENV_VAR} is set: workers will die and receipts fail on purpose.",
            hint="It is for the chaos suite only: unset it.",
            id="channels.E002",
        )
    ]
