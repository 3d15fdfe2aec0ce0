"""The seed's samples (seed_app.py) served by FastAPI, called over ASGI,
enqueueing on the real host."""

import asyncio
from datetime import timedelta
from typing import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

import seed_app
from taskhost_client import JobManager, TaskStatus, get_job_manager

pytestmark = pytest.mark.anyio


@pytest.fixture
async def app_client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(seed_app.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


async def _jobs_with(jobs: JobManager, handler: str, **payload: str) -> list:
    found = []
    for summary in await jobs.list_jobs(handler=handler, limit=1000):
        job = await jobs.get_job(summary.id)
        if all(job.payload.get(k) == v for k, v in payload.items()):
            found.append(job)
    return found


async def test_signup_enqueues_the_welcome_email(app_client: httpx.AsyncClient) -> None:
    answer = await app_client.post("/signup", json={"email": "ada"})
    assert answer.status_code == 200, answer.text
    user_id = answer.json()["user_id"]
    jobs = await get_job_manager()
    [job] = await _jobs_with(jobs, "send_welcome_email", user_id=user_id)
    done = await jobs.wait_for(job.id, timeout=30)
    assert done.status == TaskStatus.SUCCESS
    assert done.result == {"user_id": user_id}


async def test_confirming_an_order_requests_a_review_in_seven_days(app_client: httpx.AsyncClient) -> None:
    answer = await app_client.post("/orders/o-42/confirm")
    assert answer.json() == {"order_id": "o-42", "confirmed": True}
    jobs = await get_job_manager()
    [job] = await _jobs_with(jobs, "request_review", order_id="o-42")
    assert job.status == TaskStatus.SCHEDULED
    assert abs((job.run_at - job.created_at) - timedelta(days=7)) < timedelta(seconds=5)
    assert await jobs.cancel(job.id)


async def test_scheduled_reports_are_set_up_at_every_start() -> None:
    await seed_app.setup_scheduled_jobs()
    await seed_app.setup_scheduled_jobs()  # the next start of the app
    jobs = await get_job_manager()
    schedules = {s.name: s for s in await jobs.list_scheduled()}
    try:
        assert schedules["daily-report"].schedule == "0 9 * * *"
        assert schedules["daily-report"].handler == "generate_daily_report"
        assert schedules["session-cleanup"].schedule == "0 * * * *"
        assert schedules["health-ping"].schedule == "every 5m"
        for name in ("daily-report", "session-cleanup", "health-ping"):
            assert schedules[name].next_run is not None, schedules[name]
    finally:
        for name in ("daily-report", "session-cleanup", "health-ping"):
            await jobs.unschedule(name)


async def test_the_order_chain_runs_validate_pay_confirm_in_order(app_client: httpx.AsyncClient) -> None:
    answer = await app_client.post("/orders", json={"item": "book"})
    assert answer.status_code == 200, answer.text
    order_id = answer.json()["id"]
    jobs = await get_job_manager()
    deadline = asyncio.get_running_loop().time() + 30
    while not (found := await _jobs_with(jobs, "send_confirmation", order_id=order_id)):
        assert asyncio.get_running_loop().time() < deadline, "the chain never reached its last step"
        await asyncio.sleep(0.05)
    done = await jobs.wait_for(found[0].id, timeout=30)
    assert done.status == TaskStatus.SUCCESS
    # Each step got the one before's result (the probe echoes its payload).
    assert done.result["previous"]["previous"] == {"order_id": order_id}


async def test_the_newsletter_goes_out_in_batches(app_client: httpx.AsyncClient) -> None:
    answer = await app_client.post("/admin/send-newsletter", json={"content": "December news"})
    assert answer.json() == {"total": seed_app.SUBSCRIBERS, "enqueued": seed_app.SUBSCRIBERS}
    jobs = await get_job_manager()
    assert len(await jobs.list_jobs(handler="send_newsletter_email", queue="default", limit=1000)) == seed_app.SUBSCRIBERS


async def test_the_convenience_functions_enqueue_without_a_manager() -> None:
    task_id = await seed_app.remind_later()
    jobs = await get_job_manager()
    job = await jobs.get_job(task_id)
    assert (job.handler, job.payload, job.status) == ("send_reminder", {"user_id": "123"}, TaskStatus.SCHEDULED)
    assert abs((job.run_at - job.created_at) - timedelta(hours=1)) < timedelta(seconds=5)
    assert await jobs.cancel(task_id)
