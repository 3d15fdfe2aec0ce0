"""The invest seed's notification retry, in Python: the twin of the Rust
`invest` plugin's `notification.sweep` and `notification.retry`, with the
same handler names, grants and database rows, so the same end-to-end tests
run against both (tests/all/invest/notifications.rs). It provides the same
handler names as `invest`, so a host loads one or the other, never both.

Grants, under `[plugins.py_invest]` (as `invest`'s in `examples/invest/taskhost.toml`):
database `invest` (write), `http` to Telegram, setting `telegram_url`,
secret `telegram_token`, and `jobs = ["notification.retry"]`.
"""

import notification  # noqa: F401  (registers the handlers)
from taskhost_plugin import WitWorld  # noqa: F401  (componentize-py looks for it here)
