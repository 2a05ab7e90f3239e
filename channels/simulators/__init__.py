"""Local stand-ins for the sales-channel platforms: plain HTTP servers, no Django, no database.

Tests, benchmarks and demos point a channel's ``api_base_url`` at one of these instead of the
real platform. Each simulator also has a control API under ``/_sim/`` to seed stock, place
orders (sent as signed webhooks) and inject faults.
"""
