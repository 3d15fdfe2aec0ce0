"""Exceptions: one class per kind of refusal, each carrying the API's error
code and message so callers can branch on the class and show the message."""

from __future__ import annotations

from typing import Optional


class TaskhostError(Exception):
    """Base of every error this client raises.

    ``code`` is the API's stable error code (``unknown_handler``,
    ``bad_request``, …) or a client-side one (``unavailable``,
    ``not_supported``, ``not_serialisable``); ``status`` is the HTTP status
    when the host answered, else ``None``.
    """

    def __init__(self, code: str, message: str, status: Optional[int] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class InvalidPayload(TaskhostError):
    """The request was refused as malformed: a payload that is not JSON, a
    bad cron expression or delay, a batch too large (400/413/415)."""


class UnknownHandler(TaskhostError):
    """No loaded plugin provides the handler (404 ``unknown_handler``)."""


class Unauthorized(TaskhostError):
    """No token, or one the host does not know (401)."""


class Forbidden(TaskhostError):
    """The token lacks the scope the call needs (403)."""


class NotFound(TaskhostError):
    """No such job, schedule or queue (404)."""


class Conflict(TaskhostError):
    """The target is in a state that refuses the call, such as cancelling a
    job that already runs or removing a config-managed schedule (409)."""


class ServerError(TaskhostError):
    """The host failed while answering (500, 507 ``store_full``)."""


class Unavailable(TaskhostError):
    """The host could not be reached (or answered 502/503/504) after the
    configured retries. ``attempts`` says how many were made."""

    def __init__(self, message: str, attempts: int, status: Optional[int] = None) -> None:
        super().__init__("unavailable", message, status)
        self.attempts = attempts


class NotSupported(TaskhostError):
    """The host has no server side for this call yet (chains, batch
    callbacks, terminating a running job). Nothing was sent or enqueued.
    ``host_version`` is the version the host reported, if it answered."""

    def __init__(self, feature: str, host_version: Optional[str]) -> None:
        version = host_version or "of unknown version (it did not answer)"
        super().__init__(
            "not_supported",
            f"{feature} is not supported by taskhost host {version}; nothing was enqueued",
        )
        self.feature = feature
        self.host_version = host_version


_BY_CODE = {
    "unknown_handler": UnknownHandler,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "unknown_queue": NotFound,
    "conflict": Conflict,
    "config_managed": Conflict,
}

_BY_STATUS = {
    400: InvalidPayload,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: InvalidPayload,
    415: InvalidPayload,
}


def from_response(status: int, code: str, message: str) -> TaskhostError:
    """The exception for an error answer of the API."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else TaskhostError
    return cls(code, message, status)
