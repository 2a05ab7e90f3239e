"""Local stand-ins for the sales-channel platforms: plain HTTP servers, no Django, no database.

Tests, benchmarks and demos point a channel's ``api_base_url`` at one of these instead of the
real platform. ``harness`` holds what every platform shares (controllable clock, tenants,
fault injection, webhook emitter, request log, the ``/_sim/`` control API); each platform is
a package beside it, listed in ``registry``. ``python -m channels.simulators --shopify 8765``
starts them.
"""
