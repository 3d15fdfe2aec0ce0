"""The taskhost plugin SDK for Python, on componentize-py.

A plugin is a module that defines handlers with :func:`handler` and ends
with ``from taskhost_plugin import WitWorld`` (componentize-py looks for
that class in the app module)::

    from taskhost_plugin import handler, Permanent, WitWorld

    @handler("greet", description="Greets the name in its payload")
    def greet(job, payload: dict) -> dict:
        if not payload.get("name"):
            raise Permanent("name must not be empty")
        return {"greeting": f"Hello, {payload['name']}!", "attempt": job.attempt}

A handler takes the job (:class:`Job`) and the payload (parsed JSON) and
returns anything ``json.dumps`` accepts. It fails with :class:`Retryable`
(another attempt may help; ``retry_after_ms`` asks for a delay) or
:class:`Permanent` (straight to the dead-letter queue). Any other
exception is a bug: its traceback goes to the host (``log.report-panic``)
and the job ends as a trap carrying it, like a panic in a Rust plugin.
"""

import json
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from componentize_py_types import Err
from wit_world.imports import types as _types
from wit_world.imports import log as _log

from . import chain, config, db, http, jobs, log
from .errors import (
    Denied,
    Failed,
    HostError,
    Invalid,
    Permanent,
    Remote,
    Retryable,
    Timeout,
)

__all__ = [
    "Job",
    "handler",
    "Retryable",
    "Permanent",
    "HostError",
    "Denied",
    "Invalid",
    "Failed",
    "Timeout",
    "Remote",
    "WitWorld",
    "db",
    "http",
    "chain",
    "config",
    "jobs",
    "log",
]


@dataclass(frozen=True)
class Job:
    """Where the job stands. Times are Unix milliseconds; delivery is
    at-least-once, so make side effects idempotent with ``id``."""

    id: str
    handler: str
    queue: str
    attempt: int
    max_attempts: int
    enqueued_at: int
    scheduled_for: int


@dataclass
class _Handler:
    func: Callable[[Job, Any], Any]
    info: _types.HandlerInfo


_HANDLERS: Dict[str, _Handler] = {}


def handler(
    name: str,
    description: str = "",
    max_attempts: Optional[int] = None,
    fuel: Optional[int] = None,
    timeout_ms: Optional[int] = None,
):
    """Registers the decorated ``func(job, payload)`` as handler ``name``.
    The optional limits may only lower the host's (its config overrides
    them)."""

    def register(func):
        if name in _HANDLERS:
            raise ValueError(f"handler {name!r} is declared twice")
        info = _types.HandlerInfo(name, description or (func.__doc__ or "").strip(), max_attempts, fuel, timeout_ms)
        _HANDLERS[name] = _Handler(func, info)
        return func

    return register


def _job_error(e: Exception) -> Optional[_types.JobError]:
    if isinstance(e, Retryable):
        return _types.JobError_Retryable(_types.RetryableError(e.message, e.retry_after_ms))
    if isinstance(e, Permanent):
        return _types.JobError_Permanent(e.message)
    if isinstance(e, HostError):
        # A host error the handler did not handle: denied and invalid are
        # the config's or the code's fault, another attempt cannot help.
        if isinstance(e, (Denied, Invalid)):
            return _types.JobError_Permanent(str(e))
        return _types.JobError_Retryable(_types.RetryableError(str(e), None))
    return None


class WitWorld:
    """The component's exports, as componentize-py expects them."""

    def handlers(self) -> List[_types.HandlerInfo]:
        return [h.info for h in _HANDLERS.values()]

    def run(self, ctx: _types.JobContext, payload: str) -> str:
        entry = _HANDLERS.get(ctx.handler)
        if entry is None:
            raise Err(_types.JobError_Permanent(f"this plugin has no handler {ctx.handler!r}"))
        job = Job(
            ctx.id,
            ctx.handler,
            ctx.queue,
            ctx.attempt,
            ctx.max_attempts,
            ctx.enqueued_at,
            ctx.scheduled_for,
        )
        try:
            data = json.loads(payload)
        except ValueError as e:
            raise Err(_types.JobError_Permanent(f"payload is not JSON: {e}"))
        try:
            result = entry.func(job, data)
        except Exception as e:
            error = _job_error(e)
            if error is None:
                # A bug: the host attaches this to the job's trap outcome.
                _log.report_panic(
                    f"uncaught {type(e).__name__} in handler {ctx.handler!r}: {e}\n"
                    + "".join(traceback.format_exception(e))
                )
                raise
            raise Err(error)
        try:
            return json.dumps(result)
        except (TypeError, ValueError) as e:
            raise Err(_types.JobError_Permanent(f"result is not JSON: {e}"))
