"""The TikTok Shop simulator (``CHANNEL_APIS.md`` §4 and §6 "TikTok Shop")."""

from channels.simulators.tiktok.simulator import TikTokSimulator

__all__ = ["TikTokSimulator"]
