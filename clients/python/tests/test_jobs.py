"""Every JobManager method against the real host, sync and asyncio."""

import time
import uuid
from datetime import datetime, timedelta

import httpx
import pytest

from taskhost_client import (
    Forbidden,
    InvalidPayload,
    JobManager,
    JobPriority,
    NotFound,
    NotSupported,
    SyncJobManager,
    TaskhostError,
    TaskResult,
    TaskStatus,
    Unauthorized,
    Unavailable,
    UnknownHandler,
)


def test_enqueue_runs_the_job_and_wait_for_returns_its_result(jobs: SyncJobManager) -> None:
    job_id = jobs.enqueue("send_email", to="ada", subject="Welcome!")
    result = jobs.wait_for(job_id, timeout=30)
    assert result.finished
    assert result.status == TaskStatus.SUCCEEDED == TaskStatus.SUCCESS
    assert result.result == {"to": "ada", "subject": "Welcome!"}
    assert jobs.get_status(job_id).status == TaskStatus.SUCCEEDED


def test_a_failing_job_reports_its_error(jobs: SyncJobManager) -> None:
    job_id = jobs.enqueue("hello", name="")
    result = jobs.wait_for(job_id, timeout=30)
    assert result.status == TaskStatus.FAILED == TaskStatus.DEAD
    assert result.error is not None and "name must not be empty" in result.error


def test_priorities_queue_length_and_purge(jobs: SyncJobManager, parked: str) -> None:
    for p in JobPriority:
        job_id = jobs.enqueue("cleanup", priority=p, queue=parked, level=p.name)
        job = jobs.get_job(job_id)
        assert (job.priority, job.queue, job.status) == (p.name.lower(), parked, TaskStatus.PENDING)
    assert jobs.queue_length(parked) == 4
    assert jobs.queue_stats(parked).pending == {"critical": 1, "high": 1, "normal": 1, "low": 1}
    assert jobs.purge_queue(parked) == 4
    assert jobs.queue_length(parked) == 0


def test_wait_for_gives_up_at_its_timeout_with_the_current_status(jobs: SyncJobManager, parked: str) -> None:
    job_id = jobs.enqueue("cleanup", queue=parked)
    result = jobs.wait_for(job_id, timeout=0.5)
    assert not result.finished
    assert result.status == TaskStatus.PENDING


def test_an_idempotency_key_returns_the_original_job(jobs: SyncJobManager, parked: str) -> None:
    key = f"order-{uuid.uuid4()}"
    first = jobs.enqueue("process_payment", queue=parked, idempotency_key=key, order_id="1")
    again = jobs.enqueue("process_payment", queue=parked, idempotency_key=key, order_id="1")
    assert first == again
    assert jobs.queue_length(parked) == 1


def test_enqueue_delayed_then_cancel(jobs: SyncJobManager) -> None:
    job_id = jobs.enqueue_delayed("request_review", delay=timedelta(days=7), order_id="o-1")
    job = jobs.get_job(job_id)
    assert job.status == TaskStatus.SCHEDULED
    assert job.payload == {"order_id": "o-1"}
    assert abs((job.run_at - job.created_at) - timedelta(days=7)) < timedelta(seconds=5)
    assert jobs.cancel(job_id) is True
    assert jobs.get_status(job_id).status == TaskStatus.CANCELLED
    assert jobs.cancel(job_id) is False, "a job that already ended cannot be cancelled"


def test_cancel_with_terminate_stops_a_running_job(jobs: SyncJobManager) -> None:
    # probe.sleep waits in a host call for as long as it is told.
    job_id = jobs.enqueue("probe.sleep", ms=60_000)
    deadline = time.monotonic() + 30
    while jobs.get_status(job_id).status != TaskStatus.RUNNING:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)
    assert jobs.cancel(job_id) is False, "a plain cancel leaves a running job alone"
    assert jobs.cancel(job_id, terminate=True) is True
    result = jobs.wait_for(job_id, timeout=30)
    assert result.status == TaskStatus.CANCELLED
    assert len(jobs.get_job(job_id).attempts) == 1, "not retried"
    assert jobs.cancel(job_id, terminate=True) is False, "a finished job cannot be terminated"


def test_cancel_with_terminate_cancels_a_waiting_job(jobs: SyncJobManager, parked: str) -> None:
    job_id = jobs.enqueue("cleanup", queue=parked)
    assert jobs.cancel(job_id, terminate=True) is True
    assert jobs.get_status(job_id).status == TaskStatus.CANCELLED


def test_schedules_are_declared_listed_redeclared_and_removed(jobs: SyncJobManager) -> None:
    name = f"report-{uuid.uuid4().hex[:8]}"
    assert jobs.schedule("generate_daily_report", cron="0 9 * * *", name=name, kind="daily") == name
    every = jobs.schedule_interval("health_check", interval=timedelta(minutes=5), name=f"{name}-ping")
    listed = {s.name: s for s in jobs.list_scheduled()}
    assert listed[name].schedule == "0 9 * * *"
    assert listed[name].handler == "generate_daily_report"
    assert listed[name].payload == {"kind": "daily"}
    assert listed[name].next_run is not None and listed[name].next_run.hour == 9
    assert listed[every].schedule == "every 5m"
    # An app declares its schedules at every start: the same one again is
    # no error, and a changed one replaces it.
    jobs.schedule("generate_daily_report", cron="0 9 * * *", name=name, kind="daily")
    jobs.schedule("generate_daily_report", cron="30 4 * * 1-5", name=name, kind="daily")
    listed = {s.name: s for s in jobs.list_scheduled()}
    assert listed[name].schedule == "30 4 * * 1-5"
    jobs.unschedule(name)
    jobs.unschedule(every)
    names = {s.name for s in jobs.list_scheduled()}
    assert name not in names and every not in names
    with pytest.raises(NotFound):
        jobs.unschedule(name)


def test_enqueue_batch_sends_chunks_and_counts(jobs: SyncJobManager, parked: str) -> None:
    items = [{"user_id": str(i), "content": "news"} for i in range(250)]
    result = jobs.enqueue_batch("send_newsletter_email", items, batch_size=100, queue=parked)
    assert (result.total, result.enqueued, len(set(result.ids))) == (250, 250, 250)
    assert jobs.queue_length(parked) == 250
    assert jobs.get_job(result.ids[137]).payload == items[137]


def test_a_refused_chunk_names_the_item_and_what_was_enqueued(jobs: SyncJobManager, parked: str) -> None:
    # The test host's [workers] max_payload is 4 KiB: item 150 is too big,
    # so the second chunk (items 100-199) is refused as a whole.
    items = [{"n": i} for i in range(250)]
    items[150] = {"n": 150, "blob": "x" * 8192}
    with pytest.raises(InvalidPayload) as e:
        jobs.enqueue_batch("send_newsletter_email", items, batch_size=100, queue=parked)
    assert e.value.code == "payload_too_large"
    assert e.value.message.startswith("items[150]: "), e.value.message
    assert e.value.partial.total == 100  # type: ignore[attr-defined]
    assert jobs.queue_length(parked) == 100


def test_a_batch_over_the_hosts_limit_is_refused_with_its_message(jobs: SyncJobManager, parked: str) -> None:
    items = [{"n": i} for i in range(201)]
    with pytest.raises(InvalidPayload) as e:
        jobs.enqueue_batch("send_newsletter_email", items, batch_size=201, queue=parked)
    assert e.value.code == "batch_too_large"
    assert "the limit is 200" in e.value.message
    assert jobs.queue_length(parked) == 0


def test_a_batch_callback_runs_once_when_every_job_is_done(jobs: SyncJobManager) -> None:
    before = len(jobs.list_jobs(handler="report_done", limit=1000))
    items = [{"n": i} for i in range(5)]
    result = jobs.enqueue_batch("batch_item", items, batch_size=2, callback="report_done")
    assert (result.total, len(result.ids)) == (5, 5)
    for job_id in result.ids:
        assert jobs.wait_for(job_id, timeout=30).status == TaskStatus.SUCCEEDED
    # Enqueued by the commit that ended the last item: there now, once.
    assert len(jobs.list_jobs(handler="report_done", limit=1000)) == before + 1


def test_batch_reports_its_counts_and_fires_both_callbacks(jobs: SyncJobManager) -> None:
    started = jobs.batch(
        "batch_item",
        [{"n": i} for i in range(3)],
        batch_size=2,
        on_complete=("report_done", {"to": "ops"}),
        on_success="report_done",
    )
    assert (started.total, len(started.jobs)) == (3, 3)
    assert started.on_complete_fired is False and started.on_success_fired is False
    done = jobs.wait_batch(started.id, timeout=60)
    assert done.finished and done.succeeded == 3 and done.percent == 100.0
    assert done.on_complete_fired and done.on_success_fired
    assert jobs.get_batch(started.id) == done
    # A repeat under the same key answers the first batch and starts nothing.
    key = f"report-{uuid.uuid4()}"
    keyed = jobs.batch("batch_item", [{"n": 9}], idempotency_key=key)
    assert jobs.batch("batch_item", [{"n": 9}], idempotency_key=key).id == keyed.id
    with pytest.raises(TaskhostError, match=key):
        jobs.batch("batch_item", [{"n": 8}], idempotency_key=key)
    with pytest.raises(TaskhostError, match="1 to 10000 items"):
        jobs.batch("batch_item", [])
    with pytest.raises(UnknownHandler):
        jobs.batch("batch_item", [{"n": 1}], on_success="no_such_handler")
    with pytest.raises(ValueError, match="batch_size"):
        jobs.batch("batch_item", [{"n": 1}], batch_size=0)


def test_cancelling_a_batch_cancels_its_waiting_jobs(jobs: SyncJobManager, parked: str) -> None:
    started = jobs.batch("batch_item", [{"n": 1}, {"n": 2}], queue=parked, on_complete="report_done")
    cancelled = jobs.cancel_batch(started.id)
    assert (cancelled.cancelled, cancelled.finished, cancelled.on_complete_fired) == (2, True, True)
    for job_id in started.jobs:
        assert jobs.get_status(job_id).status == TaskStatus.CANCELLED


def _wait_for_step(jobs: SyncJobManager, job_id: str) -> TaskResult:
    """A later chain step's job exists once its turn comes."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return jobs.wait_for(job_id, timeout=30)
        except NotFound:
            assert time.monotonic() < deadline, "the step was never enqueued"
            time.sleep(0.02)


def test_chain_runs_its_steps_in_order_passing_results_on(jobs: SyncJobManager) -> None:
    order = str(uuid.uuid4())
    ids = jobs.chain([("validate_order", (), {"order_id": order}), ("process_payment", (), {"order_id": order})])
    assert len(ids) == 2
    last = _wait_for_step(jobs, ids[1])
    assert last.status == TaskStatus.SUCCEEDED
    assert last.result == {"previous": {"order_id": order}, "order_id": order}
    with pytest.raises(ValueError, match="positional args"):
        jobs.chain([("validate_order", ("x",), {})])


def test_a_job_and_a_chain_step_keep_their_own_retry_policy(jobs: SyncJobManager) -> None:
    policy = {"delays": [timedelta(milliseconds=100)], "max_attempts": 3}
    job_id = jobs.enqueue("send_email", retry=policy, to="ada", retry_until_attempt=2)
    assert jobs.wait_for(job_id, timeout=30).status == TaskStatus.SUCCEEDED
    job = jobs.get_job(job_id)
    assert job.retry == {"kind": "delays", "max_attempts": 3, "delays": ["100ms"]}
    assert [a.outcome for a in job.attempts] == ["retryable", "success"]
    ids = jobs.chain(
        [
            ("validate_order", (), {"order_id": "r-1"}),
            ("process_payment", (), {}, {"retry": {"base": "50ms", "factor": 2, "jitter": 0}, "max_attempts": 2}),
        ]
    )
    assert _wait_for_step(jobs, ids[1]).status == TaskStatus.SUCCEEDED
    step = jobs.get_job(ids[1])
    assert step.retry is not None and step.retry["kind"] == "exponential"
    assert (step.retry["base"], step.max_attempts) == ("50ms", 2)
    with pytest.raises(ValueError, match="unknown key"):
        jobs.enqueue("send_email", retry={"tries": 3})
    with pytest.raises(ValueError, match="unknown option"):
        jobs.chain([("validate_order", (), {}, {"timeout": 5})])


# Bad input.


def test_an_unknown_handler_raises_with_the_hosts_message(jobs: SyncJobManager) -> None:
    with pytest.raises(UnknownHandler) as e:
        jobs.enqueue("no_such_handler", x=1)
    assert e.value.code == "unknown_handler" and e.value.status == 404
    assert "no_such_handler" in e.value.message
    assert jobs.list_jobs(handler="no_such_handler") == []
    with pytest.raises(UnknownHandler):
        jobs.schedule("no_such_handler", cron="0 9 * * *", name="never")


def test_a_payload_json_cannot_carry_is_refused_before_sending(down_url: str) -> None:
    # Pointed at an address where nothing listens: a request would raise
    # Unavailable, so InvalidPayload proves nothing was sent.
    with SyncJobManager(down_url, retries=0) as jobs:
        with pytest.raises(InvalidPayload) as e:
            jobs.enqueue("send_email", to="ada", when=datetime(2026, 1, 1))
        assert e.value.code == "not_serialisable"
        assert "payload.when is a datetime" in e.value.message
        with pytest.raises(InvalidPayload, match=r"payload.scores\[1\] is nan"):
            jobs.enqueue("send_email", scores=[1.0, float("nan")])
        with pytest.raises(InvalidPayload, match=r"items\[2\]: .*payload.tags is a set"):
            jobs.enqueue_batch("send_email", [{"a": 1}, {"a": 2}, {"tags": {"x"}}])


def test_a_bad_cron_raises_with_the_hosts_message(jobs: SyncJobManager) -> None:
    with pytest.raises(InvalidPayload) as e:
        jobs.schedule("generate_daily_report", cron="61 * * * *", name="bad-cron")
    assert e.value.status == 400
    assert "minute: 61 is out of range 0-59" in e.value.message
    assert "bad-cron" not in {s.name for s in jobs.list_scheduled()}


def test_tokens_missing_wrong_or_without_the_scope(host_url: str, read_token: str) -> None:
    with SyncJobManager(host_url, token="not-a-token") as wrong:
        with pytest.raises(Unauthorized):
            wrong.enqueue("send_email", to="ada")
    with SyncJobManager(host_url, token=read_token) as reader:
        with pytest.raises(Forbidden) as e:
            reader.enqueue("send_email", to="ada")
        assert e.value.status == 403
        with pytest.raises(NotFound):
            reader.get_status(str(uuid.uuid4()))


def test_a_host_that_is_down_raises_unavailable_after_the_retries(down_url: str) -> None:
    started = time.monotonic()
    with SyncJobManager(down_url, retries=2, backoff=0.05) as jobs:
        with pytest.raises(Unavailable) as e:
            jobs.enqueue("send_email", to="ada")
    assert e.value.attempts == 3
    assert down_url in e.value.message
    assert time.monotonic() - started < 30, "a ceiling for a hang"


@pytest.mark.anyio
async def test_async_client_down_raises_unavailable_too(down_url: str) -> None:
    async with JobManager(down_url, retries=1, backoff=0.05) as jobs:
        with pytest.raises(Unavailable) as e:
            await jobs.queue_length()
    assert e.value.attempts == 2


@pytest.mark.anyio
async def test_async_client_covers_the_same_calls(parked: str) -> None:
    async with JobManager() as jobs:
        job_id = await jobs.enqueue("send_email", priority=JobPriority.HIGH, to="ada")
        done = await jobs.wait_for(job_id, timeout=30)
        assert done.status == TaskStatus.SUCCESS and done.result == {"to": "ada"}
        waiting = await jobs.enqueue_delayed("request_review", timedelta(hours=1), queue=parked, order_id="2")
        assert (await jobs.get_status(waiting)).status == TaskStatus.SCHEDULED
        assert await jobs.cancel(waiting)
        batch = await jobs.enqueue_batch("cleanup", [{"n": 1}, {"n": 2}], queue=parked)
        assert (batch.total, batch.enqueued) == (2, 2)
        assert await jobs.queue_length(parked) == 2
        assert await jobs.purge_queue(parked) == 2
        name = await jobs.schedule("cleanup_sessions", cron="0 * * * *", name=f"async-{uuid.uuid4().hex[:6]}")
        assert name in {s.name for s in await jobs.list_scheduled()}
        await jobs.unschedule(name)
        [step] = await jobs.chain([("validate_order", (), {"n": 1})])
        assert (await jobs.wait_for(step, timeout=30)).result == {"n": 1}


class _DropFirst:
    """An HTTP proxy in front of the host that forwards the first request
    matching ``method`` and then closes the connection without answering:
    the request took effect, its answer was lost."""

    def __init__(self, upstream: str, method: str) -> None:
        import http.server
        import threading

        self.seen: list = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                proxy.seen.append((self.command, self.path, body))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.request(self.command, upstream + self.path, content=body, headers=headers)
                if self.command == method and sum(1 for s in proxy.seen if s[0] == method) == 1:
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_enqueue_whose_answer_was_lost_is_retried_without_a_second_job(host_url: str, parked: str) -> None:
    proxy = _DropFirst(host_url, "POST")
    try:
        with SyncJobManager(proxy.url, retries=2, backoff=0.05) as jobs:
            job_id = jobs.enqueue("send_confirmation", queue=parked, order_id="o-9")
            posts = [s for s in proxy.seen if s[0] == "POST"]
            assert len(posts) == 2, "the lost answer was retried"
            assert posts[0][2] == posts[1][2], "with the same body, idempotency key included"
            assert jobs.queue_length(parked) == 1
            assert jobs.get_job(job_id).payload == {"order_id": "o-9"}
    finally:
        proxy.close()


def test_a_call_that_is_not_idempotent_is_not_retried_after_a_lost_answer(host_url: str, parked: str) -> None:
    with SyncJobManager(host_url) as direct:
        direct.enqueue("cleanup", queue=parked)
    proxy = _DropFirst(host_url, "DELETE")
    try:
        with SyncJobManager(proxy.url, retries=3, backoff=0.05) as jobs:
            with pytest.raises(Unavailable) as e:
                jobs.purge_queue(parked)
            assert e.value.attempts == 1
            assert [s[0] for s in proxy.seen].count("DELETE") == 1
    finally:
        proxy.close()
