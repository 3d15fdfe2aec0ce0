"""Fixtures: the host under test comes from ``TASKHOST_URL`` and
``TASKHOST_TOKEN`` (an admin token), as ``cargo test clients::`` sets them
after starting ``taskhost serve``; ``TASKHOST_READ_TOKEN`` is a token with
only the ``read`` scope."""

import os
import socket
import uuid
from typing import Iterator

import pytest

from taskhost_client import SyncJobManager


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through `cargo test -p taskhost-tests --test all clients::`")
    return value


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def host_url() -> str:
    return _need("TASKHOST_URL")


@pytest.fixture(scope="session")
def read_token() -> str:
    return _need("TASKHOST_READ_TOKEN")


@pytest.fixture
def jobs(host_url: str) -> Iterator[SyncJobManager]:
    _need("TASKHOST_TOKEN")
    with SyncJobManager() as manager:
        yield manager


@pytest.fixture
def down_url() -> str:
    """An address where nothing listens (a port bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def parked() -> str:
    """A queue of its own that no worker serves, so its jobs stay waiting."""
    return f"parked-{uuid.uuid4().hex[:8]}"
