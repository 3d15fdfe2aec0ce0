"""Enqueue further jobs (fan-out), validated like any other enqueue, a
batch of them (WIT 0.1.1) or a chain (WIT 0.1.2)."""

import json
from typing import Any, List, Optional, Tuple, Union

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


#: A batch callback: a handler, or (handler, payload dict).
Callback = Union[str, Tuple[str, dict]]


def _callback(cb: Optional[Callback]) -> Optional[Any]:
    if cb is None:
        return None
    handler, payload = (cb, {}) if isinstance(cb, str) else cb
    return _jobs.BatchCallback(handler, json.dumps(payload), None, None, None)


def start_batch(
    handler: str,
    items: List[Any],
    on_complete: Optional[Callback] = None,
    on_success: Optional[Callback] = None,
) -> str:
    """Starts a batch: one job of ``handler`` per item (its payload);
    ``on_complete`` is enqueued once every job has finished, ``on_success``
    once every job succeeded (their payload gets the batch id under
    ``batch``). Returns the batch id. Each job and callback needs the
    plugin's `jobs` grant and counts as one enqueue of the run."""
    request = _jobs.BatchRequest(
        handler,
        [json.dumps(item) for item in items],
        None,
        None,
        None,
        _callback(on_complete),
        _callback(on_success),
    )
    return call(_jobs.start_batch, request)


def start_chain(steps: List[Tuple[str, dict]]) -> str:
    """Starts a chain of ``(handler, payload dict)`` steps, run one after
    another: each is enqueued once the one before succeeded, with that
    one's result under ``previous`` in its payload. Returns the chain id.
    Each step needs the plugin's `jobs` grant and counts as one enqueue of
    the run."""
    request = [_jobs.ChainStep(handler, json.dumps(payload or {}), None, None, None) for handler, payload in steps]
    return call(_jobs.start_chain, request)
