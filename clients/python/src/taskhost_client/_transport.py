"""Sending an operation's calls over httpx, sync or asyncio: the address
and token, timeouts, retries with back-off, and turning error answers into
the client's exceptions. Only the loop that drives the operation differs
between the two."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, TypeVar, Union

import httpx

from . import __version__
from ._ops import Call, Op

T = TypeVar("T")
from .errors import TaskhostError, Unavailable, from_response

DEFAULT_URL = "http://127.0.0.1:8080"

#: Answers that mean "not now" rather than "no": retried like a lost answer.
_RETRY_STATUSES = (502, 503, 504)


@dataclass(frozen=True)
class Settings:
    """Where the host is and how hard to try. ``retries`` is how many times
    a failed call is tried again (so ``retries + 1`` tries in all), waiting
    ``backoff``, then twice that, … up to ``max_backoff`` seconds between."""

    base_url: str
    token: Optional[str]
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0

    @classmethod
    def resolve(
        cls,
        base_url: Optional[str],
        token: Optional[str],
        timeout: float,
        retries: int,
        backoff: float,
    ) -> "Settings":
        """Arguments first, then ``TASKHOST_URL`` / ``TASKHOST_TOKEN``."""
        if retries < 0:
            raise ValueError(f"retries must not be negative, got {retries}")
        url = base_url or os.environ.get("TASKHOST_URL") or DEFAULT_URL
        return cls(
            base_url=url.rstrip("/"),
            token=token if token is not None else os.environ.get("TASKHOST_TOKEN") or None,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )

    def headers(self) -> Dict[str, str]:
        h = {"user-agent": f"taskhost-client-python/{__version__}", "accept": "application/json"}
        if self.token:
            h["authorization"] = f"Bearer {self.token}"
        return h

    def delay(self, attempt: int) -> float:
        """Wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        return float(min(self.max_backoff, self.backoff * (2 ** (attempt - 1))))

    def request(self, client: Union[httpx.Client, httpx.AsyncClient], call: Call) -> httpx.Request:
        headers = {"content-type": "application/json"} if call.body is not None else None
        return client.build_request(
            call.method,
            call.path,
            params=call.params,
            content=call.body,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, read=self.timeout + call.hold),
        )


class _Attempt:
    """What one try of a call came to: an answer, or a reason to try again."""

    def __init__(self, settings: Settings, call: Call) -> None:
        self.settings = settings
        self.call = call
        self.tries = 0
        self.last = ""

    def failed(self, e: httpx.TransportError) -> bool:
        """Records a transport failure; True when another try is allowed."""
        self.tries += 1
        self.last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        # A connection that was never made sent nothing: safe for any call.
        never_sent = isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout))
        return (never_sent or self.call.retry_safe) and self.tries <= self.settings.retries

    def answered(self, response: httpx.Response) -> Optional[Any]:
        """The decoded answer, or raises its error; ``_RETRY`` when it
        should be tried again."""
        self.tries += 1
        status = response.status_code
        if status in _RETRY_STATUSES:
            self.last = f"HTTP {status}"
            if self.call.retry_safe and self.tries <= self.settings.retries:
                return _RETRY
            raise Unavailable(self._unavailable(), self.tries, status)
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        if 200 <= status < 300:
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise from_response(status, str(error.get("code")), str(error.get("message")))
        raise from_response(status, f"http_{status}", response.text[:500] or response.reason_phrase)

    def _unavailable(self) -> str:
        return (
            f"{self.call.method} {self.settings.base_url}{self.call.path}: no answer after "
            f"{self.tries} tries ({self.last})"
        )

    def give_up(self) -> Unavailable:
        return Unavailable(self._unavailable(), self.tries)


_RETRY = object()


class SyncTransport:
    """Runs operations on a blocking `httpx.Client`."""

    def __init__(self, settings: Settings, http: Optional[httpx.Client] = None) -> None:
        self.settings = settings
        self.http = http or httpx.Client(base_url=settings.base_url, headers=settings.headers())

    def send(self, call: Call) -> Any:
        attempt = _Attempt(self.settings, call)
        while True:
            try:
                response = self.http.send(self.settings.request(self.http, call))
            except httpx.TransportError as e:
                if not attempt.failed(e):
                    raise attempt.give_up() from e
            else:
                answer = attempt.answered(response)
                if answer is not _RETRY:
                    return answer
            time.sleep(self.settings.delay(attempt.tries))

    def run(self, op: Op[T]) -> T:
        try:
            call = next(op)
            while True:
                try:
                    answer = self.send(call)
                except TaskhostError as e:
                    call = op.throw(e)
                else:
                    call = op.send(answer)
        except StopIteration as done:
            result: T = done.value
            return result

    def close(self) -> None:
        self.http.close()


class AsyncTransport:
    """Runs operations on an `httpx.AsyncClient`."""

    def __init__(self, settings: Settings, http: Optional[httpx.AsyncClient] = None) -> None:
        self.settings = settings
        self.http = http or httpx.AsyncClient(base_url=settings.base_url, headers=settings.headers())

    async def send(self, call: Call) -> Any:
        import anyio

        attempt = _Attempt(self.settings, call)
        while True:
            try:
                response = await self.http.send(self.settings.request(self.http, call))
            except httpx.TransportError as e:
                if not attempt.failed(e):
                    raise attempt.give_up() from e
            else:
                answer = attempt.answered(response)
                if answer is not _RETRY:
                    return answer
            await anyio.sleep(self.settings.delay(attempt.tries))

    async def run(self, op: Op[T]) -> T:
        try:
            call = next(op)
            while True:
                try:
                    answer = await self.send(call)
                except TaskhostError as e:
                    call = op.throw(e)
                else:
                    call = op.send(answer)
        except StopIteration as done:
            result: T = done.value
            return result

    async def aclose(self) -> None:
        await self.http.aclose()
