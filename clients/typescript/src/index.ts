/**
 * @taskhost/client: the seed's job API (enqueue, delayed, schedule, batch,
 * waitFor, cancel, queue management) over a taskhost host's HTTP API, for
 * Node 18+ (fetch, no runtime dependencies).
 */

import { randomUUID } from "node:crypto";

import { Conflict, InvalidPayload, NotSupported, TaskhostError } from "./errors.js";
import {
  type BatchResult,
  type BatchStatus,
  type Job,
  type JobPriority,
  type JobSummary,
  type PriorityName,
  type QueueStats,
  type ScheduledJob,
  type TaskResult,
  type TaskStatus,
  formatDuration,
  isFinal,
  priorityName,
} from "./models.js";
import { type Call, type ClientOptions, Transport, encode, expect } from "./transport.js";

export * from "./errors.js";
export * from "./models.js";
export type { ClientOptions } from "./transport.js";

/** The longest a single `/wait` request holds (the host's own ceiling). */
const MAX_WAIT_MS = 60_000;

export type Payload = Record<string, unknown>;

/** Where and how a job is enqueued. Without `idempotencyKey` the client makes one, so a retry after a lost answer cannot enqueue twice. */
export interface EnqueueOptions {
  priority?: JobPriority | PriorityName;
  queue?: string;
  idempotencyKey?: string;
  maxAttempts?: number;
  /** The job's own retry policy instead of its handler's. */
  retry?: RetryPolicy;
}

/**
 * A job's own retry policy, as the host's config writes one: `delays` (one retry each), or exponential
 * back-off from `base` times `factor` up to `maxDelay`, spread by `jitter`; spans in milliseconds.
 */
export interface RetryPolicy {
  maxAttempts?: number;
  delaysMs?: number[];
  baseMs?: number;
  factor?: number;
  maxDelayMs?: number;
  jitter?: number;
}

/** A retry policy as the API takes it. */
function retryBody(r: RetryPolicy): Record<string, unknown> {
  const known = ["maxAttempts", "delaysMs", "baseMs", "factor", "maxDelayMs", "jitter"];
  const unknown = Object.keys(r).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new RangeError(`retry: unknown key(s) ${unknown.join(", ")}; the keys are ${known.join(", ")}`);
  const body: Record<string, unknown> = {};
  if (r.maxAttempts !== undefined) body.max_attempts = r.maxAttempts;
  if (r.delaysMs !== undefined) body.delays = r.delaysMs.map(formatDuration);
  if (r.baseMs !== undefined) body.base = formatDuration(r.baseMs);
  if (r.factor !== undefined) body.factor = r.factor;
  if (r.maxDelayMs !== undefined) body.max_delay = formatDuration(r.maxDelayMs);
  if (r.jitter !== undefined) body.jitter = r.jitter;
  return body;
}

/** Where and how a chain step runs. */
export interface StepOptions {
  priority?: JobPriority | PriorityName;
  queue?: string;
  maxAttempts?: number;
  /** The step's own retry policy instead of its handler's. */
  retry?: RetryPolicy;
}

export interface ScheduleOptions {
  /** The schedule's name (default: the handler's); `unschedule` takes it. */
  name?: string;
  queue?: string;
  priority?: JobPriority | PriorityName;
  timezone?: string;
  payload?: Payload;
}

export interface BatchOptions {
  /** Items per request (each request all or none). Default 100. */
  batchSize?: number;
  priority?: JobPriority | PriorityName;
  queue?: string;
  /** A handler to run once every item's job has finished: the items then become one host batch (see `batch`). */
  callback?: string;
}

/** A batch callback: a handler, or a handler with its payload (which gets the batch id under `batch`). */
export type BatchCallback = string | { handler: string; payload?: Payload };

export interface StartBatchOptions {
  /** Jobs written per atomic chunk (host default 1000). */
  batchSize?: number;
  priority?: JobPriority | PriorityName;
  queue?: string;
  maxAttempts?: number;
  /** The jobs' own retry policy instead of their handler's. */
  retry?: RetryPolicy;
  /**
   * Makes the start safe to repeat (the client makes one when not given): a repeat answers the batch the first
   * start made, writing the jobs that one did not get to.
   */
  idempotencyKey?: string;
  /** Enqueued once every job of the batch has finished (succeeded, dead or cancelled). */
  onComplete?: BatchCallback;
  /** Enqueued once every job of the batch has succeeded. */
  onSuccess?: BatchCallback;
}

/** A batch just started: its status and its jobs' ids in item order. */
export interface StartedBatch {
  batch: BatchStatus;
  jobs: string[];
  /** False when the idempotency key named a batch an earlier start made. */
  created: boolean;
}

/** A chain step as the seed writes it: handler, positional args, keyword args; optionally its options. */
export type ChainStep =
  | [handler: string, args: unknown[], kwargs: Payload]
  | [handler: string, args: unknown[], kwargs: Payload, options: StepOptions];

type JobBody = Record<string, unknown>;

function path(segment: string): string {
  return encodeURIComponent(segment);
}

/** The client. Options default from `TASKHOST_URL` and `TASKHOST_TOKEN`. */
export class JobManager {
  private readonly t: Transport;

  constructor(options: ClientOptions = {}) {
    this.t = new Transport(options);
  }

  private jobBody(handler: string, payload: Payload, o: EnqueueOptions & { delayMs?: number }): JobBody {
    encode(`job for handler ${JSON.stringify(handler)}`, payload);
    const body: JobBody = {
      handler,
      payload,
      idempotency_key: o.idempotencyKey ?? `client:${randomUUID()}`,
    };
    if (o.priority !== undefined) body.priority = priorityName(o.priority);
    if (o.queue !== undefined) body.queue = o.queue;
    if (o.delayMs !== undefined) body.delay = formatDuration(o.delayMs);
    if (o.maxAttempts !== undefined) body.max_attempts = o.maxAttempts;
    if (o.retry !== undefined) body.retry = retryBody(o.retry);
    return body;
  }

  private async enqueueBody(body: JobBody): Promise<string> {
    const answer = await this.t.send<{ id: string }>({ method: "POST", path: "/api/v1/jobs", body, retrySafe: true });
    return answer.id;
  }

  /** Enqueues `handler` with `payload`; resolves to the job id (the original job's for a known key). */
  async enqueue(handler: string, payload: Payload = {}, options: EnqueueOptions = {}): Promise<string> {
    return this.enqueueBody(this.jobBody(handler, payload, options));
  }

  /** Enqueues a job that runs no earlier than `delayMs` from now. */
  async enqueueDelayed(handler: string, delayMs: number, payload: Payload = {}, options: EnqueueOptions = {}): Promise<string> {
    return this.enqueueBody(this.jobBody(handler, payload, { ...options, delayMs }));
  }

  /** One job per item, sent `batchSize` at a time. Every item is checked before the first request; a refused chunk throws with the item's index in `items` and `partial` holding what earlier chunks enqueued. */
  async enqueueBatch(handler: string, items: Payload[], options: BatchOptions = {}): Promise<BatchResult> {
    if (options.callback !== undefined) {
      const started = await this.batch(handler, items, {
        batchSize: options.batchSize ?? 100,
        priority: options.priority,
        queue: options.queue,
        onComplete: options.callback,
      });
      return { total: started.batch.total, enqueued: started.batch.total, ids: started.jobs };
    }
    const size = options.batchSize ?? 100;
    if (!(size >= 1)) throw new RangeError(`batchSize must be at least 1, got ${size}`);
    const bodies = items.map((item, i) => {
      try {
        return this.jobBody(handler, item, { priority: options.priority, queue: options.queue });
      } catch (e) {
        const bad = expect(e, InvalidPayload);
        throw new InvalidPayload(bad.code, `items[${i}]: ${bad.detail}`);
      }
    });
    const done: BatchResult = { total: 0, enqueued: 0, ids: [] };
    for (let start = 0; start < bodies.length; start += size) {
      const jobs = bodies.slice(start, start + size);
      let answer: BatchResult;
      try {
        answer = await this.t.send<BatchResult>({ method: "POST", path: "/api/v1/jobs/batch", body: { jobs }, retrySafe: true });
      } catch (e) {
        if (!(e instanceof TaskhostError)) throw e;
        const message = e.detail.replace(/^jobs\[(\d+)\]/, (_, i: string) => `items[${start + Number(i)}]`);
        const renumbered = new (e.constructor as new (c: string, m: string, s?: number) => TaskhostError)(e.code, message, e.status);
        (renumbered as InvalidPayload).partial = done;
        throw renumbered;
      }
      done.total += answer.total;
      done.enqueued += answer.enqueued;
      done.ids.push(...answer.ids);
    }
    return done;
  }

  /** Runs `handler` on a cron expression; resolves to the schedule's name. Declaring the same schedule again changes nothing; a different one under the same name replaces it. */
  async schedule(handler: string, cron: string, options: ScheduleOptions = {}): Promise<string> {
    return this.upsertSchedule(handler, cron, options);
  }

  /** Runs `handler` every `intervalMs` (counted from the epoch, so every host agrees on the fire times). */
  async scheduleInterval(handler: string, intervalMs: number, options: ScheduleOptions = {}): Promise<string> {
    return this.upsertSchedule(handler, `every ${formatDuration(intervalMs)}`, options);
  }

  private async upsertSchedule(handler: string, expr: string, o: ScheduleOptions): Promise<string> {
    const payload = o.payload ?? {};
    encode(`schedule for handler ${JSON.stringify(handler)}`, payload);
    const def: Record<string, unknown> = { name: o.name ?? handler, schedule: expr, handler, payload };
    if (o.queue !== undefined) def.queue = o.queue;
    if (o.timezone !== undefined) def.timezone = o.timezone;
    if (o.priority !== undefined) def.priority = priorityName(o.priority);
    const name = def.name as string;
    const add: Call = { method: "POST", path: "/api/v1/schedules", body: def };
    try {
      await this.t.send(add);
      return name;
    } catch (e) {
      if (expect(e, Conflict).code !== "conflict") throw e;
    }
    const existing = (await this.listScheduled()).find((s) => s.name === name);
    const same =
      existing &&
      existing.schedule === expr &&
      existing.handler === handler &&
      JSON.stringify(existing.payload) === JSON.stringify(payload) &&
      existing.queue === (o.queue ?? "default") &&
      existing.priority === (o.priority === undefined ? "normal" : priorityName(o.priority)) &&
      existing.timezone === (o.timezone ?? "UTC");
    if (same) return name;
    await this.unschedule(name);
    await this.t.send(add);
    return name;
  }

  /**
   * Runs the steps one after another (`POST /api/v1/chains`), each getting the previous one's result under
   * `previous` in its payload; resolves to their job ids (a later step's job exists once its turn comes).
   * Every step is checked before anything is sent.
   */
  async chain(steps: ChainStep[]): Promise<string[]> {
    const body = steps.map((step, i) => {
      if (!Array.isArray(step) || (step.length !== 3 && step.length !== 4)) {
        throw new RangeError(`chain step ${i} must be [handler, args, kwargs] or [handler, args, kwargs, options]`);
      }
      const [handler, args, payload] = step;
      const options: StepOptions = step[3] ?? {};
      if (args.length > 0) throw new RangeError(`chain step ${i}: positional args are not supported; pass the payload as kwargs`);
      const unknown = Object.keys(options).filter((k) => !["priority", "queue", "maxAttempts", "retry"].includes(k));
      if (unknown.length > 0) throw new RangeError(`chain step ${i}: unknown option(s) ${unknown.join(", ")}`);
      encode(`chain step ${i} (${JSON.stringify(handler)})`, payload);
      const body: Record<string, unknown> = { handler, payload };
      if (options.priority !== undefined) body.priority = priorityName(options.priority);
      if (options.queue !== undefined) body.queue = options.queue;
      if (options.maxAttempts !== undefined) body.max_attempts = options.maxAttempts;
      if (options.retry !== undefined) body.retry = retryBody(options.retry);
      return body;
    });
    const answer = await this.t.send<{ steps: { job: string }[] }>({ method: "POST", path: "/api/v1/chains", body: { steps: body } });
    return answer.steps.map((s) => s.job);
  }

  /**
   * Starts a batch (`POST /api/v1/batches`): one job of `handler` per item under one batch id, written in
   * atomic chunks; `onComplete` is enqueued once every job has finished, `onSuccess` once every job
   * succeeded. Every item and callback is checked before anything is sent. The start carries an idempotency
   * key, so a retry after a lost answer cannot start a second batch.
   */
  async batch(handler: string, items: Payload[], options: StartBatchOptions = {}): Promise<StartedBatch> {
    items.forEach((item, i) => {
      try {
        encode(`items[${i}]`, item);
      } catch (e) {
        const bad = expect(e, InvalidPayload);
        throw new InvalidPayload(bad.code, bad.detail);
      }
    });
    const body: Record<string, unknown> = { handler, items, idempotency_key: options.idempotencyKey ?? `client:${randomUUID()}` };
    if (options.batchSize !== undefined) {
      if (!(options.batchSize >= 1)) throw new RangeError(`batchSize must be at least 1, got ${options.batchSize}`);
      body.batch_size = options.batchSize;
    }
    if (options.priority !== undefined) body.priority = priorityName(options.priority);
    if (options.queue !== undefined) body.queue = options.queue;
    if (options.maxAttempts !== undefined) body.max_attempts = options.maxAttempts;
    if (options.retry !== undefined) body.retry = retryBody(options.retry);
    const callback = (name: string, cb: BatchCallback) => {
      const c = typeof cb === "string" ? { handler: cb, payload: {} } : { handler: cb.handler, payload: cb.payload ?? {} };
      encode(`${name} (${JSON.stringify(c.handler)})`, c.payload);
      return c;
    };
    if (options.onComplete !== undefined) body.on_complete = callback("onComplete", options.onComplete);
    if (options.onSuccess !== undefined) body.on_success = callback("onSuccess", options.onSuccess);
    return this.t.send<StartedBatch>({ method: "POST", path: "/api/v1/batches", body, retrySafe: true });
  }

  /** The batch's counts and callbacks. */
  async getBatch(batchId: string): Promise<BatchStatus> {
    return this.t.send<BatchStatus>({ method: "GET", path: `/api/v1/batches/${path(batchId)}`, retrySafe: true });
  }

  /** Cancels the batch's waiting jobs and stops its running ones; cancelled jobs count as finished, so `onComplete` fires. */
  async cancelBatch(batchId: string): Promise<BatchStatus> {
    return this.t.send<BatchStatus>({ method: "POST", path: `/api/v1/batches/${path(batchId)}/cancel` });
  }

  /** Waits until every job of the batch has finished, at most `timeoutMs` (`finished` false on timeout). */
  async waitBatch(batchId: string, timeoutMs = 60_000): Promise<BatchStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hold = Math.max(1, Math.min(deadline - Date.now(), MAX_WAIT_MS));
      const answer = await this.t.send<{ finished: boolean; batch: BatchStatus }>({
        method: "GET",
        path: `/api/v1/batches/${path(batchId)}/wait`,
        params: { timeout: `${Math.round(hold)}ms` },
        retrySafe: true,
        holdMs: hold,
      });
      if (answer.finished || Date.now() >= deadline) return answer.batch;
    }
  }

  /** The job's status and its result or last error. */
  async getStatus(jobId: string): Promise<TaskResult> {
    const r = await this.t.send<Omit<TaskResult, "finished">>({ method: "GET", path: `/api/v1/jobs/${path(jobId)}/result`, retrySafe: true });
    return { ...r, finished: isFinal(r.status) };
  }

  /** The whole job, payload and attempt history included. */
  async getJob(jobId: string): Promise<Job> {
    return this.t.send<Job>({ method: "GET", path: `/api/v1/jobs/${path(jobId)}`, retrySafe: true });
  }

  /** The newest jobs matching the filters (one page). */
  async listJobs(filters: { status?: TaskStatus; queue?: string; handler?: string; schedule?: string; limit?: number } = {}): Promise<JobSummary[]> {
    const params = { ...filters, limit: filters.limit?.toString() };
    const page = await this.t.send<{ jobs: JobSummary[] }>({ method: "GET", path: "/api/v1/jobs", params, retrySafe: true });
    return page.jobs;
  }

  /** Waits until the job ends, at most `timeoutMs`; the host answers as the job's end commits (no polling). On timeout the result has `finished` false. */
  async waitFor(jobId: string, timeoutMs = 60_000): Promise<TaskResult> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hold = Math.max(1, Math.min(deadline - Date.now(), MAX_WAIT_MS));
      const answer = await this.t.send<{ finished: boolean; job: Omit<TaskResult, "finished"> }>({
        method: "GET",
        path: `/api/v1/jobs/${path(jobId)}/wait`,
        params: { timeout: `${Math.round(hold)}ms` },
        retrySafe: true,
        holdMs: hold,
      });
      if (answer.finished || Date.now() >= deadline) return { ...answer.job, finished: answer.finished };
    }
  }

  /**
   * Cancels a job that has not started; false if it already had. With `terminate`, a running job is
   * stopped too (on whichever host runs it, within a second) and ends cancelled, not retried; false only
   * if it had already finished.
   */
  async cancel(jobId: string, options: { terminate?: boolean } = {}): Promise<boolean> {
    const params = options.terminate ? { terminate: "true" } : undefined;
    try {
      await this.t.send({ method: "POST", path: `/api/v1/jobs/${path(jobId)}/cancel`, params });
      return true;
    } catch (e) {
      expect(e, Conflict);
      return false;
    }
  }

  /** All of a queue's counts. */
  async queueStats(queue = "default"): Promise<QueueStats> {
    return this.t.send<QueueStats>({ method: "GET", path: `/api/v1/queues/${path(queue)}/stats`, retrySafe: true });
  }

  /** Jobs due and waiting for a worker in `queue` (not the delayed or retrying ones). */
  async queueLength(queue = "default"): Promise<number> {
    const stats = await this.queueStats(queue);
    return Object.values(stats.pending).reduce((a, b) => a + b, 0);
  }

  /** Deletes the queue's waiting jobs; resolves to how many. */
  async purgeQueue(queue = "default"): Promise<number> {
    const answer = await this.t.send<{ count: number }>({ method: "DELETE", path: `/api/v1/queues/${path(queue)}` });
    return answer.count;
  }

  /** Every schedule with its next fire time. */
  async listScheduled(): Promise<ScheduledJob[]> {
    type Info = { schedule: Omit<ScheduledJob, "schedule" | "nextRun" | "problem"> & { spec: string }; next_fire: string | null; problem: string | null };
    const infos = await this.t.send<Info[]>({ method: "GET", path: "/api/v1/schedules", retrySafe: true });
    return infos.map(({ schedule: s, next_fire, problem }) => ({
      name: s.name,
      schedule: s.spec,
      handler: s.handler,
      timezone: s.timezone,
      payload: s.payload,
      queue: s.queue,
      priority: s.priority,
      enabled: s.enabled,
      nextRun: next_fire ? new Date(next_fire) : null,
      problem,
    }));
  }

  /** Removes a schedule by name (what `schedule` resolved to). */
  async unschedule(scheduleId: string): Promise<void> {
    await this.t.send({ method: "DELETE", path: `/api/v1/schedules/${path(scheduleId)}` });
  }

  /** The version of the host at the other end (from its OpenAPI document). */
  async hostVersion(): Promise<string> {
    const doc = await this.t.send<{ info: { version: string } }>({ method: "GET", path: "/api/v1/openapi.json", retrySafe: true });
    return doc.info.version;
  }

  private async notSupported(feature: string): Promise<never> {
    let version: string | undefined;
    try {
      version = await this.hostVersion();
    } catch (e) {
      expect(e, TaskhostError);
    }
    throw new NotSupported(feature, version);
  }
}
