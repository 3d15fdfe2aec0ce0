"""`JobManager` (asyncio) and `SyncJobManager`: the seed's job API over a
taskhost host. Both build the same operations (`_ops`); they differ only in
whether they are awaited."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import httpx

from . import _ops
from ._transport import AsyncTransport, Settings, SyncTransport
from .models import (
    BatchResult,
    BatchStatus,
    Job,
    JobSummary,
    PriorityLike,
    QueueStats,
    ScheduledJob,
    TaskResult,
    format_duration,
)

#: ``(handler, args, kwargs)`` as the seed writes a step, or with a fourth
#: member, its options: ``queue``, ``priority``, ``max_attempts``, ``retry``.
ChainStep = Union[
    Tuple[str, Sequence[Any], Mapping[str, Any]],
    Tuple[str, Sequence[Any], Mapping[str, Any], Mapping[str, Any]],
]


def _batch_options(priority: Optional[PriorityLike], queue: Optional[str]) -> Dict[str, Any]:
    return {"priority": priority, "queue": queue}


def _start_options(
    priority: Optional[PriorityLike],
    queue: Optional[str],
    max_attempts: Optional[int],
    retry: Optional[_ops.RetryPolicy],
    idempotency_key: Optional[str],
) -> Dict[str, Any]:
    """``batch()``'s options as `_ops.start_batch` takes them."""
    return {
        "priority": priority,
        "queue": queue,
        "max_attempts": max_attempts,
        "retry": retry,
        "idempotency_key": idempotency_key,
    }


def _with_callback(handler: str, items: Iterable[Mapping[str, Any]], batch_size: int, priority: Optional[PriorityLike], queue: Optional[str], callback: str) -> _ops.Op[BatchResult]:
    """``enqueue_batch(callback=...)``: a host batch whose ``on_complete``
    is the callback handler (enqueued once, when every job has finished)."""
    started = yield from _ops.start_batch(handler, items, batch_size, _batch_options(priority, queue), callback, None)
    return BatchResult(started.total, started.total, started.jobs)


def _every(interval: timedelta) -> str:
    return f"every {format_duration(interval)}"


class JobManager:
    """The asyncio client. ``base_url`` defaults to ``TASKHOST_URL`` (then
    ``http://127.0.0.1:8080``), ``token`` to ``TASKHOST_TOKEN``; a call
    that cannot reach the host is tried ``retries`` more times with
    back-off, then raises `Unavailable`. Use one per event loop (or
    ``get_job_manager``), and ``await aclose()`` when done."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        http: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self._t = AsyncTransport(Settings.resolve(base_url, token, timeout, retries, backoff), http)

    async def __aenter__(self) -> "JobManager":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._t.aclose()

    async def enqueue(
        self,
        handler: str,
        *,
        priority: Optional[PriorityLike] = None,
        queue: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        max_attempts: Optional[int] = None,
        retry: Optional[_ops.RetryPolicy] = None,
        **payload: Any,
    ) -> str:
        """Enqueues ``handler`` with the keyword arguments as its payload;
        returns the job id (the original job's for a known key). ``retry``
        is the job's own retry policy instead of its handler's."""
        body = _ops.job_body(
            handler,
            payload,
            priority=priority,
            queue=queue,
            idempotency_key=idempotency_key,
            max_attempts=max_attempts,
            retry=retry,
        )
        return await self._t.run(_ops.enqueue(body))

    async def enqueue_delayed(
        self,
        handler: str,
        delay: timedelta,
        *,
        priority: Optional[PriorityLike] = None,
        queue: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        **payload: Any,
    ) -> str:
        """Enqueues a job that runs no earlier than ``delay`` from now."""
        body = _ops.job_body(
            handler, payload, priority=priority, queue=queue, idempotency_key=idempotency_key, delay=delay
        )
        return await self._t.run(_ops.enqueue(body))

    async def enqueue_batch(
        self,
        handler: str,
        items: Iterable[Mapping[str, Any]],
        batch_size: int = 100,
        *,
        priority: Optional[PriorityLike] = None,
        queue: Optional[str] = None,
        callback: Optional[str] = None,
    ) -> BatchResult:
        """One job per item (its payload), sent ``batch_size`` at a time.
        With ``callback`` (a handler), the items become one host batch
        (see `batch`) whose ``on_complete`` job of that handler is enqueued
        once, when every item's job has finished."""
        if callback is not None:
            return await self._t.run(_with_callback(handler, items, batch_size, priority, queue, callback))
        return await self._t.run(_ops.enqueue_batch(handler, items, batch_size, _batch_options(priority, queue)))

    async def batch(
        self,
        handler: str,
        items: Iterable[Mapping[str, Any]],
        *,
        batch_size: Optional[int] = None,
        priority: Optional[PriorityLike] = None,
        queue: Optional[str] = None,
        max_attempts: Optional[int] = None,
        retry: Optional[_ops.RetryPolicy] = None,
        on_complete: Optional[_ops.Callback] = None,
        on_success: Optional[_ops.Callback] = None,
        idempotency_key: Optional[str] = None,
    ) -> BatchStatus:
        """Starts a batch: one job of ``handler`` per item under one batch
        id. ``on_complete`` (a handler, or ``(handler, payload)``) is
        enqueued once every job has finished, ``on_success`` once every
        job succeeded; their payload gets the batch id under ``batch``.
        Answers the batch with its jobs' ids (``.jobs``)."""
        options = _start_options(priority, queue, max_attempts, retry, idempotency_key)
        return await self._t.run(_ops.start_batch(handler, items, batch_size, options, on_complete, on_success))

    async def get_batch(self, batch_id: str) -> BatchStatus:
        """The batch's counts and callbacks."""
        return await self._t.run(_ops.get_batch(batch_id))

    async def cancel_batch(self, batch_id: str) -> BatchStatus:
        """Cancels the batch's waiting jobs and stops its running ones (on
        whichever host runs them, within a second); cancelled jobs count as
        finished, so ``on_complete`` fires. Answers the batch as it stands."""
        return await self._t.run(_ops.cancel_batch(batch_id))

    async def wait_batch(self, batch_id: str, timeout: float = 60.0) -> BatchStatus:
        """Waits until every job of the batch has finished, at most
        ``timeout`` seconds (``finished`` False on timeout)."""
        return await self._t.run(_ops.wait_batch(batch_id, timeout, time.monotonic))

    async def schedule(
        self,
        handler: str,
        cron: str,
        name: Optional[str] = None,
        *,
        queue: Optional[str] = None,
        priority: Optional[PriorityLike] = None,
        timezone: Optional[str] = None,
        **payload: Any,
    ) -> str:
        """Runs ``handler`` on a cron expression (``0 9 * * *``); returns the
        schedule's name (default: the handler's), which `unschedule` takes.
        Declaring the same schedule again changes nothing; a different one
        under the same name replaces it."""
        options = {"queue": queue, "priority": priority, "timezone": timezone}
        return await self._t.run(_ops.schedule(handler, cron, name, payload, options))

    async def schedule_interval(
        self,
        handler: str,
        interval: timedelta,
        name: Optional[str] = None,
        *,
        queue: Optional[str] = None,
        priority: Optional[PriorityLike] = None,
        **payload: Any,
    ) -> str:
        """Runs ``handler`` every ``interval`` (counted from the epoch, so
        every host agrees on the fire times)."""
        options = {"queue": queue, "priority": priority}
        return await self._t.run(_ops.schedule(handler, _every(interval), name, payload, options))

    async def chain(self, steps: Sequence[ChainStep]) -> List[str]:
        """Runs the steps one after another, each getting the previous
        one's result under ``previous``; answers their job ids (a later
        step's job exists once its turn comes)."""
        return await self._t.run(_ops.chain(steps))

    async def get_status(self, job_id: str) -> TaskResult:
        """The job's status and its result or last error."""
        return await self._t.run(_ops.get_status(job_id))

    async def get_job(self, job_id: str) -> Job:
        """The whole job, payload and attempt history included."""
        return await self._t.run(_ops.get_job(job_id))

    async def list_jobs(
        self,
        *,
        status: Optional[str] = None,
        queue: Optional[str] = None,
        handler: Optional[str] = None,
        schedule: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[JobSummary]:
        """The newest jobs matching the filters (one page)."""
        limit_text = None if limit is None else str(limit)
        op = _ops.list_jobs(status=status, queue=queue, handler=handler, schedule=schedule, limit=limit_text)
        return await self._t.run(op)

    async def wait_for(self, job_id: str, timeout: float = 60.0) -> TaskResult:
        """Waits until the job ends, at most ``timeout`` seconds; the host
        answers as the job's end commits (no polling). On timeout the result
        has ``finished`` False and the job's current status."""
        return await self._t.run(_ops.wait_for(job_id, timeout, time.monotonic))

    async def cancel(self, job_id: str, terminate: bool = False) -> bool:
        """Cancels a job that has not started; False if it already had.
        With ``terminate=True`` a running job is stopped too (on whichever
        host runs it, within a second) and ends cancelled, not retried;
        False only if it had already finished."""
        return await self._t.run(_ops.cancel(job_id, terminate))

    async def queue_length(self, queue: str = "default") -> int:
        """Jobs due and waiting for a worker in ``queue``."""
        return await self._t.run(_ops.queue_length(queue))

    async def queue_stats(self, queue: str = "default") -> QueueStats:
        """All of a queue's counts."""
        return await self._t.run(_ops.queue_stats(queue))

    async def purge_queue(self, queue: str = "default") -> int:
        """Deletes the queue's waiting jobs; returns how many."""
        return await self._t.run(_ops.purge_queue(queue))

    async def list_scheduled(self) -> List[ScheduledJob]:
        """Every schedule with its next fire time."""
        return await self._t.run(_ops.list_scheduled())

    async def unschedule(self, schedule_id: str) -> None:
        """Removes a schedule by name (what `schedule` returned)."""
        await self._t.run(_ops.unschedule(schedule_id))

    async def host_version(self) -> str:
        """The version of the host at the other end."""
        return await self._t.run(_ops.host_version())


class SyncJobManager:
    """The blocking client: the same methods as `JobManager`, not awaited.
    Close it with ``close()`` or use it as a context manager."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        http: Optional[httpx.Client] = None,
    ) -> None:
        self._t = SyncTransport(Settings.resolve(base_url, token, timeout, retries, backoff), http)

    def __enter__(self) -> "SyncJobManager":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._t.close()

    def enqueue(
        self,
        handler: str,
        *,
        priority: Optional[PriorityLike] = None,
        queue: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        max_attempts: Optional[int] = None,
        retry: Optional[_ops.RetryPolicy] = None,
        **payload: Any,
    ) -> str:
        body = _ops.job_body(
            handler,
            payload,
            priority=priority,
            queue=queue,
            idempotency_key=idempotency_key,
            max_attempts=max_attempts,
            retry=retry,
        )
        return self._t.run(_ops.enqueue(body))

    def enqueue_delayed(
        self,
        handler: str,
        delay: timedelta,
        *,
        priority: Optional[PriorityLike] = None,
        queue: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        **payload: Any,
    ) -> str:
        body = _ops.job_body(
            handler, payload, priority=priority, queue=queue, idempotency_key=idempotency_key, delay=delay
        )
        return self._t.run(_ops.enqueue(body))

    def enqueue_batch(
        self,
        handler: str,
        items: Iterable[Mapping[str, Any]],
        batch_size: int = 100,
        *,
        priority: Optional[PriorityLike] = None,
        queue: Optional[str] = None,
        callback: Optional[str] = None,
    ) -> BatchResult:
        if callback is not None:
            return self._t.run(_with_callback(handler, items, batch_size, priority, queue, callback))
        return self._t.run(_ops.enqueue_batch(handler, items, batch_size, _batch_options(priority, queue)))

    def batch(
        self,
        handler: str,
        items: Iterable[Mapping[str, Any]],
        *,
        batch_size: Optional[int] = None,
        priority: Optional[PriorityLike] = None,
        queue: Optional[str] = None,
        max_attempts: Optional[int] = None,
        retry: Optional[_ops.RetryPolicy] = None,
        on_complete: Optional[_ops.Callback] = None,
        on_success: Optional[_ops.Callback] = None,
        idempotency_key: Optional[str] = None,
    ) -> BatchStatus:
        options = _start_options(priority, queue, max_attempts, retry, idempotency_key)
        return self._t.run(_ops.start_batch(handler, items, batch_size, options, on_complete, on_success))

    def get_batch(self, batch_id: str) -> BatchStatus:
        return self._t.run(_ops.get_batch(batch_id))

    def cancel_batch(self, batch_id: str) -> BatchStatus:
        return self._t.run(_ops.cancel_batch(batch_id))

    def wait_batch(self, batch_id: str, timeout: float = 60.0) -> BatchStatus:
        return self._t.run(_ops.wait_batch(batch_id, timeout, time.monotonic))

    def schedule(
        self,
        handler: str,
        cron: str,
        name: Optional[str] = None,
        *,
        queue: Optional[str] = None,
        priority: Optional[PriorityLike] = None,
        timezone: Optional[str] = None,
        **payload: Any,
    ) -> str:
        options = {"queue": queue, "priority": priority, "timezone": timezone}
        return self._t.run(_ops.schedule(handler, cron, name, payload, options))

    def schedule_interval(
        self,
        handler: str,
        interval: timedelta,
        name: Optional[str] = None,
        *,
        queue: Optional[str] = None,
        priority: Optional[PriorityLike] = None,
        **payload: Any,
    ) -> str:
        options = {"queue": queue, "priority": priority}
        return self._t.run(_ops.schedule(handler, _every(interval), name, payload, options))

    def chain(self, steps: Sequence[ChainStep]) -> List[str]:
        return self._t.run(_ops.chain(steps))

    def get_status(self, job_id: str) -> TaskResult:
        return self._t.run(_ops.get_status(job_id))

    def get_job(self, job_id: str) -> Job:
        return self._t.run(_ops.get_job(job_id))

    def list_jobs(
        self,
        *,
        status: Optional[str] = None,
        queue: Optional[str] = None,
        handler: Optional[str] = None,
        schedule: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[JobSummary]:
        limit_text = None if limit is None else str(limit)
        op = _ops.list_jobs(status=status, queue=queue, handler=handler, schedule=schedule, limit=limit_text)
        return self._t.run(op)

    def wait_for(self, job_id: str, timeout: float = 60.0) -> TaskResult:
        return self._t.run(_ops.wait_for(job_id, timeout, time.monotonic))

    def cancel(self, job_id: str, terminate: bool = False) -> bool:
        return self._t.run(_ops.cancel(job_id, terminate))

    def queue_length(self, queue: str = "default") -> int:
        return self._t.run(_ops.queue_length(queue))

    def queue_stats(self, queue: str = "default") -> QueueStats:
        return self._t.run(_ops.queue_stats(queue))

    def purge_queue(self, queue: str = "default") -> int:
        return self._t.run(_ops.purge_queue(queue))

    def list_scheduled(self) -> List[ScheduledJob]:
        return self._t.run(_ops.list_scheduled())

    def unschedule(self, schedule_id: str) -> None:
        self._t.run(_ops.unschedule(schedule_id))

    def host_version(self) -> str:
        return self._t.run(_ops.host_version())
