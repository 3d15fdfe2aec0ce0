"""The py-hello plugin's component entry: its handlers and the SDK's exports."""

import hello  # noqa: F401  (registers the handlers)
from taskhost_plugin import WitWorld  # noqa: F401  (componentize-py looks for it here)
