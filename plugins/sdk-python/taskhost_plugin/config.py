"""The settings and secrets the host config declares for this plugin."""

from wit_world.imports import config as _config

from .errors import call


def get(key: str) -> str:
    """A setting or secret; raises ``Denied`` for a key not declared for this plugin."""
    return call(_config.get, key)
