"""Outbound HTTP to the hosts the config grants. A URL, header value or
body may carry ``{secret:NAME}``; the host puts the secret in, so the
plugin never holds it."""

import json as _json
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from wit_world.imports import http as _http

from .errors import call


@dataclass
class Response:
    status: int
    headers: List[Tuple[str, str]]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.body)


def send(
    method: str,
    url: str,
    headers: Optional[List[Tuple[str, str]]] = None,
    body: Optional[bytes] = None,
    json: Any = None,
    timeout_ms: Optional[int] = None,
) -> Response:
    """Sends one request; ``json=`` encodes the body and sets its content type.
    Any status is a response; a failure to get one raises a ``HostError``."""
    headers = list(headers or [])
    if json is not None:
        body = _json.dumps(json).encode()
        headers.append(("content-type", "application/json"))
    r = call(_http.send, _http.Request(method, url, headers, body, timeout_ms))
    return Response(r.status, r.headers, bytes(r.body))


def get(url: str, **kw) -> Response:
    return send("GET", url, **kw)


def post(url: str, **kw) -> Response:
    return send("POST", url, **kw)
