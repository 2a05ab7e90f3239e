"""Connectors, one package per platform; ``registry.get_connector(channel)`` is the way in.

``base`` owns the flow every platform shares (batching, error translation, per-item
results), ``types`` the values that cross the boundary; a platform package holds its
HTTP dialect (``client``), its mapping (``connector``) and its inbound messages
(``webhooks``, and ``notifications`` where they come from a queue).
"""
