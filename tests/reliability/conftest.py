"""The reliability suite uses the channel tests' simulator process."""

from tests.channels.conftest import shopify_simulator  # noqa: F401
