"""``get_job_manager``: the FastAPI dependency the apps use
(``jobs: JobManager = Depends(get_job_manager)``), also awaitable on its own
at startup (``jobs = await get_job_manager()``). It needs nothing from
FastAPI itself; the ``fastapi`` extra only installs FastAPI.

One `JobManager` per event loop, configured from ``TASKHOST_URL`` and
``TASKHOST_TOKEN``: an httpx connection pool belongs to the loop it was
made on, and a FastAPI app runs on one loop."""

from __future__ import annotations

import asyncio
import weakref

from .jobs import JobManager

_managers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, JobManager]" = weakref.WeakKeyDictionary()


async def get_job_manager() -> JobManager:
    """This event loop's shared `JobManager`."""
    loop = asyncio.get_running_loop()
    manager = _managers.get(loop)
    if manager is None:
        manager = JobManager()
        _managers[loop] = manager
    return manager


async def close_job_manager() -> None:
    """Closes this loop's shared manager (call it at app shutdown)."""
    manager = _managers.pop(asyncio.get_running_loop(), None)
    if manager is not None:
        await manager.aclose()
