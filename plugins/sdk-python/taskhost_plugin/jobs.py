"""Enqueue further jobs (fan-out), validated like any other enqueue."""

import json
from typing import Any, Optional

from wit_world.imports import jobs as _jobs

from .errors import call

_PRIORITIES = {
    "critical": _jobs.Priority.CRITICAL,
    "high": _jobs.Priority.HIGH,
    "normal": _jobs.Priority.NORMAL,
    "low": _jobs.Priority.LOW,
}


def enqueue(
    handler: str,
    payload: Any,
    queue: Optional[str] = None,
    priority: Optional[str] = None,
    delay_ms: Optional[int] = None,
    idempotency_key: Optional[str] = None,
    max_attempts: Optional[int] = None,
) -> str:
    """Enqueues a job of ``handler`` with ``payload`` (a JSON value);
    returns its id (the original's for a known idempotency key)."""
    if priority is not None and priority not in _PRIORITIES:
        raise ValueError(f"priority must be one of {sorted(_PRIORITIES)}")
    request = _jobs.EnqueueRequest(
        handler,
        json.dumps(payload),
        queue,
        None if priority is None else _PRIORITIES[priority],
        delay_ms,
        idempotency_key,
        max_attempts,
    )
    return call(_jobs.enqueue, request)
