"""Python client for taskhost: enqueue, schedule, wait for and cancel jobs
over the host's HTTP API, with the JobManager API the apps already use.

    from taskhost_client import get_job_manager, JobManager, JobPriority
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    Conflict,
    Forbidden,
    InvalidPayload,
    NotFound,
    NotSupported,
    ServerError,
    TaskhostError,
    Unauthorized,
    Unavailable,
    UnknownHandler,
)
from .jobs import JobManager, SyncJobManager  # noqa: E402
from .models import (  # noqa: E402
    Attempt,
    BatchResult,
    BatchStatus,
    Job,
    JobPriority,
    JobSummary,
    QueueStats,
    ScheduledJob,
    TaskResult,
    TaskStatus,
)
from .shared import close_job_manager, enqueue, enqueue_delayed, get_job_manager  # noqa: E402

__all__ = [
    "Attempt",
    "BatchResult",
    "BatchStatus",
    "Conflict",
    "Forbidden",
    "InvalidPayload",
    "Job",
    "JobManager",
    "JobPriority",
    "JobSummary",
    "NotFound",
    "NotSupported",
    "QueueStats",
    "ScheduledJob",
    "ServerError",
    "SyncJobManager",
    "TaskResult",
    "TaskStatus",
    "TaskhostError",
    "Unauthorized",
    "Unavailable",
    "UnknownHandler",
    "close_job_manager",
    "enqueue",
    "enqueue_delayed",
    "get_job_manager",
]
