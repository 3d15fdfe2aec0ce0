"""The seed's code samples (../shared/seeds/004), as an app would hold
them: the app's own pieces first (models, fake persistence), then each
sample exactly as the seed writes it, with only the import line changed
from ``src.utils.jobs`` to ``taskhost_client``."""

import uuid
from dataclasses import dataclass, field
from typing import List

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter()


class SignupRequest(BaseModel):
    email: str


class OrderRequest(BaseModel):
    item: str


class NewsletterRequest(BaseModel):
    content: str


@dataclass
class Record:
    id: uuid.UUID = field(default_factory=uuid.uuid4)


#: What the fake persistence handed out, for the tests to look up.
created_users: List[Record] = []
SUBSCRIBERS = 250


async def create_user(data: SignupRequest) -> Record:
    user = Record()
    created_users.append(user)
    return user


async def confirm(order_id: str) -> dict:
    return {"order_id": order_id, "confirmed": True}


async def save_order(data: OrderRequest) -> Record:
    return Record()


async def get_subscribers() -> List[Record]:
    return [Record() for _ in range(SUBSCRIBERS)]


# --- Level 1: Fire-and-Forget (import line changed) ---

from taskhost_client import get_job_manager, JobManager  # noqa: E402
from fastapi import Depends  # noqa: E402

@router.post("/signup")
async def signup(
    data: SignupRequest,
    jobs: JobManager = Depends(get_job_manager),
):
    user = await create_user(data)

    # Send welcome email asynchronously
    await jobs.enqueue("send_welcome_email", user_id=str(user.id))

    return {"user_id": user.id}

# --- Level 2: Delayed Execution ---

from datetime import timedelta  # noqa: E402

@router.post("/orders/{order_id}/confirm")
async def confirm_order(
    order_id: str,
    jobs: JobManager = Depends(get_job_manager),
):
    order = await confirm(order_id)

    # Send review request in 7 days
    await jobs.enqueue_delayed(
        "request_review",
        delay=timedelta(days=7),
        order_id=order_id,
    )

    return order

# --- Level 3: Scheduled/Cron Jobs ---

# In app startup
async def setup_scheduled_jobs():
    jobs = await get_job_manager()

    # Daily report at 9 AM
    await jobs.schedule(
        "generate_daily_report",
        cron="0 9 * * *",
        name="daily-report",
    )

    # Cleanup expired sessions every hour
    await jobs.schedule(
        "cleanup_sessions",
        cron="0 * * * *",
        name="session-cleanup",
    )

    # Health check every 5 minutes
    await jobs.schedule_interval(
        "health_check",
        interval=timedelta(minutes=5),
        name="health-ping",
    )

# --- Level 4: Chained Jobs (Workflows) ---

@router.post("/orders")
async def create_order(
    data: OrderRequest,
    jobs: JobManager = Depends(get_job_manager),
):
    order = await save_order(data)

    # Chain: validate -> process payment -> send confirmation
    await jobs.chain([
        ("validate_order", (), {"order_id": str(order.id)}),
        ("process_payment", (), {"order_id": str(order.id)}),
        ("send_confirmation", (), {"order_id": str(order.id)}),
    ])

    return order

# --- Level 5: Batch Processing ---

@router.post("/admin/send-newsletter")
async def send_newsletter(
    data: NewsletterRequest,
    jobs: JobManager = Depends(get_job_manager),
):
    subscribers = await get_subscribers()

    # Enqueue job for each subscriber
    result = await jobs.enqueue_batch(
        "send_newsletter_email",
        items=[{"user_id": str(s.id), "content": data.content} for s in subscribers],
        batch_size=100,
    )

    return {
        "total": result.total,
        "enqueued": result.enqueued,
    }

# --- Convenience Functions (import line changed; the address is a name) ---

from taskhost_client import enqueue, enqueue_delayed  # noqa: E402

async def remind_later():
    # Fire and forget
    task_id = await enqueue("send_email", to="ada")

    # Delayed execution
    task_id = await enqueue_delayed(
        "send_reminder",
        timedelta(hours=1),
        user_id="123",
    )
    return task_id
