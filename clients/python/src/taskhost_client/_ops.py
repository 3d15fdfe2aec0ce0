"""What each client call does, written once for the sync and the asyncio
client: an operation is a generator that yields the HTTP calls it needs and
receives their decoded answers (or has the API's error thrown into it), so
multi-step calls (``wait_for``, batches in chunks, ``schedule``'s upsert)
are not written twice."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Dict, Generator, Iterable, List, Mapping, NoReturn, Optional, Sequence, Tuple, TypeVar

from .errors import Conflict, InvalidPayload, NotSupported, TaskhostError
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
    priority_name,
)

#: The longest a single `/wait` request holds (the host's own ceiling).
MAX_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Call:
    """One HTTP request. ``retry_safe``: sending it twice has the effect of
    sending it once, so a lost answer may be retried (a connection that was
    never made is retried for any call). ``hold`` is how long the host may
    hold the answer on purpose (long-poll), added to the read timeout."""

    method: str
    path: str
    params: Optional[Mapping[str, str]] = None
    body: Optional[bytes] = None
    retry_safe: bool = False
    hold: float = 0.0


T = TypeVar("T")

#: An operation that ends with a ``T``: it yields `Call`s and is sent each
#: call's decoded answer.
Op = Generator[Call, Any, T]


def _path_part(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")


def encode(what: str, value: Any) -> bytes:
    """``value`` as JSON, or `InvalidPayload` naming what could not be
    encoded; raised before anything is sent."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise InvalidPayload("not_serialisable", f"{what} is not JSON-serialisable: {e}") from None


def _check_payload(what: str, payload: Any) -> None:
    """Finds the first value JSON cannot carry and names its path."""

    def walk(path: str, v: Any) -> None:
        if v is None or isinstance(v, (str, bool, int)):
            return
        if isinstance(v, float):
            if not math.isfinite(v):
                raise InvalidPayload("not_serialisable", f"{what}: {path} is {v}, which JSON cannot carry")
            return
        if isinstance(v, Mapping):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise InvalidPayload(
                        "not_serialisable", f"{what}: {path} has key {k!r} ({type(k).__name__}); JSON keys are strings"
                    )
                walk(f"{path}.{k}", item)
            return
        if isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                walk(f"{path}[{i}]", item)
            return
        raise InvalidPayload(
            "not_serialisable",
            f"{what}: {path} is a {type(v).__name__} ({v!r:.80}), which is not JSON-serialisable; "
            "convert it (for example to a string) first",
        )

    walk("payload", payload)


#: A job's own retry policy, as the host's config writes one: ``{"delays":
#: ["1m", "5m"]}`` or ``{"base": "2s", "factor": 3, "max_delay": "1h",
#: "jitter": 0.1}``, either with ``max_attempts``. Spans may be timedeltas.
RetryPolicy = Mapping[str, Any]

_RETRY_KEYS = ("max_attempts", "delays", "base", "factor", "max_delay", "jitter")


def retry_body(retry: RetryPolicy) -> Dict[str, Any]:
    """A retry policy as the API takes it: timedeltas written as spans. An
    unknown key is refused here, naming the ones there are."""
    if not isinstance(retry, Mapping):
        raise ValueError(f"retry must be a mapping such as {{'delays': ['1s', '5s']}}, got {retry!r}")
    unknown = sorted(set(retry) - set(_RETRY_KEYS))
    if unknown:
        raise ValueError(f"retry: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(_RETRY_KEYS)}")

    def span(v: Any) -> Any:
        return format_duration(v) if isinstance(v, timedelta) else v

    body = {k: span(v) for k, v in retry.items()}
    if isinstance(body.get("delays"), (list, tuple)):
        body["delays"] = [span(d) for d in body["delays"]]
    return body


def job_body(
    handler: str,
    payload: Mapping[str, Any],
    *,
    priority: Optional[PriorityLike] = None,
    queue: Optional[str] = None,
    idempotency_key: Optional[str] = None,
    delay: Optional[timedelta] = None,
    max_attempts: Optional[int] = None,
    retry: Optional[RetryPolicy] = None,
) -> Dict[str, Any]:
    """One job as the API takes it. Without an idempotency key the client
    makes one, so a retry after a lost answer cannot enqueue twice."""
    _check_payload(f"job for handler {handler!r}", payload)
    body: Dict[str, Any] = {
        "handler": handler,
        "payload": dict(payload),
        "idempotency_key": idempotency_key or f"client:{uuid.uuid4()}",
    }
    if priority is not None:
        body["priority"] = priority_name(priority)
    if queue is not None:
        body["queue"] = queue
    if delay is not None:
        body["delay"] = format_duration(delay)
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    if retry is not None:
        body["retry"] = retry_body(retry)
    return body


def host_version() -> Op[str]:
    """The host's version, from its OpenAPI document (no token needed)."""
    doc = yield Call("GET", "/api/v1/openapi.json", retry_safe=True)
    return str(doc["info"]["version"])


def not_supported(feature: str) -> Op[NoReturn]:
    """Raises `NotSupported` naming the host's version (if it answers)."""
    try:
        version: Optional[str] = yield from host_version()
    except TaskhostError:
        version = None
    raise NotSupported(feature, version)


def enqueue(body: Dict[str, Any]) -> Op[str]:
    answer = yield Call("POST", "/api/v1/jobs", body=encode("the job", body), retry_safe=True)
    return str(answer["id"])


def enqueue_batch(
    handler: str,
    items: Iterable[Mapping[str, Any]],
    batch_size: int,
    options: Mapping[str, Any],
) -> Op[BatchResult]:
    """Sends the items in chunks of ``batch_size`` (each chunk all or none,
    each item with its own idempotency key). Every item is checked before
    the first chunk is sent; a refused chunk raises with the item's index in
    ``items`` and ``.partial`` holding what earlier chunks enqueued."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    bodies: List[Dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidPayload("not_serialisable", f"items[{i}] is a {type(item).__name__}, not a mapping")
        try:
            bodies.append(job_body(handler, item, **options))
        except InvalidPayload as e:
            raise InvalidPayload(e.code, f"items[{i}]: {e.message}") from None
    total = enqueued = 0
    ids: List[str] = []
    for start in range(0, len(bodies), batch_size):
        chunk = bodies[start : start + batch_size]
        try:
            answer = yield Call(
                "POST", "/api/v1/jobs/batch", body=encode("the batch", {"jobs": chunk}), retry_safe=True
            )
        except TaskhostError as e:
            e.message = _renumber(e.message, start)
            e.args = (f"{e.code}: {e.message}",)
            e.partial = BatchResult(total, enqueued, ids)  # type: ignore[attr-defined]
            raise
        total += answer["total"]
        enqueued += answer["enqueued"]
        ids.extend(answer["ids"])
    return BatchResult(total, enqueued, ids)


#: A batch callback: a handler name, or (handler, payload).
Callback = Any


def _callback_body(name: str, cb: Callback) -> Dict[str, Any]:
    if isinstance(cb, str):
        handler, payload = cb, {}
    else:
        handler, payload = cb
    if not isinstance(payload, Mapping):
        raise InvalidPayload("not_serialisable", f"{name}: the payload is a {type(payload).__name__}, not a mapping")
    _check_payload(f"{name} ({handler!r})", payload)
    return {"handler": handler, "payload": dict(payload)}


def _add_options(body: Dict[str, Any], options: Mapping[str, Any]) -> None:
    """Puts the given ``queue``, ``priority``, ``max_attempts`` and ``retry``
    into a batch's or a chain step's body, as the API takes them."""
    if options.get("queue") is not None:
        body["queue"] = options["queue"]
    if options.get("priority") is not None:
        body["priority"] = priority_name(options["priority"])
    if options.get("max_attempts") is not None:
        body["max_attempts"] = options["max_attempts"]
    if options.get("retry") is not None:
        body["retry"] = retry_body(options["retry"])


def start_batch(
    handler: str,
    items: Iterable[Mapping[str, Any]],
    batch_size: Optional[int],
    options: Mapping[str, Any],
    on_complete: Optional[Callback],
    on_success: Optional[Callback],
) -> Op[BatchStatus]:
    """Starts a batch on the host (``POST /api/v1/batches``): one job per
    item, written in atomic chunks of ``batch_size``; ``on_complete`` is
    enqueued once every job finished, ``on_success`` once all succeeded.
    Every item and callback is checked before anything is sent. The start
    carries an idempotency key (``options["idempotency_key"]``, else one
    made here), so a retry after a lost answer cannot start a second batch,
    and finishes writing the first if its host died part-way."""
    payloads: List[Dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidPayload("not_serialisable", f"items[{i}] is a {type(item).__name__}, not a mapping")
        _check_payload(f"items[{i}]", item)
        payloads.append(dict(item))
    body: Dict[str, Any] = {
        "handler": handler,
        "items": payloads,
        "idempotency_key": options.get("idempotency_key") or f"client:{uuid.uuid4()}",
    }
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        body["batch_size"] = batch_size
    _add_options(body, options)
    if on_complete is not None:
        body["on_complete"] = _callback_body("on_complete", on_complete)
    if on_success is not None:
        body["on_success"] = _callback_body("on_success", on_success)
    answer = yield Call("POST", "/api/v1/batches", body=encode("the batch", body), retry_safe=True)
    return BatchStatus.from_json(answer["batch"], [str(j) for j in answer["jobs"]])


def get_batch(batch_id: str) -> Op[BatchStatus]:
    answer = yield Call("GET", f"/api/v1/batches/{_path_part(batch_id)}", retry_safe=True)
    return BatchStatus.from_json(answer)


def cancel_batch(batch_id: str) -> Op[BatchStatus]:
    """Cancels the batch's waiting jobs and terminates its running ones."""
    answer = yield Call("POST", f"/api/v1/batches/{_path_part(batch_id)}/cancel")
    return BatchStatus.from_json(answer)


def wait_batch(batch_id: str, timeout: float, clock: Callable[[], float]) -> Op[BatchStatus]:
    """Long-polls the batch's `/wait` until every job finished or
    ``timeout`` seconds pass."""
    answer = yield from _long_poll(f"/api/v1/batches/{_path_part(batch_id)}/wait", timeout, clock)
    return BatchStatus.from_json(answer["batch"])


def _renumber(message: str, offset: int) -> str:
    """The host names a chunk's item as ``jobs[i]``; the caller knows it as
    ``items[offset + i]``."""
    import re

    return re.sub(r"^jobs\[(\d+)\]", lambda m: f"items[{offset + int(m.group(1))}]", message)


def get_status(job_id: str) -> Op[TaskResult]:
    answer = yield Call("GET", f"/api/v1/jobs/{_path_part(job_id)}/result", retry_safe=True)
    return TaskResult.from_json(answer)


def get_job(job_id: str) -> Op[Job]:
    answer = yield Call("GET", f"/api/v1/jobs/{_path_part(job_id)}", retry_safe=True)
    return Job.from_json(answer)


def list_jobs(**filters: Optional[str]) -> Op[List[JobSummary]]:
    params = {k: str(v) for k, v in filters.items() if v is not None}
    answer = yield Call("GET", "/api/v1/jobs", params=params, retry_safe=True)
    return [JobSummary.from_json(j) for j in answer["jobs"]]


def _long_poll(path: str, timeout: float, clock: Callable[[], float]) -> Op[Dict[str, Any]]:
    """Long-polls ``path`` (a `/wait` endpoint) until its answer says
    ``finished`` or ``timeout`` seconds pass; each request holds at most the
    host's 60 s. Answers the last answer."""
    deadline = clock() + timeout
    while True:
        left = max(0.0, deadline - clock())
        hold = min(left, MAX_WAIT_SECONDS)
        answer: Dict[str, Any] = yield Call(
            "GET",
            path,
            params={"timeout": f"{max(1, round(hold * 1000))}ms"},
            retry_safe=True,
            hold=hold,
        )
        if answer["finished"] or clock() >= deadline:
            return answer


def wait_for(job_id: str, timeout: float, clock: Callable[[], float]) -> Op[TaskResult]:
    """Long-polls the job's `/wait` until it ends or ``timeout`` seconds pass."""
    answer = yield from _long_poll(f"/api/v1/jobs/{_path_part(job_id)}/wait", timeout, clock)
    return TaskResult.from_json(answer["job"], finished=answer["finished"])


def cancel(job_id: str, terminate: bool) -> Op[bool]:
    """True when the job was cancelled (or, with ``terminate``, is running
    and its host stops it within a second, ending it cancelled), False
    when it had already started or finished (the host's 409)."""
    params = {"terminate": "true"} if terminate else None
    try:
        yield Call("POST", f"/api/v1/jobs/{_path_part(job_id)}/cancel", params=params)
    except Conflict:
        return False
    return True


def queue_stats(queue: str) -> Op[QueueStats]:
    answer = yield Call("GET", f"/api/v1/queues/{_path_part(queue)}/stats", retry_safe=True)
    return QueueStats.from_json(answer)


def queue_length(queue: str) -> Op[int]:
    """Jobs due and waiting for a worker, all priorities (not the delayed
    or retrying ones)."""
    stats = yield from queue_stats(queue)
    return sum(stats.pending.values())


def purge_queue(queue: str) -> Op[int]:
    answer = yield Call("DELETE", f"/api/v1/queues/{_path_part(queue)}")
    return int(answer["count"])


def list_scheduled() -> Op[List[ScheduledJob]]:
    answer = yield Call("GET", "/api/v1/schedules", retry_safe=True)
    return [ScheduledJob.from_json(s) for s in answer]


def schedule(
    handler: str,
    expr: str,
    name: Optional[str],
    payload: Mapping[str, Any],
    options: Mapping[str, Any],
) -> Op[str]:
    """Creates the schedule, or replaces one of the same name that differs
    (an app declares its schedules at every start, as with celery beat);
    an identical one is left as it is. Returns the name."""
    _check_payload(f"schedule for handler {handler!r}", payload)
    schedule_name = name or handler
    definition: Dict[str, Any] = {
        "name": schedule_name,
        "schedule": expr,
        "handler": handler,
        "payload": dict(payload),
    }
    for key in ("queue", "timezone"):
        if options.get(key) is not None:
            definition[key] = options[key]
    if options.get("priority") is not None:
        definition["priority"] = priority_name(options["priority"])
    body = encode("the schedule", definition)
    try:
        yield Call("POST", "/api/v1/schedules", body=body)
        return schedule_name
    except Conflict as e:
        if e.code != "conflict":
            raise
    existing = [s for s in (yield from list_scheduled()) if s.name == schedule_name]
    if existing and _same(existing[0], definition):
        return schedule_name
    yield Call("DELETE", f"/api/v1/schedules/{_path_part(schedule_name)}")
    yield Call("POST", "/api/v1/schedules", body=body)
    return schedule_name


def _same(s: ScheduledJob, d: Mapping[str, Any]) -> bool:
    return bool(
        s.schedule == d["schedule"]
        and s.handler == d["handler"]
        and s.payload == d["payload"]
        and s.queue == d.get("queue", "default")
        and s.priority == d.get("priority", "normal")
        and s.timezone == d.get("timezone", "UTC")
    )


def unschedule(name: str) -> Op[None]:
    yield Call("DELETE", f"/api/v1/schedules/{_path_part(name)}")


_STEP_OPTIONS = ("queue", "priority", "max_attempts", "retry")


def chain(steps: Sequence[Sequence[Any]]) -> Op[List[str]]:
    """Makes a chain on the host (``POST /api/v1/chains``): each step is
    enqueued once the one before succeeded, with its result under
    ``previous`` in the payload. A step is ``(handler, args, kwargs)`` as
    the seed writes it, or ``(handler, args, kwargs, options)`` with
    options ``queue``, ``priority``, ``max_attempts`` and ``retry`` (the
    step's own retry policy). Answers the steps' job ids (a later step's
    job exists once its turn comes). Every step is checked before anything
    is sent."""
    bodies: List[Dict[str, Any]] = []
    for i, step in enumerate(steps):
        if len(step) not in (3, 4):
            raise ValueError(f"chain step {i} must be (handler, args, kwargs[, options]), got {step!r}")
        handler, args, kwargs = step[0], step[1], step[2]
        options: Mapping[str, Any] = step[3] if len(step) == 4 else {}
        if args:
            raise ValueError(f"chain step {i}: positional args are not supported; pass the payload as kwargs")
        unknown = sorted(set(options) - set(_STEP_OPTIONS))
        if unknown:
            raise ValueError(f"chain step {i}: unknown option(s) {', '.join(unknown)}; the options are {', '.join(_STEP_OPTIONS)}")
        _check_payload(f"chain step {i} ({handler!r})", kwargs)
        body: Dict[str, Any] = {"handler": handler, "payload": dict(kwargs)}
        _add_options(body, options)
        bodies.append(body)
    answer = yield Call("POST", "/api/v1/chains", body=encode("the chain", {"steps": bodies}))
    return [str(s["job"]) for s in answer["steps"]]
