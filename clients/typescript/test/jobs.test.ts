// Every JobManager method against the real host that `cargo test clients::`
// starts; it passes the address and tokens in TASKHOST_URL, TASKHOST_TOKEN
// (admin) and TASKHOST_READ_TOKEN (read only).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";

import {
  Forbidden,
  InvalidPayload,
  JobManager,
  JobPriority,
  NotFound,
  TaskhostError,
  TaskStatus,
  Unauthorized,
  Unavailable,
  UnknownHandler,
} from "../src/index.js";

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through \`cargo test -p taskhost-tests --test all clients::\``);
  return value;
}

const HOST = need("TASKHOST_URL");
need("TASKHOST_TOKEN");
const jobs = new JobManager();
const DAY = 86_400_000;

/** A queue of its own that no worker serves, so its jobs stay waiting. */
const parked = () => `parked-ts-${randomUUID().slice(0, 8)}`;

/** An address where nothing listens (a port bound, then released). */
async function downUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

async function rejects<E extends Error>(promise: Promise<unknown>, cls: new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    return e;
  }
  assert.fail(`expected ${cls.name}, but it resolved`);
}

test("enqueue runs the job and waitFor returns its result", async () => {
  const id = await jobs.enqueue("send_email", { to: "ada", subject: "Welcome!" });
  const done = await jobs.waitFor(id, 30_000);
  assert.equal(done.finished, true);
  assert.equal(done.status, TaskStatus.SUCCESS);
  assert.deepEqual(done.result, { to: "ada", subject: "Welcome!" });
  assert.equal((await jobs.getStatus(id)).status, TaskStatus.SUCCEEDED);
});

test("a failing job reports its error", async () => {
  const done = await jobs.waitFor(await jobs.enqueue("hello", { name: "" }), 30_000);
  assert.equal(done.status, TaskStatus.FAILED);
  assert.match(done.error ?? "", /name must not be empty/);
});

test("priorities, queue length and purge", async () => {
  const queue = parked();
  for (const [name, p] of Object.entries(JobPriority)) {
    const job = await jobs.getJob(await jobs.enqueue("cleanup", { level: name }, { priority: p, queue }));
    assert.deepEqual([job.priority, job.queue, job.status], [name.toLowerCase(), queue, "pending"]);
  }
  assert.equal(await jobs.queueLength(queue), 4);
  assert.deepEqual((await jobs.queueStats(queue)).pending, { critical: 1, high: 1, normal: 1, low: 1 });
  assert.equal(await jobs.purgeQueue(queue), 4);
  assert.equal(await jobs.queueLength(queue), 0);
});

test("waitFor gives up at its timeout with the current status", async () => {
  const id = await jobs.enqueue("cleanup", {}, { queue: parked() });
  const r = await jobs.waitFor(id, 500);
  assert.equal(r.finished, false);
  assert.equal(r.status, TaskStatus.PENDING);
});

test("an idempotency key returns the original job", async () => {
  const queue = parked();
  const key = `order-${randomUUID()}`;
  const first = await jobs.enqueue("process_payment", { order_id: "1" }, { queue, idempotencyKey: key });
  assert.equal(await jobs.enqueue("process_payment", { order_id: "1" }, { queue, idempotencyKey: key }), first);
  assert.equal(await jobs.queueLength(queue), 1);
});

test("enqueueDelayed, then cancel", async () => {
  const id = await jobs.enqueueDelayed("request_review", 7 * DAY, { order_id: "o-1" });
  const job = await jobs.getJob(id);
  assert.equal(job.status, TaskStatus.SCHEDULED);
  assert.ok(Math.abs(Date.parse(job.run_at) - Date.parse(job.created_at) - 7 * DAY) < 5000);
  assert.equal(await jobs.cancel(id), true);
  assert.equal(await jobs.cancel(id), false);
});

test("cancel with terminate stops a running job, not retried", async () => {
  // probe.sleep waits in a host call for as long as it is told.
  const id = await jobs.enqueue("probe.sleep", { ms: 60_000 });
  const deadline = Date.now() + 30_000;
  while ((await jobs.getStatus(id)).status !== TaskStatus.RUNNING) {
    assert.ok(Date.now() < deadline, "the job never started");
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await jobs.cancel(id), false, "a plain cancel leaves a running job alone");
  assert.equal(await jobs.cancel(id, { terminate: true }), true);
  const result = await jobs.waitFor(id, 30_000);
  assert.equal(result.status, TaskStatus.CANCELLED);
  assert.equal((await jobs.getJob(id)).attempts.length, 1, "not retried");
  assert.equal(await jobs.cancel(id, { terminate: true }), false, "a finished job cannot be terminated");
});

test("cancel with terminate cancels a waiting job", async () => {
  const id = await jobs.enqueue("cleanup", {}, { queue: parked() });
  assert.equal(await jobs.cancel(id, { terminate: true }), true);
  assert.equal((await jobs.getStatus(id)).status, TaskStatus.CANCELLED);
});

test("schedules are declared, listed, redeclared and removed", async () => {
  const name = `ts-report-${randomUUID().slice(0, 8)}`;
  assert.equal(await jobs.schedule("generate_daily_report", "0 9 * * *", { name, payload: { kind: "daily" } }), name);
  const ping = await jobs.scheduleInterval("health_check", 5 * 60_000, { name: `${name}-ping` });
  let listed = new Map((await jobs.listScheduled()).map((s) => [s.name, s]));
  assert.equal(listed.get(name)?.schedule, "0 9 * * *");
  assert.deepEqual(listed.get(name)?.payload, { kind: "daily" });
  assert.equal(listed.get(name)?.nextRun?.getUTCHours(), 9);
  assert.equal(listed.get(ping)?.schedule, "every 5m");
  await jobs.schedule("generate_daily_report", "0 9 * * *", { name, payload: { kind: "daily" } });
  await jobs.schedule("generate_daily_report", "30 4 * * 1-5", { name, payload: { kind: "daily" } });
  listed = new Map((await jobs.listScheduled()).map((s) => [s.name, s]));
  assert.equal(listed.get(name)?.schedule, "30 4 * * 1-5");
  await jobs.unschedule(name);
  await jobs.unschedule(ping);
  const names = (await jobs.listScheduled()).map((s) => s.name);
  assert.ok(!names.includes(name) && !names.includes(ping));
  await rejects(jobs.unschedule(name), NotFound);
});

test("enqueueBatch sends chunks and counts", async () => {
  const queue = parked();
  const items = Array.from({ length: 250 }, (_, i) => ({ user_id: String(i), content: "news" }));
  const r = await jobs.enqueueBatch("send_newsletter_email", items, { batchSize: 100, queue });
  assert.deepEqual([r.total, r.enqueued, new Set(r.ids).size], [250, 250, 250]);
  assert.equal(await jobs.queueLength(queue), 250);
  assert.deepEqual((await jobs.getJob(r.ids[137])).payload, items[137]);
});

test("a refused chunk names the item and what was enqueued", async () => {
  const queue = parked();
  // The test host's [workers] max_payload is 4 KiB.
  const items: Record<string, unknown>[] = Array.from({ length: 250 }, (_, i) => ({ n: i }));
  items[150] = { n: 150, blob: "x".repeat(8192) };
  const e = await rejects(jobs.enqueueBatch("send_newsletter_email", items, { batchSize: 100, queue }), InvalidPayload);
  assert.equal(e.code, "payload_too_large");
  assert.match(e.detail, /^items\[150\]: /);
  assert.equal(e.partial?.total, 100);
  assert.equal(await jobs.queueLength(queue), 100);
});

test("a batch over the host's limit is refused with its message", async () => {
  const queue = parked();
  const items = Array.from({ length: 201 }, (_, i) => ({ n: i }));
  const e = await rejects(jobs.enqueueBatch("send_newsletter_email", items, { batchSize: 201, queue }), InvalidPayload);
  assert.equal(e.code, "batch_too_large");
  assert.match(e.detail, /the limit is 200/);
  assert.equal(await jobs.queueLength(queue), 0);
});

test("a batch callback runs once when every job is done", async () => {
  const before = (await jobs.listJobs({ handler: "report_done", limit: 1000 })).length;
  const items = Array.from({ length: 5 }, (_, n) => ({ n }));
  const result = await jobs.enqueueBatch("batch_item", items, { batchSize: 2, callback: "report_done" });
  assert.equal(result.total, 5);
  assert.equal(result.ids.length, 5);
  for (const id of result.ids) assert.equal((await jobs.waitFor(id, 30_000)).status, TaskStatus.SUCCEEDED);
  // Enqueued by the commit that ended the last item: there now, once.
  assert.equal((await jobs.listJobs({ handler: "report_done", limit: 1000 })).length, before + 1);
});

test("a batch reports its counts and fires both callbacks", async () => {
  const started = await jobs.batch("batch_item", [{ n: 1 }, { n: 2 }, { n: 3 }], {
    batchSize: 2,
    onComplete: { handler: "report_done", payload: { to: "ops" } },
    onSuccess: "report_done",
  });
  assert.equal(started.batch.total, 3);
  assert.equal(started.jobs.length, 3);
  const done = await jobs.waitBatch(started.batch.id, 60_000);
  assert.equal(done.finished, true);
  assert.equal(done.succeeded, 3);
  assert.equal(done.percent, 100);
  assert.equal(done.on_complete?.fired, true);
  assert.equal(done.on_success?.fired, true);
  const callback = await jobs.getJob(done.on_complete!.job);
  assert.deepEqual(callback.payload, { batch: started.batch.id, to: "ops" });
  assert.deepEqual(await jobs.getBatch(started.batch.id), done);
  assert.equal(started.created, true);
  // A repeat under the same key answers the first batch and starts nothing.
  const key = `report-${randomUUID()}`;
  const keyed = await jobs.batch("batch_item", [{ n: 9 }], { idempotencyKey: key });
  const again = await jobs.batch("batch_item", [{ n: 9 }], { idempotencyKey: key });
  assert.deepEqual([again.batch.id, again.created], [keyed.batch.id, false]);
  const reused = await rejects(jobs.batch("batch_item", [{ n: 8 }], { idempotencyKey: key }), TaskhostError);
  assert.match(reused.detail, new RegExp(key));
  const empty = await rejects(jobs.batch("batch_item", []), TaskhostError);
  assert.match(empty.detail, /1 to 10000 items/);
  await rejects(jobs.batch("batch_item", [{ n: 1 }], { onSuccess: "no_such_handler" }), UnknownHandler);
  await assert.rejects(jobs.batch("batch_item", [{ n: 1 }], { batchSize: 0 }), RangeError);
});

test("cancelling a batch cancels its waiting jobs", async () => {
  const started = await jobs.batch("batch_item", [{ n: 1 }, { n: 2 }], { queue: parked(), onComplete: "report_done" });
  const cancelled = await jobs.cancelBatch(started.batch.id);
  assert.equal(cancelled.cancelled, 2);
  assert.equal(cancelled.finished, true);
  assert.equal(cancelled.on_complete?.fired, true);
  for (const id of started.jobs) assert.equal((await jobs.getStatus(id)).status, TaskStatus.CANCELLED);
});

test("a chain runs its steps in order, passing each result on", async () => {
  const order = { order_id: randomUUID() };
  const ids = await jobs.chain([
    ["validate_order", [], order],
    ["process_payment", [], order],
  ]);
  assert.equal(ids.length, 2);
  // The last step's job exists once its turn comes.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const done = await jobs.waitFor(ids[1], 30_000);
      assert.equal(done.status, TaskStatus.SUCCEEDED);
      assert.deepEqual(done.result, { previous: order, ...order });
      break;
    } catch (e) {
      if (!(e instanceof NotFound) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  await assert.rejects(jobs.chain([["validate_order", ["x"], {}]]), RangeError);
});

test("a job and a chain step keep their own retry policy", async () => {
  const id = await jobs.enqueue("send_email", { to: "ada", retry_until_attempt: 2 }, { retry: { delaysMs: [100], maxAttempts: 3 } });
  assert.equal((await jobs.waitFor(id, 30_000)).status, TaskStatus.SUCCEEDED);
  const job = await jobs.getJob(id);
  assert.deepEqual(job.retry, { kind: "delays", max_attempts: 3, delays: ["100ms"] });
  assert.deepEqual(
    job.attempts.map((a) => a.outcome),
    ["retryable", "success"],
  );
  const ids = await jobs.chain([
    ["validate_order", [], { order_id: "r-ts" }],
    ["process_payment", [], {}, { retry: { baseMs: 50, factor: 2, jitter: 0 }, maxAttempts: 2 }],
  ]);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      assert.equal((await jobs.waitFor(ids[1], 30_000)).status, TaskStatus.SUCCEEDED);
      break;
    } catch (e) {
      if (!(e instanceof NotFound) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const step = await jobs.getJob(ids[1]);
  assert.equal(step.retry?.kind, "exponential");
  assert.equal(step.max_attempts, 2);
  await assert.rejects(jobs.enqueue("send_email", {}, { retry: { tries: 3 } as never }), RangeError);
});

test("an unknown handler is refused with the host's message", async () => {
  const e = await rejects(jobs.enqueue("no_such_handler", { x: 1 }), UnknownHandler);
  assert.equal(e.status, 404);
  assert.match(e.detail, /no_such_handler/);
  await rejects(jobs.schedule("no_such_handler", "0 9 * * *", { name: "never" }), UnknownHandler);
});

test("a payload JSON cannot carry is refused before anything is sent", async () => {
  // Nothing listens there: a request would be Unavailable instead.
  const offline = new JobManager({ baseUrl: await downUrl(), retries: 0 });
  const e = await rejects(offline.enqueue("send_email", { amount: 10n }), InvalidPayload);
  assert.equal(e.code, "not_serialisable");
  assert.match(e.detail, /payload\.amount is a bigint/);
  await rejects(offline.enqueue("send_email", { tags: new Set(["a"]) }), InvalidPayload);
  const nan = await rejects(offline.enqueue("send_email", { scores: [1, NaN] }), InvalidPayload);
  assert.match(nan.detail, /payload\.scores\[1\] is NaN/);
  const batch = await rejects(offline.enqueueBatch("send_email", [{ a: 1 }, { f: () => 1 }]), InvalidPayload);
  assert.match(batch.detail, /^items\[1\]: .*payload\.f is a function/);
});

test("a bad cron is refused with the host's message", async () => {
  const e = await rejects(jobs.schedule("generate_daily_report", "61 * * * *", { name: "ts-bad-cron" }), InvalidPayload);
  assert.equal(e.status, 400);
  assert.match(e.detail, /minute: 61 is out of range 0-59/);
  assert.ok(!(await jobs.listScheduled()).some((s) => s.name === "ts-bad-cron"));
});

test("tokens: unknown, or without the scope", async () => {
  await rejects(new JobManager({ token: "not-a-token" }).enqueue("send_email", {}), Unauthorized);
  const reader = new JobManager({ token: need("TASKHOST_READ_TOKEN") });
  assert.equal((await rejects(reader.enqueue("send_email", {}), Forbidden)).status, 403);
  await rejects(reader.getStatus(randomUUID()), NotFound);
});

test("a host that is down is Unavailable after the retries", async () => {
  const url = await downUrl();
  const started = Date.now();
  const e = await rejects(new JobManager({ baseUrl: url, retries: 2, backoffMs: 50 }).enqueue("send_email", {}), Unavailable);
  assert.equal(e.attempts, 3);
  assert.ok(e.detail.includes(url), e.detail);
  assert.ok(Date.now() - started < 30_000, "a ceiling for a hang");
});

/** A proxy that forwards the first `method` request to the host, then closes the connection without answering. */
async function dropFirst(method: string): Promise<{ url: string; seen: [string, string][]; close: () => void }> {
  const seen: [string, string][] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString();
    seen.push([req.method ?? "", body]);
    const headers = { ...req.headers } as Record<string, string>;
    delete headers.host;
    delete headers["content-length"];
    const answer = await fetch(HOST + req.url, { method: req.method, headers, body: body || undefined });
    const text = await answer.text();
    if (req.method === method && seen.filter(([m]) => m === method).length === 1) {
      req.socket.destroy();
      return;
    }
    res.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "application/json" });
    res.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => server.close() };
}

test("an enqueue whose answer was lost is retried without a second job", async () => {
  const proxy = await dropFirst("POST");
  try {
    const queue = parked();
    const viaProxy = new JobManager({ baseUrl: proxy.url, retries: 2, backoffMs: 50 });
    const id = await viaProxy.enqueue("send_confirmation", { order_id: "o-9" }, { queue });
    const posts = proxy.seen.filter(([m]) => m === "POST");
    assert.equal(posts.length, 2, "the lost answer was retried");
    assert.equal(posts[0][1], posts[1][1], "with the same body, idempotency key included");
    assert.equal(await jobs.queueLength(queue), 1);
    assert.deepEqual((await jobs.getJob(id)).payload, { order_id: "o-9" });
  } finally {
    proxy.close();
  }
});

test("a call that is not idempotent is not retried after a lost answer", async () => {
  const queue = parked();
  await jobs.enqueue("cleanup", {}, { queue });
  const proxy = await dropFirst("DELETE");
  try {
    const viaProxy = new JobManager({ baseUrl: proxy.url, retries: 3, backoffMs: 50 });
    const e = await rejects(viaProxy.purgeQueue(queue), Unavailable);
    assert.equal(e.attempts, 1);
    assert.equal(proxy.seen.filter(([m]) => m === "DELETE").length, 1);
  } finally {
    proxy.close();
  }
});
