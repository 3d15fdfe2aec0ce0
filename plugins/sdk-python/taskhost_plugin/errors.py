"""How a handler fails, and how a host call does."""

from typing import Optional

from wit_world.imports import types as _types


class Retryable(Exception):
    """Another attempt may cure this (a remote that is down or rate
    limited); ``retry_after_ms`` asks the host to wait at least that long."""

    def __init__(self, message: str, retry_after_ms: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.retry_after_ms = retry_after_ms


class Permanent(Exception):
    """Retrying cannot help (bad payload, business rule): the job goes
    straight to the dead-letter queue."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class HostError(Exception):
    """A host call did not do what was asked; see the subclasses. A
    handler that lets one escape fails the job: ``Denied`` and ``Invalid``
    permanently, the others retryably. ``str()`` reads ``"denied: …"``."""

    kind = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class Denied(HostError):
    """The host config does not grant this plugin what it asked for."""

    kind = "denied"


class Invalid(HostError):
    """The arguments were malformed."""

    kind = "invalid"


class Failed(HostError):
    """The call ran and failed."""

    kind = "failed"


class Timeout(HostError):
    """The call took longer than its timeout."""

    kind = "timed out"


class Remote(HostError):
    """The remote answered with an error of its own (``code``, ``message``)."""

    kind = "remote error"

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code

    def __str__(self) -> str:
        return f"remote error {self.code}: {self.message}"


def convert(e: _types.HostError) -> HostError:
    if isinstance(e, _types.HostError_Denied):
        return Denied(e.value)
    if isinstance(e, _types.HostError_Invalid):
        return Invalid(e.value)
    if isinstance(e, _types.HostError_Failed):
        return Failed(e.value)
    if isinstance(e, _types.HostError_Timeout):
        return Timeout(e.value)
    return Remote(e.value.code, e.value.message)


def call(f, *args):
    """Calls a host function, raising its error as a :class:`HostError`."""
    from componentize_py_types import Err

    try:
        return f(*args)
    except Err as e:
        raise convert(e.value) from None
