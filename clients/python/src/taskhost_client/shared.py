"""One shared `JobManager` per event loop, configured from ``TASKHOST_URL``
and ``TASKHOST_TOKEN`` (an httpx connection pool belongs to the loop it was
made on, and an app runs on one loop): ``get_job_manager``, which FastAPI
takes as a dependency (``jobs: JobManager = Depends(get_job_manager)``) and
startup code awaits (``jobs = await get_job_manager()``), and the seed's
convenience functions ``enqueue`` and ``enqueue_delayed`` for one-off jobs."""

from __future__ import annotations

import asyncio
import weakref
from datetime import timedelta
from typing import Any

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


async def enqueue(handler: str, **kwargs: Any) -> str:
    """`JobManager.enqueue` on the shared manager, without creating one."""
    return await (await get_job_manager()).enqueue(handler, **kwargs)


async def enqueue_delayed(handler: str, delay: timedelta, **kwargs: Any) -> str:
    """`JobManager.enqueue_delayed` on the shared manager."""
    return await (await get_job_manager()).enqueue_delayed(handler, delay, **kwargs)
