"""Typed views of the API's JSON (the schemas of `/api/v1/openapi.json`),
plus the seed's names for priorities and statuses so application code keeps
reading the way it did."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, IntEnum
from typing import Any, Dict, List, Optional, Union


class JobPriority(IntEnum):
    """The seed's priority levels; the host has the same four, strictly
    ordered (a HIGH job never waits behind a NORMAL one)."""

    LOW = 0
    NORMAL = 5
    HIGH = 8
    CRITICAL = 10

    @property
    def wire(self) -> str:
        """The name the API takes: ``low``, ``normal``, ``high``, ``critical``."""
        return self.name.lower()


PriorityLike = Union[JobPriority, str, int]


def priority_name(p: PriorityLike) -> str:
    """The API's name for a priority given as the enum, its value or its name."""
    if isinstance(p, str):
        try:
            return JobPriority[p.upper()].wire
        except KeyError:
            raise ValueError(f"priority {p!r} is not one of low, normal, high, critical") from None
    try:
        return JobPriority(p).wire
    except ValueError:
        raise ValueError(f"priority {p!r} is not one of 0, 5, 8, 10 (JobPriority)") from None


class TaskStatus(str, Enum):
    """A job's status as the host names it. ``SUCCESS`` and ``FAILED`` are
    the seed's names for ``succeeded`` and ``dead`` (aliases)."""

    SCHEDULED = "scheduled"
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"
    SUCCESS = "succeeded"
    FAILED = "dead"

    @property
    def is_final(self) -> bool:
        """Whether the job will not run again by itself."""
        return self in (TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED)


_FRACTION = re.compile(r"\.(\d{1,6})\d*")


def parse_time(text: Optional[str]) -> Optional[datetime]:
    """An RFC 3339 time from the host (nanoseconds and ``Z`` included) as an
    aware datetime; Python keeps microseconds."""
    if text is None:
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1).ljust(6, "0"), text, count=1)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_duration(d: timedelta) -> str:
    """A positive timedelta in the host's duration syntax (``7d``, ``1h30m``,
    ``250ms``), exact to the millisecond."""
    ms = round(d.total_seconds() * 1000)
    if ms <= 0:
        raise ValueError(f"duration must be positive, got {d!r}")
    out = ""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            out += f"{n}{unit}"
    return out


@dataclass(frozen=True)
class TaskResult:
    """A job's status with its result or last error (`/jobs/{id}/result`,
    `/jobs/{id}/wait`). ``finished`` is False when ``wait_for`` timed out."""

    id: str
    status: TaskStatus
    result: Any = None
    error: Optional[str] = None
    finished: bool = True

    @classmethod
    def from_json(cls, body: Dict[str, Any], finished: Optional[bool] = None) -> "TaskResult":
        status = TaskStatus(body["status"])
        return cls(
            id=body["id"],
            status=status,
            result=body.get("result"),
            error=body.get("error"),
            finished=status.is_final if finished is None else finished,
        )


@dataclass(frozen=True)
class Attempt:
    """One finished run of a job."""

    attempt: int
    at: datetime
    host: str
    outcome: str
    message: Optional[str]
    duration_ms: int
    fuel: Optional[int]
    #: sha256 of the plugin version the run ran on (absent for an expired lease).
    plugin_digest: Optional[str] = None

    @classmethod
    def from_json(cls, b: Dict[str, Any]) -> "Attempt":
        at = parse_time(b["at"])
        assert at is not None
        return cls(
            b["attempt"],
            at,
            b["host"],
            b["outcome"],
            b.get("message"),
            b["duration_ms"],
            b.get("fuel"),
            b.get("plugin_digest"),
        )


@dataclass(frozen=True)
class Job:
    """A whole job with its attempt history (`GET /jobs/{id}`)."""

    id: str
    queue: str
    handler: str
    payload: Any
    priority: str
    status: TaskStatus
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    attempts: List[Attempt]
    result: Any
    idempotency_key: Optional[str]
    schedule: Optional[str]
    #: The job's own retry policy as the host resolved it (``kind``
    #: ``delays`` or ``exponential``); None when its handler's applies.
    retry: Optional[Dict[str, Any]] = None

    @classmethod
    def from_json(cls, b: Dict[str, Any]) -> "Job":
        run_at, created_at = parse_time(b["run_at"]), parse_time(b["created_at"])
        assert run_at is not None and created_at is not None
        return cls(
            id=b["id"],
            queue=b["queue"],
            handler=b["handler"],
            payload=b.get("payload"),
            priority=b["priority"],
            status=TaskStatus(b["status"]),
            attempt=b["attempt"],
            max_attempts=b["max_attempts"],
            run_at=run_at,
            created_at=created_at,
            started_at=parse_time(b.get("started_at")),
            finished_at=parse_time(b.get("finished_at")),
            attempts=[Attempt.from_json(a) for a in b.get("attempts", [])],
            result=b.get("result"),
            idempotency_key=b.get("idempotency_key"),
            schedule=b.get("schedule"),
            retry=b.get("retry"),
        )


@dataclass(frozen=True)
class JobSummary:
    """A job as a list shows it (`GET /jobs`): no payload or result."""

    id: str
    queue: str
    handler: str
    priority: str
    status: TaskStatus
    attempt: int
    run_at: datetime

    @classmethod
    def from_json(cls, b: Dict[str, Any]) -> "JobSummary":
        run_at = parse_time(b["run_at"])
        assert run_at is not None
        return cls(b["id"], b["queue"], b["handler"], b["priority"], TaskStatus(b["status"]), b["attempt"], run_at)


@dataclass(frozen=True)
class BatchResult:
    """What `enqueue_batch` did: ``total`` items sent, ``enqueued`` newly
    created (the rest matched idempotency keys), their ids in item order."""

    total: int
    enqueued: int
    ids: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class BatchStatus:
    """A batch (`GET /api/v1/batches/{id}`): its jobs' counts, ``percent``
    of them finished, and whether its callbacks were enqueued (None: the
    batch has no such callback). ``jobs`` holds the jobs' ids in item
    order when the batch was just started."""

    id: str
    handler: str
    total: int
    pending: int
    running: int
    succeeded: int
    dead: int
    cancelled: int
    percent: float
    finished: bool
    on_complete_fired: Optional[bool] = None
    on_success_fired: Optional[bool] = None
    jobs: List[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, b: Dict[str, Any], jobs: Optional[List[str]] = None) -> "BatchStatus":
        def fired(cb: Optional[Dict[str, Any]]) -> Optional[bool]:
            return None if cb is None else bool(cb["fired"])

        return cls(
            b["id"],
            b["handler"],
            b["total"],
            b["pending"],
            b["running"],
            b["succeeded"],
            b["dead"],
            b["cancelled"],
            float(b["percent"]),
            bool(b["finished"]),
            fired(b.get("on_complete")),
            fired(b.get("on_success")),
            list(jobs or []),
        )


@dataclass(frozen=True)
class ScheduledJob:
    """A schedule with its next fire time (`GET /schedules`). ``schedule`` is
    the cron or interval expression, as in the seed."""

    name: str
    schedule: str
    handler: str
    timezone: str
    payload: Any
    queue: str
    priority: str
    enabled: bool
    next_run: Optional[datetime]
    problem: Optional[str]

    @classmethod
    def from_json(cls, b: Dict[str, Any]) -> "ScheduledJob":
        s = b["schedule"]
        return cls(
            name=s["name"],
            schedule=s["spec"],
            handler=s["handler"],
            timezone=s["timezone"],
            payload=s.get("payload"),
            queue=s["queue"],
            priority=s["priority"],
            enabled=s["enabled"],
            next_run=parse_time(b.get("next_fire")),
            problem=b.get("problem"),
        )


@dataclass(frozen=True)
class QueueStats:
    """One queue's numbers (`GET /queues/{name}/stats`)."""

    name: str
    paused: bool
    pending: Dict[str, int]
    scheduled: int
    retrying: int
    running: int
    succeeded: int
    dead: int
    cancelled: int
    total: int
    hosts: int

    @classmethod
    def from_json(cls, b: Dict[str, Any]) -> "QueueStats":
        return cls(**{k: b[k] for k in cls.__dataclass_fields__})
